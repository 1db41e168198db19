"""A reduced-precision teacher: its fidelity to float32 on real data, and its forward-pass speed.

Fidelity: trains ``zoo:digits_teacher`` on the built-in digits (60 epochs, seed 0), then loads it
as ktrain runs do with ``--teacher-precision bfloat16`` and ``float16`` and prints what
results.json records (top-1 agreement and mean KL(float32 ‖ reduced) at T = 1 on the validation
split) plus the same figures and the accuracy on the test split.

Speed: the seed's CIFAR-10 teacher predicting synthetic 32×32×3 images in inference mode, in each
precision, images/s after a warm-up (a host read ends each batch).

    python benchmarks/teacher_precision.py
"""

import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import tensorflow as tf

import ktrain
from ktrain import zoo
from ktrain.data import load_dataset
from ktrain.evaluation import predict_logits
from ktrain.loading import load_teacher
from ktrain.precision import fidelity, policy_copy
from ktrain.specs import ModelsSpec
from ktrain.taps import NetworkView


def digits_fidelity(epochs: int = 60) -> list[dict]:
    teacher = ktrain.train("zoo:digits_teacher", "digits", epochs=epochs).student
    data = load_dataset("digits")
    reference = NetworkView(teacher)
    test_reference = predict_logits(reference, data.x_test)
    rows = []
    for precision in ("bfloat16", "float16"):
        view, _ = load_teacher(ModelsSpec(teacher=teacher), data, (), precision=precision)
        test_reduced = predict_logits(view, data.x_test)
        rows.append(
            {
                "benchmark": "teacher_precision",
                "part": "fidelity",
                "data": "digits",
                "precision": precision,
                "validation": view.fidelity,
                "test": fidelity(test_reference, test_reduced),
                "test_accuracy_float32": float(np.mean(np.argmax(test_reference, 1) == data.y_test)),
                "test_accuracy_reduced": float(np.mean(np.argmax(test_reduced, 1) == data.y_test)),
            }
        )
    return rows


def cifar_speed(batch_size: int = 256, batches: int = 12) -> list[dict]:
    model = zoo.build("cifar10_baseline_ensemble", (32, 32, 3), 10)
    images = tf.constant(np.random.default_rng(0).random((batch_size, 32, 32, 3), np.float32))
    rows = []
    for precision in ("float32", "bfloat16", "float16"):
        view = NetworkView(policy_copy(model, precision))
        for _ in range(3):
            view.predict(images)["logits"].numpy()
        started = time.perf_counter()
        for _ in range(batches):
            view.predict(images)["logits"].numpy()
        rate = batches * batch_size / (time.perf_counter() - started)
        rows.append(
            {
                "benchmark": "teacher_precision",
                "part": "speed",
                "precision": precision,
                "images_per_second": round(rate, 1),
            }
        )
    base = rows[0]["images_per_second"]
    for row in rows:
        row["vs_float32"] = round(row["images_per_second"] / base, 3)
    return rows


def main():
    for row in digits_fidelity() + cifar_speed():
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
