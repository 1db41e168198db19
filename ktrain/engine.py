"""The Trainer: builds state inside the strategy's scope and runs the plain-Python outer loop.

Per epoch: compiled train steps over a freshly seeded shuffle, a validation pass, then the
controllers (LR-on-plateau, early stopping, best weights) decide what happens next. No
``model.fit`` and no Keras callbacks.
"""

from __future__ import annotations

import logging
import math
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import tensorflow as tf

from ktrain.augment import Views
from ktrain.checkpoint import RunCheckpoint
from ktrain.config import TrainConfig
from ktrain.control import BestTracker, EarlyStopping, Plateau, mode_for
from ktrain.data import DataSplits, eval_pipeline
from ktrain.errors import KtrainError, RunFault
from ktrain.listener import Listener
from ktrain.methods.base import Method
from ktrain.optim import build_optimizer
from ktrain.precision import wrap_optimizer
from ktrain.step import Steps
from ktrain.strategy import host_only, jit_enabled
from ktrain.taps import NetworkView
from ktrain.targets import SoftTargets, Table, tables
from ktrain.views import TrainingSamples

log = logging.getLogger("ktrain")

UPDATES_PER_EPOCH = 10


@dataclass
class FitResult:
    """What a training run produced: per-epoch history and how it ended."""

    history: list[dict[str, float]] = field(default_factory=list)
    best_epoch: int | None = None
    stopped_early: bool = False
    restored_best: bool = False
    seconds: float = 0.0

    def columns(self) -> dict[str, list[float]]:
        """The history as ``{key: [value per epoch]}``, like a Keras ``History.history``."""
        keys = [key for key in self.history[0] if key != "epoch"] if self.history else []
        return {key: [record.get(key, math.nan) for record in self.history] for key in keys}


@dataclass
class _Progress:
    """What the outer loop carries from epoch to epoch, and what a checkpoint saves of it."""

    plateau: Plateau
    stopper: EarlyStopping
    best: BestTracker
    result: FitResult
    best_weights: list[np.ndarray] | None = None
    # The learning-rate schedule and, for cosine, the run length it was fixed for.
    schedule: dict = field(default_factory=dict)

    def snapshot(self, epoch: int, in_progress: dict | None = None) -> dict:
        return {
            "epoch": epoch,
            "lr_schedule": self.schedule,
            "history": self.result.history,
            "plateau": vars(self.plateau),
            "early_stopping": vars(self.stopper),
            "best": vars(self.best),
            "stopped_early": self.result.stopped_early,
            "in_progress": in_progress,
        }

    def load(self, state: dict) -> None:
        self.result.history = state["history"]
        for controller, key in ((self.plateau, "plateau"), (self.stopper, "early_stopping"), (self.best, "best")):
            vars(controller).update(state[key])
        self.result.stopped_early = state["stopped_early"]


class Trainer:
    """Trains ``student`` with ``method`` (and ``teacher`` if the method needs one) under ``strategy``.

    Build the models inside ``strategy.scope()`` before creating the Trainer. The method's own
    state (``method.build_state``) is built here, in the scope, and trained with the student.
    """

    def __init__(
        self,
        *,
        student: NetworkView,
        method: Method,
        config: TrainConfig,
        strategy: tf.distribute.Strategy,
        teacher: NetworkView | None = None,
        listener: Listener | None = None,
        title: str | None = None,
        epoch_metrics: Callable[[], dict[str, float]] | None = None,
        targets: SoftTargets | None = None,
        views: Views | None = None,
    ):
        """``epoch_metrics``, if given, is called after each validation pass and its values join the
        epoch's logs (the kNN accuracy of feature methods on validation). ``targets``, if given, are
        cached teacher taps used for the train and validation splits instead of running the teacher
        (which still scores the test split). ``views``: how training samples are augmented (and, with
        a view count, which views a K-view cache holds)."""
        if method.uses_teacher and teacher is None:
            raise KtrainError(f"method '{method.name}' needs a teacher model")
        if teacher is not None:
            teacher.model.trainable = False
        self.student = student
        self.teacher = teacher if method.uses_teacher else None
        self.method = method
        self.config = config
        self.strategy = strategy
        self.listener = listener or Listener()
        self.title = title or method.display_name
        self.epoch_metrics = epoch_metrics
        self.views = views or Views()
        if targets is not None and targets.views != (self.views if self.views.augment else None):
            raise KtrainError(
                f"the cached soft targets hold views {targets.views}, the run shows {self.views}: rebuild the "
                "cache for this --augment, --views and --view-seed, or use --targets online"
            )
        self.samples: TrainingSamples | None = None
        self.jit = jit_enabled(config.jit, strategy)
        self._plain_input = host_only(strategy)
        with strategy.scope():
            method.build_state(*self._tap_shapes())
            optimizer, self.rate = build_optimizer(config.optimizer, config.schedule)
            self.base_lr = self.rate.base
            self.optimizer = wrap_optimizer(optimizer, config.precision)
            self.optimizer.build(student.model.trainable_variables + method.trainable_variables)
            self.epoch = tf.Variable(0.0, trainable=False, dtype=tf.float32, name="epoch")
            tables = self._tables(targets) if targets is not None and self.teacher is not None else None
        self.steps = Steps(
            strategy=strategy,
            student=student,
            teacher=self.teacher,
            method=method,
            optimizer=self.optimizer,
            optimizer_config=config.optimizer,
            global_batch_size=config.batch_size,
            epoch=self.epoch,
            epochs=config.epochs,
            jit=self.jit,
            tables=tables,
        )

    def _tap_shapes(self) -> tuple[dict, dict]:
        """The shapes of the method's taps, by the method's tap names, for ``build_state``."""
        student = {name: self.student.shapes[tap.key] for name, tap in self.method.student_taps().items()}
        teacher = {}
        if self.teacher is not None:
            teacher = {name: self.teacher.shapes[tap.key] for name, tap in self.method.teacher_taps().items()}
        return student, teacher

    def _tables(self, targets: SoftTargets) -> dict[str, dict[str, Table]]:
        needed = {tap.key for tap in self.method.teacher_taps().values()}
        missing = sorted(needed - targets.keys())
        if missing:
            raise KtrainError(
                f"the cached soft targets lack the teacher tap(s) {', '.join(missing)}: "
                "rebuild the cache for this method, or use --targets online"
            )
        return tables(targets, needed, self.teacher.output_width)

    # -- training ------------------------------------------------------------------------------
    def fit(self, data: DataSplits, checkpoint_dir: str | None = None, resume: bool = False) -> FitResult:
        """Train for the configured epochs; with ``checkpoint_dir`` checkpoint every epoch (and on
        Ctrl-C), and with ``resume`` continue from the newest checkpoint there."""
        config = self.config
        steps_per_epoch = check_batch_size(config.batch_size, len(data.y_train))
        self.rate.start(steps_per_epoch, config.epochs)
        progress = self._new_progress()
        checkpoint = None
        if checkpoint_dir is not None:
            with self.strategy.scope():
                checkpoint = RunCheckpoint(
                    checkpoint_dir, self.student.model, self.optimizer, self.base_lr, self.method.trainable_variables
                )
        first_epoch, in_progress = 1, None
        if resume:
            first_epoch, in_progress = self._resume(checkpoint, progress)
        chunk = max(1, math.ceil(steps_per_epoch / UPDATES_PER_EPOCH))
        started = time.perf_counter()
        self.listener.on_train_begin(self.title, config.epochs, steps_per_epoch)
        try:  # the display ends with the run, also one that fails (a NaN loss, with the next method to run)
            with InterruptGuard() as interrupt:
                for epoch in range(first_epoch, config.epochs + 1):
                    start = (
                        in_progress
                        if in_progress and in_progress["epoch"] == epoch
                        else {"steps_done": 0, "totals": {}}
                    )
                    in_progress = None
                    logs = self._run_epoch(data, epoch, steps_per_epoch, chunk, start, interrupt, checkpoint, progress)
                    if self._end_epoch(epoch, logs, progress, checkpoint):
                        break
        finally:
            self.listener.on_train_end()
        result = progress.result
        result.best_epoch = progress.best.epoch
        if progress.best_weights is not None and result.history and progress.best.epoch != result.history[-1]["epoch"]:
            self.student.model.set_weights(progress.best_weights)
            result.restored_best = True
            log.info(
                "restored the weights of epoch %d (best %s %.4g)",
                progress.best.epoch,
                self.method.monitor,
                progress.best.best,
            )
        result.seconds = time.perf_counter() - started
        return result

    def _new_progress(self) -> _Progress:
        schedule = self.config.schedule
        mode = mode_for(self.method.monitor)
        deltas = {} if self.method.monitor_min_delta is None else {"min_delta": self.method.monitor_min_delta}
        return _Progress(
            plateau=Plateau(mode, schedule.lr_patience, schedule.lr_decay, schedule.lr_min, **deltas),
            stopper=EarlyStopping(mode, schedule.early_stopping_patience, **deltas),
            best=BestTracker(mode),
            result=FitResult(),
            schedule={"name": self.rate.name, "epochs": self.config.epochs},
        )

    def _resume(self, checkpoint: RunCheckpoint | None, progress: _Progress) -> tuple[int, dict | None]:
        """Restore the newest checkpoint; returns the first epoch to run and an epoch cut short by Ctrl-C."""
        if checkpoint is None:
            raise KtrainError("--resume needs the run's checkpoint folder")
        state, progress.best_weights = checkpoint.restore()
        saved = state.get("lr_schedule") or {"name": "plateau"}
        if saved.get("name") != self.rate.name:
            raise KtrainError(
                f"--resume with --lr-schedule {self.rate.name}: the run started with {saved.get('name')}; "
                f"resume it with --lr-schedule {saved.get('name')}"
            )
        if self.rate.name == "cosine" and saved.get("epochs") != self.config.epochs:
            raise KtrainError(
                f"--resume with -e {self.config.epochs}: the cosine schedule was fixed at {saved.get('epochs')} "
                f"epochs when the run started; resume with -e {saved.get('epochs')}"
            )
        progress.load(state)
        first_epoch = self.config.epochs + 1 if state["stopped_early"] else state["epoch"] + 1
        return first_epoch, state.get("in_progress")

    def _run_epoch(self, data, epoch, steps_per_epoch, chunk, start, interrupt, checkpoint, progress) -> dict:
        """Train one epoch and validate; returns the epoch's logs. Ctrl-C checkpoints the epoch so far."""
        epoch_started = time.perf_counter()
        self.epoch.assign(float(epoch))
        totals, done = self._train_epoch(data, epoch, steps_per_epoch, chunk, start, interrupt)
        if done < steps_per_epoch:  # Ctrl-C: keep the epoch so far, then stop
            if checkpoint is not None:
                in_progress = {"epoch": epoch, "steps_done": done, "totals": totals}
                checkpoint.save(progress.snapshot(epoch - 1, in_progress), progress.best_weights)
            raise Interrupted(epoch, done, None if checkpoint is None else str(checkpoint.folder))
        train_seconds = time.perf_counter() - epoch_started
        logs = {"epoch": epoch, **_train_logs(totals, done)}
        validation = self.evaluate(data.x_val, data.y_val, split="val")
        logs.update({f"val_{key}": value for key, value in validation.items()})
        if self.epoch_metrics is not None:
            logs.update(self.epoch_metrics())
        logs["lr"] = float(self.optimizer.learning_rate.numpy())
        logs["epoch_seconds"] = time.perf_counter() - epoch_started
        logs["images_per_second"] = (done - start["steps_done"]) * self.config.batch_size / train_seconds
        return logs

    def _end_epoch(self, epoch: int, logs: dict, progress: _Progress, checkpoint: RunCheckpoint | None) -> bool:
        """Record the epoch, step the controllers, checkpoint; returns whether to stop early."""
        schedule, monitor = self.config.schedule, self.method.monitor
        progress.result.history.append(logs)
        self.listener.on_epoch_end(epoch, logs)
        value = logs[monitor]
        if progress.best.step(value, epoch) and not schedule.use_final_model:
            progress.best_weights = self.student.model.get_weights()
        new_lr = progress.plateau.step(value, float(self.base_lr.numpy())) if self.rate.follows_plateau else None
        if new_lr is not None:
            self.base_lr.assign(new_lr)
            log.info(
                "epoch %d: %s did not improve for %d epochs, learning rate -> %.3g",
                epoch,
                monitor,
                schedule.lr_patience,
                new_lr,
            )
        progress.result.stopped_early = progress.stopper.step(value)
        if checkpoint is not None:
            checkpoint.save(progress.snapshot(epoch), progress.best_weights)
        if progress.result.stopped_early:
            log.info(
                "epoch %d: early stopping, %s has not improved for %d epochs",
                epoch,
                monitor,
                schedule.early_stopping_patience,
            )
        return progress.result.stopped_early

    def _train_epoch(
        self, data: DataSplits, epoch: int, steps_per_epoch: int, chunk: int, start: dict, interrupt: InterruptGuard
    ) -> tuple[dict[str, float], int]:
        """Steps of one epoch from ``start["steps_done"]``; returns the summed statistics and the
        steps done (fewer than an epoch only after Ctrl-C)."""
        if self.samples is None or self.samples.source is not data.x_train:  # once per run: a copy of the split
            self.samples = TrainingSamples(data.x_train, data.y_train, self.views)
        dataset = self.samples.epoch(self.config.batch_size, self.config.seed, epoch)
        done = start["steps_done"]
        totals: dict[str, float] = dict(start["totals"])
        if done:
            dataset = dataset.skip(done)  # the same shuffle, so the same remaining batches
        iterator = iter(self._input(dataset))
        while done < steps_per_epoch and not interrupt.requested:
            stats = self.steps.train_loop(iterator, tf.constant(min(chunk, steps_per_epoch - done)))
            self.steps.check_trains()
            done += int(stats.pop("steps"))
            for name, value in stats.items():
                totals[name] = totals.get(name, 0.0) + float(value)
            if not math.isfinite(float(stats["loss"])):
                raise NumericalFault(
                    f"the training loss became {float(stats['loss'])} at epoch {epoch}, step {done}: "
                    "lower the learning rate (-lr) or clip gradients (-cn); checkpoints of earlier epochs are kept"
                )
            self.listener.on_steps(epoch, done, _train_logs(totals, done))
        return totals, done

    def _input(self, dataset: tf.data.Dataset):
        """``dataset`` as the steps take it: as it is on one CPU device (see ``strategy.host_only``),
        else distributed over the replicas."""
        return dataset if self._plain_input else self.strategy.experimental_distribute_dataset(dataset)

    # -- evaluation ----------------------------------------------------------------------------
    def evaluate(self, images: np.ndarray, labels: np.ndarray, split: str = "test") -> dict[str, float]:
        """Mean of each loss part, total loss, accuracy and cross-entropy over the given samples.

        ``split`` names where the samples come from: cached teacher targets exist for "train" and
        "val" only; anything else runs the teacher online."""
        dataset = self._input(eval_pipeline(images, labels, self.config.eval_batch_size))
        totals: dict[str, float] = {}
        for batch in dataset:
            for name, value in self.steps.eval_step(batch, split).items():
                totals[name] = totals.get(name, 0.0) + float(value)
        count = totals.pop("count")
        correct = totals.pop("correct")
        crossentropy = totals.pop("crossentropy_sum") / count
        parts = {name: value / count for name, value in totals.items()}
        penalties = self.student.model.losses
        if penalties:
            parts["l2"] = float(tf.add_n(penalties))
        return {**parts, "loss": sum(parts.values()), "accuracy": correct / count, "crossentropy": crossentropy}


def check_batch_size(batch_size: int, samples: int) -> int:
    """The steps of an epoch; refused when the batch is larger than the training split."""
    if batch_size > samples:
        raise KtrainError(
            f"batch size (-bs) {batch_size} is larger than the {samples} training samples: lower -bs or --val-split"
        )
    return samples // batch_size


class NumericalFault(RunFault):
    """A non-finite training loss; names the epoch and the step."""


class Interrupted(Exception):
    """Ctrl-C: the epoch so far is checkpointed (when the run has a checkpoint folder). Outside a
    training loop ``epoch`` and ``step`` are None, and ``checkpoint_dir`` holds the finished runs'
    checkpoints, if any."""

    def __init__(self, epoch: int | None, step: int | None, checkpoint_dir: str | None):
        super().__init__(f"interrupted at epoch {epoch}, step {step}")
        self.epoch, self.step, self.checkpoint_dir = epoch, step, checkpoint_dir


class InterruptGuard:
    """While active, the first Ctrl-C asks the loop to stop after the current steps; a second one
    interrupts at once. Only the main thread can install signal handlers; elsewhere it is inert."""

    def __init__(self):
        self.requested = False
        self._previous = None

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def __exit__(self, *exc):
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
        return False


def _train_logs(totals: dict[str, float], steps: int) -> dict[str, float]:
    """Per-step means of the loss parts; accuracy and cross-entropy over all samples seen."""
    count = totals["count"]
    logs = {
        name: value / steps for name, value in totals.items() if name not in ("count", "correct", "crossentropy_sum")
    }
    logs["accuracy"] = totals["correct"] / count
    logs["crossentropy"] = totals["crossentropy_sum"] / count
    return logs
