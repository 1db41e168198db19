"""Where a real epoch's time goes, and whole-process epochs against Keras ``fit``.

``whole``: the seed's CIFAR-10 pair on 4,096 synthetic 32×32×3 images in an .npz (a 70/30
train/validation split, batch 64, no XLA). Each command runs as its own process for 1 and for 4
epochs; its epoch time is (4-epoch wall − 1-epoch wall) / 3, so start-up, tracing and the teacher's
cache pass cancel out. Commands: ``ktrain distill`` (cached KD), ``ktrain train`` (the student
alone), and Keras ``fit`` of the same student with the same split, validation data and batch.

``profile``: one in-process ``ktrain.distill`` (cached KD, 5 epochs, the same data) timed by phase:
the compiled training steps, the time between an epoch's last step and the end of its training
phase (when its tf.data iterator is released), validation, and checkpointing.

    python benchmarks/epoch_time.py                 # both parts, about 4 minutes on 2 cores
    python benchmarks/epoch_time.py --parts profile
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

IMAGES, BATCH, VAL_SPLIT = 4096, 64, 0.3
TEACHER, STUDENT = "zoo:cifar10_baseline_ensemble", "zoo:cifar10_student_strong"

KERAS_FIT = """
import os, sys
os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
import numpy as np, keras
from ktrain import zoo
from ktrain.data import stratified_split
with np.load(sys.argv[1]) as archive:
    x, y = archive["x_train"], archive["y_train"].astype("int32")
kept, held = stratified_split(y, {val_split}, 0)
keras.utils.set_random_seed(0)
model = zoo.build("{student}", (32, 32, 3), 10)
loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
model.compile(keras.optimizers.Adam(1e-3), loss, metrics=["accuracy"])
model.fit(x[kept] / 255.0, y[kept], batch_size={batch}, epochs=int(sys.argv[2]),
          validation_data=(x[held] / 255.0, y[held]), verbose=0)
"""


def write_data(folder: Path) -> Path:
    rng = np.random.default_rng(0)
    path = folder / "cifar_sized.npz"
    np.savez(
        path,
        x_train=rng.integers(0, 256, (IMAGES, 32, 32, 3), dtype=np.uint8),
        y_train=rng.integers(0, 10, IMAGES),
        x_test=rng.integers(0, 256, (512, 32, 32, 3), dtype=np.uint8),
        y_test=rng.integers(0, 10, 512),
    )
    return path


def wall(command: list[str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


def whole(folder: Path, data: Path) -> dict:
    common = [str(data), "-bs", str(BATCH), "--val-split", str(VAL_SPLIT), "-v", "0", "--overwrite"]
    ktrain = [sys.executable, "-m", "ktrain.cli"]
    commands = {
        "ktrain_distill_cached": lambda e: (
            ktrain + ["distill", TEACHER, STUDENT, *common, "-e", str(e), "-out", str(folder / "d")]
        ),
        "ktrain_train": lambda e: ktrain + ["train", STUDENT, *common, "-e", str(e), "-out", str(folder / "t")],
        "keras_fit_student": lambda e: [
            sys.executable,
            "-c",
            KERAS_FIT.format(val_split=VAL_SPLIT, student=STUDENT.removeprefix("zoo:"), batch=BATCH),
            str(data),
            str(e),
        ],
    }
    seconds = {}
    for name, command in commands.items():
        one, four = wall(command(1)), wall(command(4))
        seconds[name] = round((four - one) / 3, 2)
    return {
        "benchmark": "epoch_time",
        "part": "whole",
        "seconds_per_epoch": seconds,
        "distill_vs_keras_fit": round(seconds["keras_fit_student"] / seconds["ktrain_distill_cached"], 3),
        "train_vs_keras_fit": round(seconds["keras_fit_student"] / seconds["ktrain_train"], 3),
    }


def profile(data: Path) -> dict:
    import ktrain
    import ktrain.checkpoint
    import ktrain.engine

    phases = {"steps": 0.0, "after_last_step": 0.0, "validation": 0.0, "checkpoint": 0.0}
    marks = {"last": 0.0}

    class Clock(ktrain.Listener):
        def on_train_begin(self, title, epochs, steps_per_epoch):
            marks["last"] = time.perf_counter()

    def timed(owner, name, phase, before=None):
        function = getattr(owner, name)

        def wrapper(*args, **kwargs):
            started = time.perf_counter()
            if before:
                before(started)
            result = function(*args, **kwargs)
            ended = time.perf_counter()
            if phase == "train":
                phases["after_last_step"] += ended - marks["last"]
            else:
                phases[phase] += ended - started
            return result

        setattr(owner, name, wrapper)

    loop = ktrain.engine.Steps.__init__

    def init(self, *args, **kwargs):
        loop(self, *args, **kwargs)
        inner = self.train_loop

        def train_loop(iterator, steps):
            started = time.perf_counter()
            result = inner(iterator, steps)
            float(result["loss"])
            marks["last"] = time.perf_counter()
            phases["steps"] += marks["last"] - started
            return result

        self.train_loop = train_loop

    ktrain.engine.Steps.__init__ = init
    timed(ktrain.engine.Trainer, "_train_epoch", "train")
    timed(ktrain.engine.Trainer, "evaluate", "validation")
    timed(ktrain.checkpoint.RunCheckpoint, "save", "checkpoint")
    with np.load(data) as archive:
        arrays = tuple(archive[key] for key in ("x_train", "y_train", "x_test", "y_test"))
    with tempfile.TemporaryDirectory() as out:
        result = ktrain.distill(
            TEACHER, STUDENT, arrays, epochs=5, batch_size=BATCH, val_split=VAL_SPLIT, out_folder=out, listener=Clock()
        )
    history = result.history
    epochs = history["epoch_seconds"][1:]  # the first epoch also traces
    return {
        "benchmark": "epoch_time",
        "part": "profile",
        "epoch_seconds": [round(v, 2) for v in history["epoch_seconds"]],
        "images_per_second_in_epoch": [round(v) for v in history["images_per_second"]],
        "seconds_over_5_epochs": {key: round(value, 2) for key, value in phases.items()},
        "mean_epoch_after_first": round(float(np.mean(epochs)), 2),
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", choices=["whole", "profile"], default=["whole", "profile"])
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        data = write_data(Path(folder))
        if "whole" in args.parts:
            print(json.dumps(whole(Path(folder), data)), flush=True)
        if "profile" in args.parts:
            print(json.dumps(profile(data)), flush=True)


if __name__ == "__main__":
    main()
