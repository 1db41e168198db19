"""Augmented KD at cache speed: training throughput with a K-view cache, the cache's build time and
size, and peak memory, on the seed's CIFAR-10 pair and synthetic CIFAR-sized images.

Throughput runs the real pipeline (``ktrain.views.TrainingSamples``: shuffle, per-sample views,
batching) into the engine's compiled loop: warm-up steps (tracing included), then timed steps ended
by a host read. Compared within one run, at the same batch size and augmentation:

* ``student_alone``: the student trained on labels only (the floor);
* ``kd_online``: KD with the teacher run on every augmented batch;
* ``kd_views``: KD from the teacher's logits for K views of every sample (``--views K``).

``pipeline`` times the pipeline alone (no step) without augmentation, with ``--augment`` and with
mixup added. The build time of a K-view cache is measured on ``--build-images`` images for each K and scaled
linearly to 50,000 (one teacher pass per view and image); its size is exact. Peak resident memory
is measured in a fresh process that trains KD on 50,000 images from a K = 16 cache of the right
shape (random values: memory does not depend on them).

    python benchmarks/view_cache.py                       # everything, about 10 minutes on 2 cores
    python benchmarks/view_cache.py --parts throughput --augment flip,crop,mixup
"""

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import tensorflow as tf

from ktrain import zoo
from ktrain.augment import Views, parse_augment
from ktrain.config import OptimizerConfig, TrainConfig
from ktrain.data import DataSplits
from ktrain.engine import Trainer
from ktrain.methods import get_method
from ktrain.seeding import seed_everything
from ktrain.strategy import build_strategy
from ktrain.taps import method_view
from ktrain.targets import CachePlan, SoftTargets, compute
from ktrain.views import TrainingSamples

TEACHER, STUDENT, SHAPE, CLASSES = "cifar10_baseline_ensemble", "cifar10_student_strong", (32, 32, 3), 10


def synthetic(count: int) -> DataSplits:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, size=(count, *SHAPE), dtype=np.uint8)
    labels = rng.integers(0, CLASSES, size=(count,), dtype=np.int32)
    return DataSplits("synthetic", images, labels, images[:256], labels[:256], images[:1], labels[:1], CLASSES)


def trainer_for(method_key: str, data: DataSplits, views: Views, batch_size: int, targets=None):
    strategy = build_strategy("one")
    seed_everything(0)
    with strategy.scope():
        teacher = zoo.build(TEACHER, SHAPE, CLASSES)
        student = zoo.build(STUDENT, SHAPE, CLASSES)
    method = get_method("supervised" if method_key == "student_alone" else "kd")()
    teacher_view = method_view(teacher, method, "teacher") if method.uses_teacher else None
    if method_key == "kd_views" and targets is None:
        targets = compute(teacher_view, data, 256, CachePlan(views))
    config = TrainConfig(batch_size=batch_size, jit="off", optimizer=OptimizerConfig()).validate()
    trainer = Trainer(
        student=method_view(student, method),
        teacher=teacher_view,
        method=method,
        config=config,
        strategy=strategy,
        targets=targets,
        views=views,
    )
    return trainer, strategy


def throughput(method_key, data, views, batch_size, warmup, steps) -> dict:
    trainer, strategy = trainer_for(method_key, data, views, batch_size)
    samples = TrainingSamples(data.x_train, data.y_train, views)
    dataset = samples.epoch(batch_size, seed=0, epoch=1).repeat()
    iterator = iter(strategy.experimental_distribute_dataset(dataset))
    float(trainer.steps.train_loop(iterator, tf.constant(warmup))["loss"])
    started = time.perf_counter()
    float(trainer.steps.train_loop(iterator, tf.constant(steps))["loss"])
    seconds = time.perf_counter() - started
    return {
        "benchmark": "view_cache",
        "part": "throughput",
        "method": method_key,
        "augment": str(views.augment),
        "views": views.count if method_key == "kd_views" else None,
        "batch_size": batch_size,
        "images_per_second": round(steps * batch_size / seconds, 1),
    }


def build(views: Views, images: int) -> dict:
    data = synthetic(images)
    strategy = build_strategy("one")
    seed_everything(0)
    with strategy.scope():
        teacher = zoo.build(TEACHER, SHAPE, CLASSES)
    method = get_method("kd")()
    teacher_view = method_view(teacher, method, "teacher")
    compute(teacher_view, synthetic(256), 256, CachePlan(views))  # trace and warm up
    started = time.perf_counter()
    targets = compute(teacher_view, data, 256, CachePlan(views))
    seconds = time.perf_counter() - started
    per_image_view = seconds / (images * views.count)
    return {
        "benchmark": "view_cache",
        "part": "build",
        "views": views.count,
        "images": images,
        "seconds": round(seconds, 1),
        "teacher_views_per_second": round(1 / per_image_view, 1),
        "seconds_for_50000_images": round(per_image_view * 50_000 * views.count, 1),
        "megabytes_for_50000_images": round(50_000 * views.count * CLASSES * 4 / 2**20, 1),
        "train_array_shape": list(targets.arrays["train"]["logits"].shape),
    }


def memory(views: Views, batch_size: int, steps: int) -> dict:
    """Peak RSS of KD on 50,000 images from a K-view cache (run in a fresh process)."""
    data = synthetic(50_000)
    rng = np.random.default_rng(0)
    train = rng.normal(size=(50_000, views.count, CLASSES)).astype(np.float32)
    val = rng.normal(size=(len(data.y_val), CLASSES)).astype(np.float32)
    targets = SoftTargets({"train": {"logits": train}, "val": {"logits": val}}, "synthetic", views)
    trainer, strategy = trainer_for("kd_views", data, views, batch_size, targets)
    samples = TrainingSamples(data.x_train, data.y_train, views).epoch(batch_size, seed=0, epoch=1)
    iterator = iter(strategy.experimental_distribute_dataset(samples))
    float(trainer.steps.train_loop(iterator, tf.constant(steps))["loss"])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # KiB on Linux
    return {
        "benchmark": "view_cache",
        "part": "memory",
        "images": 50_000,
        "views": views.count,
        "cache_megabytes": round(train.nbytes / 2**20, 1),
        "images_megabytes": round(data.x_train.nbytes / 2**20, 1),
        "peak_rss_gib": round(peak, 2),
    }


def pipeline(augment: str, images: int, batch_size: int) -> dict:
    """Images/s of the training pipeline alone (rendering views, batching), without a step."""
    data = synthetic(images)
    samples = TrainingSamples(data.x_train, data.y_train, Views(parse_augment(augment), 4 if augment else None))
    for _ in samples.epoch(batch_size, seed=0, epoch=0):  # warm-up
        pass
    started, seen = time.perf_counter(), 0
    for batch in samples.epoch(batch_size, seed=0, epoch=1):
        seen += int(batch["images"].shape[0])
    rate = seen / (time.perf_counter() - started)
    return {
        "benchmark": "view_cache",
        "part": "pipeline",
        "augment": augment or "none",
        "images_per_second": round(rate),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", choices=["throughput", "pipeline", "build", "memory"], default=None)
    parser.add_argument("--augment", default="flip,crop")
    parser.add_argument("--views", type=int, default=4, help="K of the throughput runs")
    parser.add_argument("--build-views", nargs="+", type=int, default=[4, 16])
    parser.add_argument("--build-images", type=int, default=2048)
    parser.add_argument("--images", type=int, default=4096, help="training images of the throughput runs")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--steps", type=int, default=40)
    args = parser.parse_args()
    augment = parse_augment(args.augment)
    parts = args.parts or ["throughput", "pipeline", "build", "memory"]
    if parts == ["memory"]:
        print(json.dumps(memory(Views(augment, 16), args.batch_size, args.steps)), flush=True)
        return
    rows = []
    if "throughput" in parts:
        data = synthetic(args.images)
        for key in ("student_alone", "kd_online", "kd_views"):
            views = Views(augment, args.views if key == "kd_views" else None)
            rows.append(throughput(key, data, views, args.batch_size, args.warmup, args.steps))
            print(json.dumps(rows[-1]), flush=True)
        speed = {row["method"]: row["images_per_second"] for row in rows}
        ratios = {
            "kd_views_vs_student_alone": round(speed["kd_views"] / speed["student_alone"], 3),
            "kd_views_vs_kd_online": round(speed["kd_views"] / speed["kd_online"], 3),
        }
        print(json.dumps({"benchmark": "view_cache", "part": "ratios", **ratios}), flush=True)
    if "pipeline" in parts:
        for augment in ("", args.augment, f"{args.augment},mixup"):
            print(json.dumps(pipeline(augment, 8192, args.batch_size)), flush=True)
    if "build" in parts:
        for count in args.build_views:
            print(json.dumps(build(Views(augment, count), args.build_images)), flush=True)
    if "memory" in parts:
        command = [sys.executable, __file__, "--parts", "memory", "--augment", args.augment, "--steps", "20"]
        print(subprocess.run(command, capture_output=True, text=True, check=True).stdout.strip(), flush=True)


if __name__ == "__main__":
    main()
