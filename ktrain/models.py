"""Models in and out: load a MODEL argument, check it fits the data, save a student safely.

A MODEL argument is a ``.keras`` file, a legacy Keras 2 ``.h5`` file (the seed's format),
``zoo:NAME``, or (from the Python API) a Keras model object.
"""

from __future__ import annotations

import contextlib
import logging
import re
from pathlib import Path

import keras
import numpy as np

from ktrain import zoo
from ktrain.errors import KtrainError, first_line, model_called
from ktrain.io import atomic_write
from ktrain.precision import float32_copy
from ktrain.scaling import INPUT_AFFINE, RAW, affine, carry_input_scale

log = logging.getLogger("ktrain")

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")


def load_model(spec: str, *, role: str, input_shape: tuple[int, ...], num_classes: int) -> keras.Model:
    """Load (or, for ``zoo:NAME``, build) the ``role`` model ("teacher", "student", ...)."""
    if spec.startswith(zoo.ZOO_PREFIX):
        return zoo.build(spec, input_shape, num_classes)
    path = Path(spec)
    if not path.is_file():
        raise KtrainError(f"{model_called(role)} '{spec}' not found: give a .keras or .h5 file, or zoo:NAME")
    if path.suffix.lower() not in MODEL_SUFFIXES:
        raise KtrainError(
            f"{model_called(role)} '{spec}' is not a .keras or .h5 file: save it with model.save('x.keras')"
        )
    try:
        model = keras.saving.load_model(str(path), compile=False)
    except Exception as exc:  # Keras raises many types for unreadable or foreign files
        custom = re.search(r"(?:Could not locate class|Unknown layer:?) '?([A-Za-z_][A-Za-z0-9_]*)'?", str(exc))
        if custom:
            raise KtrainError(
                f"{model_called(role)} '{spec}' uses the custom class '{custom.group(1)}', which is not registered: "
                "define it with @keras.saving.register_keras_serializable() in a module ktrain imports, or save "
                "the model with built-in layers only"
            ) from exc
        raise KtrainError(
            f"could not load {model_called(role)} '{spec}' ({first_line(exc)}): is it a complete Keras model file?"
        ) from exc
    if not isinstance(model, keras.Model):
        raise KtrainError(f"{model_called(role)} '{spec}' holds a {type(model).__name__}, not a Keras model")
    return model


RUN_FILES = ("best_model.keras", "student.keras", "model.keras")


# Roles of models ktrain trains (``model``: what ``train`` trains, a teacher or a baseline).
TRAINED_ROLES = ("student", "model")


def resolve_model(spec):
    """A model file, or a run folder's best student (best_model.keras, else student.keras / model.keras);
    anything else (a model object, zoo:NAME) as it is."""
    if not isinstance(spec, str | Path):
        return spec
    path = Path(spec)
    if path.is_dir():
        for name in RUN_FILES:
            candidates = sorted(path.glob(f"*{name}"))
            if candidates:
                return str(candidates[0])
        raise KtrainError(
            f"run folder '{spec}' holds no {', '.join(RUN_FILES)}: give a model file or a run's -out folder"
        )
    return spec


def load_for(
    spec, *, role: str, data, input_scale: tuple[float, float] | None = None, quiet: bool = False
) -> keras.Model:
    """Load (or build) ``spec`` for the images and classes of ``data`` (a DataSplits), refusing a model
    whose input does not take those images, and set the pixel range it takes (``input_scale``, see
    :mod:`ktrain.scaling`; ``quiet``: a model loaded again says nothing about it a second time). A
    model object is checked and returned as it is."""
    model = spec
    if not isinstance(spec, keras.Model):
        model = load_model(spec, role=role, input_shape=data.image_shape, num_classes=data.num_classes)
    name = f"object {spec.name}" if isinstance(spec, keras.Model) else spec
    check_model(model, role=role, spec=name, image_shape=data.image_shape, dataset=data.name)
    set_input_scale(model, input_scale, role, data, quiet=quiet)
    return model


def set_input_scale(
    model: keras.Model, scale: tuple[float, float] | None, role: str, data, *, quiet: bool = False
) -> None:
    """Record on ``model`` the pixel range it takes: ``scale`` if given; else raw pixels for a model
    whose first layer is a ``Rescaling`` (said in one log line), and 1/255 for any other."""
    uint8 = getattr(data.x_train, "dtype", None) == np.uint8
    if scale is not None and not uint8:
        raise KtrainError(
            f"--input-scale with dataset '{data.name}', whose images are floats: they are given to the models as "
            "they are; drop --input-scale, or store the images as uint8"
        )
    first = next((layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)), None)
    if scale is None and uint8 and isinstance(first, keras.layers.Rescaling):
        scale = RAW
        if not quiet:
            log.info("The %s starts with a Rescaling layer ('%s'): it gets raw pixels 0-255", role, first.name)
    elif scale is None and not quiet:
        warn_double_scaling(model, role, data)
    setattr(model, INPUT_AFFINE, affine(scale))


def warn_double_scaling(model: keras.Model, role: str, data) -> None:
    """ktrain feeds uint8 images scaled by 1/255; a model that rescales by 1/255 itself deeper
    inside then sees inputs 255 times too small (a teacher scores at chance): say so."""
    if getattr(data.x_train, "dtype", None) != np.uint8:
        return
    for layer in model._flatten_layers(include_self=False):
        scale = getattr(layer, "scale", None) if isinstance(layer, keras.layers.Rescaling) else None
        if isinstance(scale, int | float) and abs(scale - 1 / 255) < 1e-6:
            log.warning(
                "the %s's layer '%s' rescales its inputs by 1/255, but ktrain already scales these uint8 "
                "images to [0, 1]: it sees them 255 times too small; give --input-scale none (raw pixels), or "
                "remove the layer",
                model_called(role),
                layer.name,
            )
            return


def copy_model(model: keras.Model, role: str) -> keras.Model:
    """A copy of ``model`` with its weights, built in the current strategy scope and precision policy."""
    try:
        copy = keras.models.clone_model(model)
    except Exception as exc:  # clone_model needs every layer's get_config
        raise KtrainError(
            f"could not copy the {model_called(role)} object '{model.name}' into the strategy's scope "
            f"({first_line(exc)}): give every custom layer a get_config(), or pass the model as a .keras file"
        ) from exc
    copy.set_weights(model.get_weights())
    return carry_input_scale(model, copy)


def write_back(target, trained: keras.Model) -> None:
    """Copy ``trained``'s weights into the caller's model object ``target`` (when it trained a copy)."""
    if isinstance(target, keras.Model) and target is not trained:
        target.set_weights(trained.get_weights())


@contextlib.contextmanager
def unchanged_trainable(model):
    """Restore the ``trainable`` flag of ``model`` and of every layer in it when the block ends
    (a teacher is frozen while it teaches; the caller's object must come back as it was)."""
    if not isinstance(model, keras.Model):
        yield
        return
    layers = list(model._flatten_layers(include_self=True, recursive=True))
    flags = [layer.trainable for layer in layers]
    try:
        yield
    finally:
        for layer, flag in zip(layers, flags):
            layer.trainable = flag


def check_model(model: keras.Model, *, role: str, spec: str, image_shape: tuple[int, ...], dataset: str):
    """Refuse a model ktrain cannot train or learn from, before anything runs: one that is not built,
    whose input does not take the dataset's images, or whose outputs are not class scores (a dict,
    or one value per pixel), or a student with nothing to train."""
    if not model.built or not _has_inputs(model):
        dims = ", ".join(map(str, image_shape))
        raise KtrainError(
            f"{model_called(role)} '{spec}' is not built (a Sequential without an Input knows no input "
            f"shape): start it with keras.Input({tuple(image_shape)}), or call model.build((None, {dims}))"
        )
    check_input_shape(model, role=role, spec=spec, image_shape=image_shape, dataset=dataset)
    if role in TRAINED_ROLES and not model.trainable_weights:
        raise KtrainError(
            f"{model_called(role)} '{spec}' has no trainable weights (every layer is frozen): set "
            f"model.trainable = True before saving it, or give another {role}"
        )
    structure = getattr(model, "_outputs_struct", None)
    if isinstance(structure, dict):
        raise KtrainError(
            f"{model_called(role)} '{spec}' returns a dict of outputs ({', '.join(map(str, structure))}): ktrain "
            "needs class scores, one output (or a list of them for an ensemble); return the tensor itself"
        )
    for output in model.outputs:
        if len(output.shape) != 2:
            raise KtrainError(
                f"{model_called(role)} '{spec}' has an output of shape {_shape(output.shape)}: ktrain needs class "
                "scores of shape batch×classes; end the model in a Dense layer (after Flatten or global pooling)"
            )


def _has_inputs(model: keras.Model) -> bool:
    try:
        return bool(model.inputs)
    except (AttributeError, ValueError):  # a Sequential without an Input raises when asked
        return False


def check_input_shape(model: keras.Model, *, role: str, spec: str, image_shape: tuple[int, ...], dataset: str):
    """Refuse a model whose input does not take the dataset's images."""
    if len(model.inputs) != 1:
        raise KtrainError(f"{model_called(role)} '{spec}' has {len(model.inputs)} inputs: ktrain needs one image input")
    expected = tuple(model.inputs[0].shape[1:])
    fits = len(expected) == len(image_shape) and all(e is None or e == d for e, d in zip(expected, image_shape))
    if not fits:
        fix = "give a model built for this dataset (zoo:NAME models are built to fit)"
        if expected + (1,) == tuple(image_shape):
            fix = f"images of one channel get a channel axis: build the model with keras.Input({tuple(image_shape)})"
        raise KtrainError(
            f"{model_called(role)} '{spec}' takes inputs of shape {_shape(expected)} but dataset '{dataset}' has "
            f"images of shape {_shape(image_shape)}: {fix}"
        )


def save_model_atomic(model: keras.Model, path: Path) -> Path:
    """Write ``model`` (in float32, whatever the precision it trained in) to ``path`` through a
    temporary file in the same folder, then rename."""
    with atomic_write(path) as temporary:
        float32_copy(model).save(temporary)
    return Path(path)


def _shape(shape) -> str:
    return "×".join("?" if d is None else str(d) for d in shape)
