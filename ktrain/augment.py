"""Training augmentations and views, as specs (no TensorFlow: specs import this).

``--augment`` names the augmentations, comma-separated: ``flip``, ``crop`` or ``crop:PAD``,
``mixup`` or ``mixup:ALPHA``, ``cutmix`` or ``cutmix:ALPHA``. A *view* of a training sample is
one draw of them, a pure function of its key (view seed, sample, view number); ``--views K``
limits every sample to K views, so their teacher logits can be cached (ktrain.views renders them).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ktrain.errors import KtrainError

AUGMENTATIONS = ("flip", "crop", "mixup", "cutmix")
# Beta(α, α) for the mixing ratio: Zhang et al.'s α = 0.2 for mixup (ImageNet), Yun et al.'s α = 1 for cutmix.
DEFAULT_ALPHA = {"mixup": 0.2, "cutmix": 1.0}
MAX_ALPHA = 100.0  # Beta(α, α) is already near-constant at 0.5; far above, its sampling overflows
MAX_PADDING = 1024
MAX_VIEWS = 10_000
# The view seed's default: fixed, and independent of the run seed, so one K-view cache serves
# every run seed and every sweep point.
VIEW_SEED = 0
MAX_SEED = 2**63 - 1
# The version of how views are rendered (ktrain.views): bump it when the key derivation, the crop
# padding, the partner or the box changes, so caches of the old views are rebuilt.
VIEWS_FORMAT = 1


@dataclass(frozen=True)
class Augment:
    """What a view applies: ``flip``; ``crop`` with ``crop_padding`` pixels of zero padding per side
    (None: an eighth of the side, at least 1, so 4 at 32 and 1 at 8); ``mixup`` or ``cutmix`` with
    their Beta α (None: off)."""

    flip: bool = False
    crop: bool = False
    crop_padding: int | None = None
    mixup: float | None = None
    cutmix: float | None = None

    def __bool__(self) -> bool:
        return self.flip or self.crop or self.mixes

    @property
    def mixes(self) -> bool:
        """Whether a view blends two samples (and so carries two labels and a weight)."""
        return self.mixup is not None or self.cutmix is not None

    @property
    def mixing_name(self) -> str | None:
        return "mixup" if self.mixup is not None else "cutmix" if self.cutmix is not None else None

    def padding(self, side: int) -> int:
        """Crop padding for an image side of ``side`` pixels."""
        if self.crop_padding is not None:
            return self.crop_padding
        return max(1, (side + 4) // 8)

    def describe(self) -> str:
        """The spec as ``--augment`` takes it (how results.json records it)."""
        return str(self)

    def __str__(self) -> str:
        parts = ["flip"] if self.flip else []
        if self.crop:
            parts.append("crop" if self.crop_padding is None else f"crop:{self.crop_padding}")
        for name in ("mixup", "cutmix"):
            alpha = getattr(self, name)
            if alpha is not None:
                parts.append(name if alpha == DEFAULT_ALPHA[name] else f"{name}:{alpha!r}")
        return ",".join(parts)


def parse_augment(value: str | Iterable[str] | Augment | None) -> Augment:
    """``"flip,crop:2,mixup:0.4"`` (or a list of such names) as an :class:`Augment`; None or "" as none."""
    if isinstance(value, Augment):
        return value
    if value is None:
        return Augment()
    parts = value.split(",") if isinstance(value, str) else list(value)
    fields: dict = {}
    for part in (str(part).strip() for part in parts):
        if not part:
            continue
        name, _, argument = part.partition(":")
        name = name.strip().lower()
        if name not in AUGMENTATIONS:
            raise KtrainError(
                f"unknown augmentation '{part}': use {', '.join(AUGMENTATIONS)} (comma-separated; crop:PAD, mixup:A)"
            )
        if name in fields:
            raise KtrainError(f"--augment names {name} twice: give each augmentation once")
        if name == "flip":
            if argument:
                raise KtrainError(f"--augment {part}: flip takes no value, give flip")
            fields["flip"] = True
        elif name == "crop":
            fields["crop"] = True
            fields["crop_padding"] = _padding(argument, part) if argument else None
        else:
            fields[name] = _alpha(argument, part) if argument else DEFAULT_ALPHA[name]
    augment = Augment(**fields)
    if augment.mixup is not None and augment.cutmix is not None:
        raise KtrainError("--augment names both mixup and cutmix: choose one of them")
    return augment


def _padding(argument: str, part: str) -> int:
    try:
        padding = int(argument)
    except ValueError:
        padding = -1
    if not 1 <= padding <= MAX_PADDING:
        raise KtrainError(
            f"--augment {part}: give the crop padding as a whole number of pixels from 1 to {MAX_PADDING} (crop:2)"
        )
    return padding


def _alpha(argument: str, part: str) -> float:
    try:
        alpha = float(argument)
    except ValueError:
        alpha = float("nan")
    if not (0.0 < alpha <= MAX_ALPHA):
        raise KtrainError(
            f"--augment {part}: give the Beta α as a number above 0 and at most {MAX_ALPHA:g} (mixup:0.2; at "
            f"{MAX_ALPHA:g} nearly every mix is half and half already)"
        )
    return alpha


def check_padding(augment: Augment, image_shape: tuple[int, ...]) -> None:
    """A crop padding the images can take: at most half their smaller side (or 1), so that a
    shifted crop always keeps most of the image."""
    if augment.crop_padding is None:
        return
    side = min(image_shape[:2])
    limit = max(1, side // 2)
    if augment.crop_padding > limit:
        raise KtrainError(
            f"--augment crop:{augment.crop_padding} pads more than these {image_shape[0]}×{image_shape[1]} images "
            f"allow: give at most crop:{limit} (half the smaller side)"
        )


@dataclass(frozen=True)
class Views:
    """How training samples are shown: ``augment``, and with ``count`` (``--views K``) only views
    0..K−1 of each sample, keyed by ``seed`` (``--view-seed``). Without a count, every epoch shows
    a fresh view (teacher online)."""

    augment: Augment = Augment()
    count: int | None = None
    seed: int = VIEW_SEED

    def validate(self) -> Views:
        if self.count is not None:
            if not 1 <= self.count <= MAX_VIEWS:
                raise KtrainError(
                    f"--views is {self.count}: give 1 to {MAX_VIEWS:,} views per sample (an epoch shows each sample "
                    "one view, so more than the epochs are never all seen)"
                )
            if not self.augment:
                raise KtrainError(
                    f"--views {self.count} without --augment: views are augmented copies, name the augmentation "
                    "(--augment flip,crop, say)"
                )
        if not 0 <= self.seed <= MAX_SEED:
            raise KtrainError(f"--view-seed is {self.seed}: give a whole number from 0 to 2**63 - 1")
        return self

    def record(self) -> dict:
        return {"augment": str(self.augment), "views": self.count, "view_seed": self.seed, "views_format": VIEWS_FORMAT}
