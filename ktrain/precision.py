"""``--precision``: Keras mixed precision for the models, float32 for losses and saved students.

The policy is global in Keras, so a job sets it before it builds any model (zoo models then run
their layers in float16/bfloat16 with float32 variables). Logits and features are cast to float32
by the views and every loss is computed in float32; ``mixed_float16`` adds dynamic loss scaling.
Models loaded from files keep the dtype policy they were saved with.
"""

from __future__ import annotations

import contextlib

import keras

from ktrain.config import PRECISIONS


@contextlib.contextmanager
def policy(precision: str):
    """Set Keras's global dtype policy for the duration of a job, then restore the previous one."""
    if precision not in PRECISIONS:  # validated in TrainConfig; guard direct library use
        raise ValueError(f"precision must be one of {PRECISIONS}")
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(precision)
    try:
        yield
    finally:
        keras.mixed_precision.set_global_policy(previous)


def wrap_optimizer(optimizer, precision: str):
    """float16 needs loss scaling (small gradients underflow); bfloat16 and float32 do not."""
    if precision == "mixed_float16":
        return keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def _float32_config(node):
    if isinstance(node, dict):
        if node.get("class_name") == "DTypePolicy":
            return {**node, "config": {**node.get("config", {}), "name": "float32"}}
        return {key: _float32_config(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_float32_config(value) for value in node]
    return node


def float32_copy(model: keras.Model) -> keras.Model:
    """The same model and weights with every layer's dtype policy set to float32, for saving."""
    if all(layer.dtype_policy.name == "float32" for layer in model._flatten_layers(include_self=False)):
        return model
    with policy("float32"):  # layers without a dtype in their config (inputs) follow the global policy
        copy = model.__class__.from_config(_float32_config(model.get_config()))
    copy.set_weights(model.get_weights())
    return copy
