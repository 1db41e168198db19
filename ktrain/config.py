"""Frozen settings for a run, validated in one place with messages that name the fix."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from ktrain.errors import KtrainError

OPTIMIZERS = ("adam", "rmsprop", "sgd", "adagrad", "adadelta", "adamax")
JIT_MODES = ("auto", "on", "off")
STRATEGIES = ("auto", "one", "mirrored", "multiworker")
PRECISIONS = ("float32", "mixed_float16", "mixed_bfloat16")
TEACHER_PRECISIONS = ("float32", "bfloat16", "float16")
TARGET_MODES = ("auto", "online", "cache")
LR_SCHEDULES = ("plateau", "cosine", "constant")
MAX_SEED = 2**32 - 1  # NumPy's legacy seeding (the seed's per-run seeding) takes no more
SEED_DECAY = 1e-6  # the seed's inverse-time decay, the default of plateau and constant schedules


@dataclass(frozen=True)
class OptimizerConfig:
    """The seed's optimizer options (-o -lr -b1 -b2 -rho -mm -d -cn -cv)."""

    name: str = "adam"
    learning_rate: float = 1e-3
    beta1: float = 0.9
    beta2: float = 0.999
    rho: float = 0.9
    momentum: float = 0.0
    # Inverse-time decay; None: the seed's 1e-6 under plateau and constant schedules, none under cosine.
    decay: float | None = None
    clip_norm: float | None = None
    clip_value: float | None = None

    def validate(self) -> None:
        if self.name not in OPTIMIZERS:
            raise KtrainError(f"unknown optimizer '{self.name}': use one of {', '.join(OPTIMIZERS)}")
        _positive("learning rate (-lr)", self.learning_rate)
        if self.decay is not None:
            _non_negative("decay (-d)", self.decay)
        _non_negative("momentum (-mm)", self.momentum)
        for label, value in (("beta1 (-b1)", self.beta1), ("beta2 (-b2)", self.beta2), ("rho", self.rho)):
            if not 0.0 <= value < 1.0:
                raise KtrainError(f"{label} is {value}: give a value in [0, 1)")
        if self.clip_norm is not None and self.clip_value is not None:
            raise KtrainError(
                f"both clip norm (-cn {self.clip_norm}) and clip value (-cv {self.clip_value}) "
                "were given: choose one of them"
            )
        if self.clip_norm is not None:
            _positive("clip norm (-cn)", self.clip_norm)
        if self.clip_value is not None:
            _positive("clip value (-cv)", self.clip_value)


@dataclass(frozen=True)
class ScheduleConfig:
    """The learning-rate schedule (plateau, cosine or constant), LR-on-plateau and early stopping
    (--lr-schedule --lr-warmup -lrp -lrd -lrm -esp -ufm)."""

    lr_schedule: str = "plateau"
    lr_warmup: int = 0  # epochs of linear warm-up before the cosine decay
    lr_patience: int = 8
    lr_decay: float = 0.1
    lr_min: float = 1e-8
    early_stopping_patience: int = 15
    use_final_model: bool = False

    def validate(self) -> None:
        if self.lr_schedule not in LR_SCHEDULES:
            raise KtrainError(f"--lr-schedule is '{self.lr_schedule}': use one of {', '.join(LR_SCHEDULES)}")
        _non_negative("--lr-warmup", self.lr_warmup)
        if self.lr_warmup and self.lr_schedule != "cosine":
            raise KtrainError(
                f"--lr-warmup {self.lr_warmup} with --lr-schedule {self.lr_schedule}: warm-up belongs to the "
                "cosine schedule, add --lr-schedule cosine or drop --lr-warmup"
            )
        _non_negative("learning-rate patience (-lrp)", self.lr_patience)
        if not 0.0 <= self.lr_decay < 1.0:
            raise KtrainError(
                f"learning-rate decay (-lrd) is {self.lr_decay}: give a factor in [0, 1) (0 keeps the LR constant)"
            )
        _non_negative("minimum learning rate (-lrm)", self.lr_min)
        _non_negative("early-stopping patience (-esp)", self.early_stopping_patience)


@dataclass(frozen=True)
class TrainConfig:
    """Everything the engine needs besides the models, the method and the data."""

    epochs: int = 125
    batch_size: int = 64
    eval_batch_size: int = 128
    seed: int = 0
    jit: str = "auto"
    strategy: str = "auto"
    precision: str = "float32"
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    schedule: ScheduleConfig = field(default_factory=ScheduleConfig)
    # Teacher soft targets: computed each step (online) or once (cache, in memory or in cache_dir).
    targets: str = "auto"
    cache_dir: str | None = None
    # Cache only each view's N largest teacher logits (large class counts); None keeps them all.
    cache_topk: int | None = None
    # The dtype policy of the frozen teacher's forward pass (online and when building caches).
    teacher_precision: str = "float32"

    def validate(self) -> TrainConfig:
        _positive("epochs (-e)", self.epochs)
        _positive("batch size (-bs)", self.batch_size)
        _positive("evaluation batch size (-ebs)", self.eval_batch_size)
        if not 0 <= self.seed <= MAX_SEED:
            raise KtrainError(f"seed (-seed) is {self.seed}: give a whole number from 0 to {MAX_SEED}")
        if self.jit not in JIT_MODES:
            raise KtrainError(f"--jit is '{self.jit}': use one of {', '.join(JIT_MODES)}")
        if self.strategy not in STRATEGIES:
            raise KtrainError(f"--strategy is '{self.strategy}': use one of {', '.join(STRATEGIES)}")
        if self.targets not in TARGET_MODES:
            raise KtrainError(f"--targets is '{self.targets}': use {', '.join(TARGET_MODES)}")
        if self.cache_topk is not None:
            if self.cache_topk <= 0:
                raise KtrainError(f"--cache-topk is {self.cache_topk}: give a number of classes, 1 or more")
            if self.targets == "online":
                raise KtrainError("--cache-topk with --targets online: top-N applies to cached targets, drop one")
        if self.teacher_precision not in TEACHER_PRECISIONS:
            raise KtrainError(
                f"--teacher-precision is '{self.teacher_precision}': use one of {', '.join(TEACHER_PRECISIONS)}"
            )
        if self.precision not in PRECISIONS:
            raise KtrainError(f"--precision is '{self.precision}': use one of {', '.join(PRECISIONS)}")
        clipping = self.optimizer.clip_norm is not None or self.optimizer.clip_value is not None
        if self.precision == "mixed_float16" and clipping:
            raise KtrainError(
                "-cn/-cv with --precision mixed_float16: clipping would act on loss-scaled gradients; "
                "use mixed_bfloat16 (no loss scaling) or float32"
            )
        self.optimizer.validate()
        self.schedule.validate()
        if self.schedule.lr_schedule == "cosine":
            if self.optimizer.decay is not None:
                raise KtrainError(
                    f"-d {self.optimizer.decay} with --lr-schedule cosine: the cosine schedule sets the rate "
                    "at every step, drop -d"
                )
            if self.schedule.lr_warmup >= self.epochs:
                raise KtrainError(
                    f"--lr-warmup is {self.schedule.lr_warmup} with {self.epochs} epochs (-e): give fewer "
                    "warm-up epochs than epochs"
                )
        return self

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _positive(label: str, value: float) -> None:
    if not value > 0:
        raise KtrainError(f"{label} is {value}: give a value greater than 0")


def _non_negative(label: str, value: float) -> None:
    if value < 0:
        raise KtrainError(f"{label} is {value}: give a value of 0 or more")
