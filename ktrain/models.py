"""Models in and out: load a MODEL argument, check it fits the data, save a student safely.

A MODEL argument is a ``.keras`` file, a legacy Keras 2 ``.h5`` file (the seed's format) or
``zoo:NAME``.
"""

from __future__ import annotations

import re
from pathlib import Path

import keras

from ktrain import zoo
from ktrain.errors import KtrainError, first_line
from ktrain.io import atomic_write
from ktrain.precision import float32_copy

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")


def load_model(spec: str, *, role: str, input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """Load (or, for ``zoo:NAME``, build) the ``role`` model ("teacher", "student", ...)."""
    if spec.startswith(zoo.ZOO_PREFIX):
        return zoo.build(spec, input_shape, num_classes)
    path = Path(spec)
    if not path.is_file():
        raise KtrainError(f"{role} model '{spec}' not found: give a .keras or .h5 file, or zoo:NAME")
    if path.suffix.lower() not in MODEL_SUFFIXES:
        raise KtrainError(f"{role} model '{spec}' is not a .keras or .h5 file: save it with model.save('x.keras')")
    try:
        model = keras.saving.load_model(str(path), compile=False)
    except Exception as exc:  # Keras raises many types for unreadable or foreign files
        custom = re.search(r"(?:Could not locate class|Unknown layer:?) '?([A-Za-z_][A-Za-z0-9_]*)'?", str(exc))
        if custom:
            raise KtrainError(
                f"{role} model '{spec}' uses the custom class '{custom.group(1)}', which is not registered: "
                "define it with @keras.saving.register_keras_serializable() in a module ktrain imports, or save "
                "the model with built-in layers only"
            ) from exc
        raise KtrainError(
            f"could not load {role} model '{spec}' ({first_line(exc)}): is it a complete Keras model file?"
        ) from exc
    if not isinstance(model, keras.Model):
        raise KtrainError(f"{role} model '{spec}' holds a {type(model).__name__}, not a Keras model")
    return model


def load_for(spec: str, *, role: str, data) -> keras.Model:
    """Load (or build) ``spec`` for the images and classes of ``data`` (a DataSplits), refusing a model
    whose input does not take those images."""
    model = load_model(spec, role=role, input_shape=data.image_shape, num_classes=data.num_classes)
    check_input_shape(model, role=role, spec=spec, image_shape=data.image_shape, dataset=data.name)
    return model


def check_input_shape(model: keras.Model, *, role: str, spec: str, image_shape: tuple[int, ...], dataset: str):
    """Refuse a model whose input does not take the dataset's images."""
    if len(model.inputs) != 1:
        raise KtrainError(f"{role} model '{spec}' has {len(model.inputs)} inputs: ktrain needs one image input")
    expected = tuple(model.inputs[0].shape[1:])
    fits = len(expected) == len(image_shape) and all(e is None or e == d for e, d in zip(expected, image_shape))
    if not fits:
        raise KtrainError(
            f"{role} model '{spec}' takes inputs of shape {_shape(expected)} but dataset '{dataset}' has images of "
            f"shape {_shape(image_shape)}: give a model built for this dataset (zoo:NAME models are built to fit)"
        )


def save_model_atomic(model: keras.Model, path: Path) -> Path:
    """Write ``model`` (in float32, whatever the precision it trained in) to ``path`` through a
    temporary file in the same folder, then rename."""
    with atomic_write(path) as temporary:
        float32_copy(model).save(temporary)
    return Path(path)


def _shape(shape) -> str:
    return "×".join("?" if d is None else str(d) for d in shape)
