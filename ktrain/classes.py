"""Class sets of specialist teachers, written as ``0-4`` or ``0,2,5-7`` (no TensorFlow here: the
``report`` command uses it)."""

from __future__ import annotations

from ktrain.errors import KtrainError


def format_classes(classes) -> str:
    """``(0, 1, 2, 3, 4, 7)`` as ``0-4,7``: consecutive runs as ranges."""
    parts, start = [], None
    ordered = list(classes)
    for position, value in enumerate(ordered):
        if start is None:
            start = value
        if position + 1 == len(ordered) or ordered[position + 1] != value + 1:
            parts.append(str(start) if start == value else f"{start}-{value}")
            start = None
    return ",".join(parts)


def parse_classes(text: str, num_classes: int, spec: str) -> tuple[int, ...]:
    """``'0-4'`` or ``'0,2,5-7'`` as a tuple of class ids in the order given; checked against ``num_classes``."""
    classes: list[int] = []
    for part in text.split(","):
        first, _, last = part.partition("-")
        try:
            low, high = int(first), int(last or first)
        except ValueError:
            raise KtrainError(
                f"'{spec}': '{part}' is not a class or a range of classes: write them as 0-4 or 0,2,5-7"
            ) from None
        if low > high:
            raise KtrainError(f"'{spec}': class range {part} runs backwards: write it as {high}-{low}")
        if high >= num_classes:  # before the range is built: a typo must not fill the memory
            raise KtrainError(f"'{spec}': class {high} does not exist, the dataset has classes 0-{num_classes - 1}")
        classes.extend(range(low, high + 1))
    if max(classes) >= num_classes:
        raise KtrainError(f"'{spec}': class {max(classes)} does not exist, the dataset has classes 0-{num_classes - 1}")
    if len(set(classes)) != len(classes):
        raise KtrainError(f"'{spec}': a class is listed twice in {text}: give each class once")
    return tuple(classes)
