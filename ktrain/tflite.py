"""Ship the student: TFLite export (float32, float16, int8) checked against the Keras model.

TensorFlow's own converter writes the ``.tflite`` file; LiteRT (``ai-edge-litert``, the maintained
successor of ``tf.lite.Interpreter``) runs it on the test split to measure accuracy, agreement with
the Keras student (share of identical predictions) and median single-image latency on this CPU.
``int8`` is full-integer post-training quantization (int8 inputs and outputs too), calibrated on
a representative set drawn from the training split.
"""

from __future__ import annotations

import contextlib
import os
import statistics
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import tensorflow as tf

from ktrain import models, scaling
from ktrain.data import DataSplits, load_dataset, model_input_array
from ktrain.errors import KtrainError, first_line
from ktrain.io import atomic_write, check_output_file, write_failed
from ktrain.listener import phase
from ktrain.precision import float32_copy
from ktrain.specs import label

MODES = ("float32", "float16", "int8")
REPRESENTATIVE = 200
LATENCY_SAMPLES = 200


@contextlib.contextmanager
def _silenced():
    """The converter and LiteRT print progress from C++ and Python; keep it off the terminal."""
    sys.stdout.flush()
    sys.stderr.flush()
    saved = [os.dup(1), os.dup(2)]
    try:
        with open(os.devnull, "w") as devnull, warnings.catch_warnings():
            warnings.simplefilter("ignore")
            os.dup2(devnull.fileno(), 1)
            os.dup2(devnull.fileno(), 2)
            yield
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        for descriptor in saved:
            os.close(descriptor)


def convert(model, mode: str, data: DataSplits | None, source=None) -> bytes:
    """The TFLite file of ``model``; an int8 one is calibrated on training images brought to the
    pixel range of ``source`` (the model ``model`` is a float32 copy of; default ``model``)."""
    source = model if source is None else source
    if mode not in MODES:
        raise KtrainError(f"--quantize is '{mode}': use float32, float16 or int8")
    converter = tf.lite.TFLiteConverter.from_keras_model(model)
    if mode == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "int8":
        if data is None:
            raise KtrainError("--quantize int8 needs --dataset D: its training split calibrates the quantization")
        rng = np.random.default_rng(0)
        picks = rng.choice(len(data.x_train), size=min(REPRESENTATIVE, len(data.x_train)), replace=False)

        def representative():
            for index in picks:
                yield [scaling.apply(source, model_input_array(data.x_train[index : index + 1]))]

        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = representative
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        converter.inference_input_type = tf.int8
        converter.inference_output_type = tf.int8
    try:
        with _silenced():
            return converter.convert()
    except Exception as exc:  # the converter raises its own ConverterError and others
        raise KtrainError(
            f"TensorFlow's converter could not convert the model to {mode} ({first_line(exc)}): "
            "use built-in Keras layers only (no Lambda or py_function layers)"
        ) from exc


class LiteModel:
    """A ``.tflite`` model in the LiteRT interpreter, fed float images in [0, 1]."""

    def __init__(self, content: bytes):
        from ai_edge_litert.interpreter import Interpreter

        with _silenced():
            self.interpreter = Interpreter(model_content=content)
            self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]
        self.output = self.interpreter.get_output_details()[0]

    def __call__(self, image: np.ndarray) -> np.ndarray:
        """Scores for one image (H×W×C float in [0, 1])."""
        x = image[np.newaxis].astype(np.float32)
        scale, zero_point = self.input["quantization"]
        if self.input["dtype"] != np.float32:
            x = np.clip(np.round(x / scale + zero_point), -128, 127).astype(self.input["dtype"])
        self.interpreter.set_tensor(self.input["index"], x)
        self.interpreter.invoke()
        y = self.interpreter.get_tensor(self.output["index"])[0]
        scale, zero_point = self.output["quantization"]
        return (y.astype(np.float32) - zero_point) * scale if self.output["dtype"] != np.float32 else y


def export(
    spec,
    out_path: str,
    mode: str = "float32",
    dataset: str | None = None,
    data_dir: str | None = None,
    max_accuracy_drop: float = 0.01,
    data: DataSplits | None = None,
    input_scale: tuple[float, float] | None = None,
) -> dict:
    """Convert, write atomically, and (with a dataset) check accuracy, agreement and latency."""
    if mode not in MODES:
        raise KtrainError(f"--quantize is '{mode}': use float32, float16 or int8")
    if not out_path.endswith(".tflite"):
        raise KtrainError(f"output '{out_path}' does not end in .tflite: name the file OUT.tflite")
    check_output_file(Path(out_path), "output")
    if not 0 <= max_accuracy_drop <= 1:
        raise KtrainError(f"--max-accuracy-drop is {max_accuracy_drop}: give a share between 0 and 1")
    if mode == "int8" and dataset is None and data is None:
        raise KtrainError("--quantize int8 needs --dataset D: its training split calibrates the quantization")
    if isinstance(spec, str):
        spec = models.resolve_model(spec)
        if spec.startswith("zoo:") and dataset is None and data is None:
            raise KtrainError(f"'{spec}' is an untrained zoo architecture: export a trained model file or run folder")
    if data is None and dataset is not None:
        data = load_dataset(dataset, data_dir=data_dir)
    if data is not None:
        model = models.load_for(spec, role="exported", data=data, input_scale=input_scale)
    elif not isinstance(spec, str):  # a model object
        model = spec
    else:  # a file (a zoo: name needs the data, refused above): nothing to build it for
        model = models.load_model(spec, role="student", input_shape=(), num_classes=0)
    with phase(f"Converting to TFLite ({mode})"):
        content = convert(float32_copy(model), mode, data, model)
    try:
        Path(out_path).parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise write_failed(Path(out_path), exc, "give another OUTPUT path") from None
    with atomic_write(Path(out_path), "give another OUTPUT path") as temporary:
        temporary.write_bytes(content)
    report = {"file": out_path, "mode": mode, "bytes": len(content), "source": label(spec)}
    if data is None:
        return report
    with phase(f"Checking the TFLite model on {len(data.y_test)} test images"):
        report.update(_scores(model, content, data, max_accuracy_drop))
    return report


def _scores(model, content: bytes, data: DataSplits, max_accuracy_drop: float) -> dict:
    """Test accuracy of ``model`` and of its TFLite ``content``, their agreement, the median latency."""
    lite = LiteModel(content)
    images = scaling.apply(model, model_input_array(data.x_test))
    keras_predictions = np.argmax(np.asarray(model.predict(images, batch_size=256, verbose=0)), axis=-1)
    lite_predictions, latencies = [], []
    for image in images:
        started = time.perf_counter()
        scores = lite(image)
        latencies.append(time.perf_counter() - started)
        lite_predictions.append(int(np.argmax(scores)))
    lite_predictions = np.array(lite_predictions)
    timed = latencies[:LATENCY_SAMPLES] if len(latencies) > 10 else latencies
    report = {
        "test_images": len(images),
        "keras_accuracy": float(np.mean(keras_predictions == data.y_test)),
        "tflite_accuracy": float(np.mean(lite_predictions == data.y_test)),
        "agreement": float(np.mean(lite_predictions == keras_predictions)),
        "median_latency_ms": 1000 * statistics.median(timed),
        "max_accuracy_drop": max_accuracy_drop,
    }
    report["accuracy_drop"] = report["keras_accuracy"] - report["tflite_accuracy"]
    report["passed"] = report["accuracy_drop"] <= max_accuracy_drop
    return report


def check(report: dict) -> None:
    """Turn an accuracy drop over the bound into a clear error (non-zero exit)."""
    if report.get("passed") is False:
        raise KtrainError(
            f"the {report['mode']} model '{report['file']}' lost {report['accuracy_drop']:.4f} test accuracy "
            f"({report['keras_accuracy']:.4f} -> {report['tflite_accuracy']:.4f}), more than --max-accuracy-drop "
            f"{report['max_accuracy_drop']}: use float16 or float32, or allow a larger drop"
        )
