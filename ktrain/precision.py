"""``--precision``: Keras mixed precision for the models, float32 for losses and saved students.

The policy is global in Keras, so a job sets it before it builds any model (zoo models then run
their layers in float16/bfloat16 with float32 variables). Logits and features are cast to float32
by the views and every loss is computed in float32; ``mixed_float16`` adds dynamic loss scaling.
A student loaded from a file (or given as an object) runs as a copy under the policy; a teacher
file keeps the policy it was saved with (``--teacher-precision`` sets the teacher's).
"""

from __future__ import annotations

import contextlib

import keras
import numpy as np

from ktrain.config import PRECISIONS
from ktrain.scaling import carry_input_scale


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


def _policy_config(node, name: str):
    if isinstance(node, dict):
        if node.get("class_name") == "DTypePolicy":
            return {**node, "config": {**node.get("config", {}), "name": name}}
        return {key: _policy_config(value, name) for key, value in node.items()}
    if isinstance(node, list):
        return [_policy_config(value, name) for value in node]
    return node


def policy_copy(model: keras.Model, name: str) -> keras.Model:
    """The same model and weights with every layer's dtype policy set to ``name`` (weights are cast
    once, when copied); ``model`` itself when every layer already has that policy."""
    if all(layer.dtype_policy.name == name for layer in model._flatten_layers(include_self=False)):
        return model
    previous = keras.mixed_precision.global_policy()
    keras.mixed_precision.set_global_policy(name)  # layers without a dtype in their config (inputs) follow it
    try:
        copy = model.__class__.from_config(_policy_config(model.get_config(), name))
    finally:
        keras.mixed_precision.set_global_policy(previous)
    copy.set_weights(model.get_weights())
    return carry_input_scale(model, copy)


def float32_copy(model: keras.Model) -> keras.Model:
    """The same model and weights with every layer's dtype policy set to float32, for saving."""
    return policy_copy(model, "float32")


# -- the teacher's precision ----------------------------------------------------------------------
FIDELITY_WARNING = 0.99  # top-1 agreement below which a reduced-precision teacher is worth a warning


def fidelity(reference_logits, reduced_logits) -> dict[str, float]:
    """How closely reduced-precision teacher targets follow float32 ones, over the same images: the
    share of images whose top class agrees, and the mean KL(float32 ‖ reduced) at T = 1."""
    reference = np.asarray(reference_logits, np.float64)
    reduced = np.asarray(reduced_logits, np.float64)
    log_p = reference - _logsumexp(reference)
    log_q = reduced - _logsumexp(reduced)
    kl = np.sum(np.exp(log_p) * (log_p - log_q), axis=-1)
    agreement = np.mean(np.argmax(reference, axis=-1) == np.argmax(reduced, axis=-1))
    return {"top1_agreement": float(agreement), "mean_kl": float(np.mean(kl))}


def _logsumexp(logits: np.ndarray) -> np.ndarray:
    peak = logits.max(axis=-1, keepdims=True)
    return peak + np.log(np.exp(logits - peak).sum(axis=-1, keepdims=True))
