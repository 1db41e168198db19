"""Training-step throughput (images/s) of ktrain's engine, and of Keras 3's own Distiller, on synthetic data.

nanoGPT ``bench.py`` shape: synthetic data, warm-up steps (which include tracing and XLA
compilation), then timed steps ended by a host read of the step's statistics (a device sync).
Prints one JSON line per configuration, then each method's throughput as a ratio to KD online,
to the student alone and to Keras ``Distiller.fit`` measured in the same run.

    python benchmarks/step_throughput.py                      # seed CIFAR-10 teacher/student, jit off/on, bs 64/256
    python benchmarks/step_throughput.py --jit off --methods kd_online kd_cached keras_distiller
    python benchmarks/step_throughput.py --jit off --methods kd_online kd_online_bf16 keras_distiller
    python benchmarks/step_throughput.py --pair digits --steps 50
    python benchmarks/step_throughput.py --pair cifar10_pyramid --jit off   # selective KD vs ensemble KD
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras
import numpy as np
import tensorflow as tf

from ktrain import zoo
from ktrain.config import OptimizerConfig, TrainConfig
from ktrain.data import DataSplits
from ktrain.engine import Trainer
from ktrain.methods import get_method
from ktrain.precision import policy, policy_copy
from ktrain.seeding import seed_everything
from ktrain.specialists import ensemble_from_model
from ktrain.strategy import build_strategy, describe
from ktrain.taps import method_view
from ktrain.targets import compute

PAIRS = {
    "cifar10": ("cifar10_baseline_ensemble", "cifar10_student_strong", (32, 32, 3), 10),
    "digits": ("digits_teacher", "digits_student", (8, 8, 1), 10),
    # A generalist and two specialists (zoo:pyramid_ensemble) teaching the seed's strong student.
    "cifar10_pyramid": ("pyramid_ensemble", "cifar10_student_strong", (32, 32, 3), 10),
}
METHODS = {
    "student_alone": "supervised",
    "kd_online": "kd",
    "kd_online_bf16": "kd",  # the teacher's forward pass in bfloat16 (--teacher-precision bfloat16)
    "kd_cached": "kd",
    "pkt": "pkt",
    "pkt_kd": "pkt+kd",
    "keras_distiller": None,
    # Ensemble teachers only (the cifar10_pyramid pair).
    "ensemble_kd_online": "ensemble-kd",
    "ensemble_kd_cached": "ensemble-kd",
    "selective_kd_online": "selective-kd",
    "selective_kd_cached": "selective-kd",
}
ENSEMBLE_METHODS = [
    "student_alone",
    "ensemble_kd_online",
    "selective_kd_online",
    "ensemble_kd_cached",
    "selective_kd_cached",
]
TEMPERATURE, KD_LAMBDA = 2.0, 0.1


def synthetic(shape, classes, count):
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(count, *shape), dtype=np.uint8)
    labels = rng.integers(0, classes, size=(count,), dtype=np.int32)
    return images, labels


def ktrain_step(strategy, teacher, student, method_key, batch_size, jit, warmup, steps, images, labels):
    method = get_method(METHODS[method_key])()
    data = DataSplits(
        "synthetic",
        images,
        labels,
        images[:batch_size],
        labels[:batch_size],
        images[:1],
        labels[:1],
        int(labels.max()) + 1,
    )
    teacher_view = None
    if method.uses_ensemble:
        teacher_view = ensemble_from_model(teacher, data, "teacher")
        method.attach_teacher(teacher_view)
    elif method.uses_teacher:
        if method_key.endswith("_bf16"):
            teacher = policy_copy(teacher, "bfloat16")
        teacher_view = method_view(teacher, method, "teacher")
    targets = None
    if method_key.endswith("_cached"):
        targets = compute(teacher_view, data, batch_size)
    config = TrainConfig(batch_size=batch_size, jit="on" if jit else "off", optimizer=OptimizerConfig()).validate()
    trainer = Trainer(
        student=method_view(student, method),
        teacher=teacher_view,
        method=method,
        config=config,
        strategy=strategy,
        targets=targets,
    )
    indices = np.arange(len(labels), dtype=np.int32)
    dataset = (
        tf.data.Dataset.from_tensor_slices((images, labels, indices)).repeat().batch(batch_size, drop_remainder=True)
    )
    dataset = dataset.map(
        lambda x, y, i: {"images": tf.cast(x, tf.float32) / 255.0, "labels": y, "indices": i, "views": tf.zeros_like(i)}
    ).prefetch(tf.data.AUTOTUNE)
    iterator = iter(strategy.experimental_distribute_dataset(dataset))
    float(trainer.steps.train_loop(iterator, tf.constant(warmup))["loss"])  # trace, compile, warm caches
    started = time.perf_counter()
    float(trainer.steps.train_loop(iterator, tf.constant(steps))["loss"])  # the host read waits for the device
    return time.perf_counter() - started


def keras_distiller_step(teacher, student, batch_size, jit, warmup, steps, images, labels):
    """What a user would pick instead: keras.distillation.Distiller + fit, same models, same loss."""
    distiller = keras.distillation.Distiller(
        teacher=teacher,
        student=student,
        distillation_losses=keras.distillation.LogitsDistillation(temperature=TEMPERATURE),
        student_loss_weight=KD_LAMBDA / (1 + KD_LAMBDA),
    )
    distiller.compile(
        optimizer=keras.optimizers.Adam(1e-3),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit,
    )
    dataset = tf.data.Dataset.from_tensor_slices((images, labels)).repeat().batch(batch_size, drop_remainder=True)
    dataset = dataset.map(lambda x, y: (tf.cast(x, tf.float32) / 255.0, y)).prefetch(tf.data.AUTOTUNE)
    marks = {}

    class Clock(keras.callbacks.Callback):
        # Time from the end of the last warm-up batch to the end of the last batch, so fit's own
        # start-up is not charged to Keras; Keras syncs each batch when it reads the logs.
        def on_train_batch_end(self, batch, logs=None):
            if batch + 1 in (warmup, warmup + steps):
                float(logs["loss"])
                marks[batch + 1] = time.perf_counter()

    distiller.fit(dataset, epochs=1, steps_per_epoch=warmup + steps, verbose=0, callbacks=[Clock()])
    return marks[warmup + steps] - marks[warmup]


def measure(pair, method_key, batch_size, jit, warmup, steps, strategy_name, deterministic=False, precision="float32"):
    with policy(precision):  # the zoo models are built under it, as --precision does
        row = _measure(pair, method_key, batch_size, jit, warmup, steps, strategy_name, deterministic)
    return {**row, "precision": precision}


def _measure(pair, method_key, batch_size, jit, warmup, steps, strategy_name, deterministic):
    teacher_name, student_name, shape, classes = PAIRS[pair]
    strategy = build_strategy(strategy_name)
    seed_everything(0, deterministic=deterministic and not jit)  # XLA has no deterministic MaxPool gradient
    with strategy.scope():
        teacher = zoo.build(teacher_name, shape, classes)
        student = zoo.build(student_name, shape, classes)
    images, labels = synthetic(shape, classes, batch_size * 4)
    if method_key == "keras_distiller":
        seconds = keras_distiller_step(teacher, student, batch_size, jit, warmup, steps, images, labels)
    else:
        seconds = ktrain_step(strategy, teacher, student, method_key, batch_size, jit, warmup, steps, images, labels)
    return {
        "benchmark": "step_throughput",
        "pair": pair,
        "method": method_key,
        "batch_size": batch_size,
        "jit": jit,
        "strategy": describe(strategy)["name"],
        "replicas": strategy.num_replicas_in_sync,
        "device": "GPU" if tf.config.list_physical_devices("GPU") else "CPU",
        "steps": steps,
        "deterministic_ops": deterministic and not jit,
        "images_per_second": round(steps * batch_size / seconds, 1),
        "ms_per_step": round(1000 * seconds / steps, 2),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pair", choices=sorted(PAIRS), default="cifar10")
    parser.add_argument(
        "--methods",
        nargs="+",
        choices=list(METHODS),
        help="default: every single-teacher method, or for cifar10_pyramid the ensemble ones",
    )
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[64, 256])
    parser.add_argument("--jit", nargs="+", choices=["on", "off"], default=["off", "on"])
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--strategy", default="one", choices=["one", "mirrored", "auto"])
    parser.add_argument("--precision", default="float32", choices=["float32", "mixed_bfloat16", "mixed_float16"])
    parser.add_argument(
        "--deterministic",
        action="store_true",
        help="enable TF op determinism, as ktrain runs do without XLA (same seed, same history)",
    )
    args = parser.parse_args()
    if args.methods is None:
        ensemble = args.pair == "cifar10_pyramid"
        args.methods = ENSEMBLE_METHODS if ensemble else [key for key in METHODS if key not in ENSEMBLE_METHODS[1:]]
    rows = []
    for batch_size in args.batch_sizes:
        for jit in args.jit:
            for method_key in args.methods:
                row = measure(
                    args.pair,
                    method_key,
                    batch_size,
                    jit == "on",
                    args.warmup,
                    args.steps,
                    args.strategy,
                    args.deterministic,
                    args.precision,
                )
                rows.append(row)
                print(json.dumps(row), flush=True)
    for row in rows:
        same = {
            r["method"]: r["images_per_second"]
            for r in rows
            if (r["batch_size"], r["jit"]) == (row["batch_size"], row["jit"])
        }
        bases = ["kd_online", "student_alone", "keras_distiller"]
        if row["method"].startswith("selective_kd"):
            bases.append(row["method"].replace("selective", "ensemble"))  # the same targets, online or cached
        ratios = {
            f"vs_{base}": round(row["images_per_second"] / same[base], 3)
            for base in bases
            if base in same and base != row["method"]
        }
        if ratios:
            print(
                json.dumps(
                    {
                        "benchmark": "step_throughput_ratio",
                        "method": row["method"],
                        "batch_size": row["batch_size"],
                        "jit": row["jit"],
                        **ratios,
                    }
                ),
                flush=True,
            )


if __name__ == "__main__":
    main()
