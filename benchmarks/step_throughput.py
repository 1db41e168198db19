"""Training-step throughput (images/s) of ktrain's engine on synthetic data.

nanoGPT ``bench.py`` shape: synthetic data, warm-up steps (which include tracing and XLA
compilation), then timed steps ended by a host read of the step's statistics (a device sync).
Prints one JSON line per configuration.

    python benchmarks/step_throughput.py                      # seed CIFAR-10 teacher/student, jit on/off, bs 64/256
    python benchmarks/step_throughput.py --pair digits --steps 50
"""

import argparse
import json
import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import tensorflow as tf

from ktrain import zoo
from ktrain.config import OptimizerConfig, TrainConfig
from ktrain.engine import Trainer, seed_everything
from ktrain.methods import get_method
from ktrain.strategy import build_strategy, describe
from ktrain.taps import LogitsView

PAIRS = {
    "cifar10": ("cifar10_baseline_ensemble", "cifar10_student_strong", (32, 32, 3), 10),
    "digits": ("digits_teacher", "digits_student", (8, 8, 1), 10),
}
METHODS = {"student_alone": "supervised", "kd_online": "kd", "pkt": "pkt", "pkt_kd": "pkt+kd"}


def measure(pair, method_key, batch_size, jit, warmup, steps, strategy_name):
    teacher_name, student_name, shape, classes = PAIRS[pair]
    strategy = build_strategy(strategy_name)
    seed_everything(0, deterministic=False)  # XLA has no deterministic MaxPool gradient
    with strategy.scope():
        teacher = zoo.build(teacher_name, shape, classes)
        student = zoo.build(student_name, shape, classes)
    method = get_method(METHODS[method_key])()
    config = TrainConfig(batch_size=batch_size, jit="on" if jit else "off", strategy=strategy_name,
                         optimizer=OptimizerConfig()).validate()
    features = method.uses_features
    trainer = Trainer(student=LogitsView(student, features=features),
                      teacher=LogitsView(teacher, features=features) if method.uses_teacher else None,
                      method=method, config=config, strategy=strategy)
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(batch_size * 4, *shape), dtype=np.uint8)
    labels = rng.integers(0, classes, size=(batch_size * 4,), dtype=np.int32)
    indices = np.arange(len(labels), dtype=np.int32)
    dataset = tf.data.Dataset.from_tensor_slices((images, labels, indices)).repeat().batch(batch_size, drop_remainder=True)
    dataset = dataset.map(lambda x, y, i: (tf.cast(x, tf.float32) / 255.0, y, i)).prefetch(tf.data.AUTOTUNE)
    iterator = iter(strategy.experimental_distribute_dataset(dataset))
    float(trainer.steps.train_loop(iterator, tf.constant(warmup))["loss"])  # trace, compile, warm caches
    started = time.perf_counter()
    float(trainer.steps.train_loop(iterator, tf.constant(steps))["loss"])  # the host read waits for the device
    seconds = time.perf_counter() - started
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
        "images_per_second": round(steps * batch_size / seconds, 1),
        "ms_per_step": round(1000 * seconds / steps, 2),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pair", choices=sorted(PAIRS), default="cifar10")
    parser.add_argument("--methods", nargs="+", choices=sorted(METHODS), default=sorted(METHODS))
    parser.add_argument("--batch-sizes", nargs="+", type=int, default=[64, 256])
    parser.add_argument("--jit", nargs="+", choices=["on", "off"], default=["off", "on"])
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--strategy", default="one", choices=["one", "mirrored", "auto"])
    args = parser.parse_args()
    rows = []
    for batch_size in args.batch_sizes:
        for method_key in args.methods:
            for jit in args.jit:
                row = measure(args.pair, method_key, batch_size, jit == "on", args.warmup, args.steps, args.strategy)
                rows.append(row)
                print(json.dumps(row), flush=True)
    # Each method's throughput as a ratio to KD's (and to the student alone) in the same run.
    for row in rows:
        same = {r["method"]: r["images_per_second"] for r in rows
                if (r["batch_size"], r["jit"]) == (row["batch_size"], row["jit"])}
        ratios = {f"vs_{base}": round(row["images_per_second"] / same[base], 3)
                  for base in ("kd_online", "student_alone") if base in same and base != row["method"]}
        if ratios:
            print(json.dumps({"benchmark": "step_throughput_ratio", "method": row["method"],
                              "batch_size": row["batch_size"], "jit": row["jit"], **ratios}), flush=True)


if __name__ == "__main__":
    main()
