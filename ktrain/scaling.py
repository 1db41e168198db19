"""Which pixel values a model takes: ``--input-scale`` and ``--teacher-input-scale`` (no TensorFlow).

ktrain's pipelines feed uint8 images scaled to [0, 1] (by 1/255, as the seed did). A model trained
on another range says so with ``SCALE,OFFSET`` as Keras's ``Rescaling`` does: it gets
``pixel × SCALE + OFFSET`` for pixels 0–255 (``2/255,-1`` for [-1, 1]); ``none`` gives it the raw
pixels (a model that scales its own inputs). A view applies the difference to its model's input:
:func:`affine` is that difference, from [0, 1].
"""

from __future__ import annotations

import math

from ktrain.errors import KtrainError

INPUT_AFFINE = "_ktrain_input_affine"  # on a model: its affine(), set when it is loaded
UNIT = (1 / 255, 0.0)  # the default: pixels / 255
RAW = (1.0, 0.0)  # none: the pixels as they are, 0-255


def parse_input_scale(text: str | None, flag: str = "--input-scale") -> tuple[float, float] | None:
    """``(scale, offset)`` from ``1/255``, ``none``, ``SCALE`` or ``SCALE,OFFSET``; None when not given."""
    if text is None:
        return None
    if str(text).strip().lower() == "none":
        return RAW
    parts = str(text).split(",")
    try:
        if len(parts) > 2:
            raise ValueError
        values = [_number(part) for part in parts]
    except (ValueError, ZeroDivisionError):
        raise KtrainError(
            f"{flag} is '{text}': give 1/255 (the default), none (the model scales its own inputs) or "
            "SCALE,OFFSET as Keras's Rescaling takes them (2/255,-1 for [-1, 1])"
        ) from None
    scale, offset = values[0], values[1] if len(values) == 2 else 0.0
    if not all(math.isfinite(value) for value in (scale, offset)) or scale == 0:
        raise KtrainError(f"{flag} is '{text}': give a finite, non-zero scale and a finite offset")
    # Pixels 0-255 must land in a range float32 models can hold: not at 0 or inf.
    if not 1e-6 <= abs(scale) <= 1e6 or abs(offset) > 1e6:
        raise KtrainError(f"{flag} is '{text}': give a scale from 1e-6 to 1e6 and an offset within ±1e6 (in size)")
    return scale, offset


def _number(text: str) -> float:
    numerator, _, denominator = text.strip().partition("/")
    return float(numerator) / float(denominator) if denominator else float(numerator)


def affine(scale: tuple[float, float] | None) -> tuple[float, float]:
    """``(factor, offset)`` that turns ktrain's [0, 1] images into what a model of ``scale`` takes."""
    scale, offset = scale or UNIT
    return 255.0 * scale, offset


def describe(scale: tuple[float, float] | None) -> str:
    if scale is None or scale == UNIT:
        return "pixels / 255"
    if scale == RAW:
        return "raw pixels 0-255"
    return f"pixels × {scale[0]:.6g} + {scale[1]:.6g}"


def input_affine(model) -> tuple[float, float]:
    """``(factor, offset)`` a view applies to ktrain's [0, 1] images before ``model`` sees them."""
    return getattr(model, INPUT_AFFINE, (1.0, 0.0))


def carry_input_scale(source, copy):
    """``copy`` (a copy of the model ``source``), taking the same pixel range; returns it."""
    if hasattr(source, INPUT_AFFINE):
        setattr(copy, INPUT_AFFINE, input_affine(source))
    return copy


def apply(model, images):
    """``images`` as ktrain's pipelines give them ([0, 1] for uint8 data), brought to the pixel
    range ``model`` takes: the one place every forward pass (views, probes, TFLite checks) scales."""
    factor, offset = input_affine(model)
    return images if (factor, offset) == (1.0, 0.0) else images * factor + offset
