"""Every setting a command takes besides its models, data and methods, declared once.

A :class:`Setting` is an :class:`~ktrain.options.Option` (name, flags, help, kind) bound to the field
of the spec that holds it (TrainConfig, OptimizerConfig, ScheduleConfig, ModelsSpec, DataSpec,
OutputSpec, Plan); its default is that field's default, so it is written once. The Python API takes
settings as keyword arguments by name, the command line builds its flags from them, and method
options come from the methods' own declarations (ktrain.methods). Values are converted to their kind
here and checked by the spec that holds them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from ktrain.augment import parse_augment
from ktrain.config import (
    JIT_MODES,
    LR_SCHEDULES,
    OPTIMIZERS,
    PRECISIONS,
    STRATEGIES,
    TARGET_MODES,
    TEACHER_PRECISIONS,
    OptimizerConfig,
    ScheduleConfig,
    TrainConfig,
)
from ktrain.options import Option
from ktrain.specs import EXPORT_MODES, SAVE_MODES, DataSpec, ModelsSpec, OutputSpec, Plan

# A sweep is a comparison over a grid of method options: it takes every setting compare takes.
COMPARING = ("compare", "sweep")
TRAINING = ("train", "distill", "pkt", *COMPARING)
TEACHING = ("distill", "pkt", *COMPARING)

# Help panels, in the order every command shows them (after its arguments).
PANEL_ORDER = ("Data", "Models", "Method", "Training", "Engine", "Outputs")
# A setting's panel: by the spec it fills, except the engine's: how the steps and the teacher's
# targets are computed (devices, XLA, precisions, the cache), not what the run trains.
HOLDER_PANELS = {
    DataSpec: "Data",
    ModelsSpec: "Models",
    OptimizerConfig: "Training",
    ScheduleConfig: "Training",
    TrainConfig: "Training",
    Plan: "Training",
    OutputSpec: "Outputs",
}
ENGINE_SETTINGS = (
    "eval_batch_size",
    "jit",
    "strategy",
    "precision",
    "teacher_precision",
    "targets",
    "cache_dir",
    "cache_topk",
)


@dataclass(frozen=True)
class Setting:
    """One setting: its option, where its value goes, which commands take it."""

    option: Option
    holder: type
    field: str = ""  # the holder's field, when it is not named like the option
    commands: tuple[str, ...] = TRAINING
    parse: Callable[[Any], Any] | None = None  # instead of option.convert
    command_line_default: Any = None  # where the command line differs from the API (not None)

    @property
    def name(self) -> str:
        return self.option.name

    @property
    def panel(self) -> str:
        """The help panel it is listed in (one of ``PANEL_ORDER``)."""
        return "Engine" if self.name in ENGINE_SETTINGS else HOLDER_PANELS[self.holder]

    @property
    def target(self) -> str:
        return self.field or self.option.name

    @property
    def default(self) -> Any:
        spec = {item.name: item for item in dataclasses.fields(self.holder)}[self.target]
        return spec.default if spec.default is not dataclasses.MISSING else spec.default_factory()

    @property
    def cli_default(self) -> Any:
        return self.default if self.command_line_default is None else self.command_line_default

    def convert(self, value: Any) -> Any:
        if self.name in CHOICES and isinstance(value, str):  # a single choice, in any case
            value = value.lower()
        return self.parse(value) if self.parse is not None else self.option.convert(value)


def _setting(name, flags, help, holder, *, kind=float, optional=False, **where) -> Setting:
    return Setting(Option(name, flags, help, kind=kind, check="any", optional=optional), holder, **where)


SETTINGS: dict[str, Setting] = {
    s.name: s
    for s in (
        _setting("epochs", ("-e", "--epochs"), "Training epochs.", TrainConfig, kind=int),
        _setting(
            "batch_size", ("-bs", "--batch-size"), "Global batch size (split across replicas).", TrainConfig, kind=int
        ),
        _setting(
            "eval_batch_size",
            ("-ebs", "--evaluation-batch-size"),
            "Batch size for evaluation (and a teacher's predictions).",
            TrainConfig,
            kind=int,
        ),
        Setting(
            Option(
                "optimizer",
                ("-o", "--optimizer"),
                "adam, rmsprop, sgd, adagrad, adadelta or adamax.",
                kind=str,
                check="any",
            ),
            OptimizerConfig,
            field="name",
            parse=lambda value: str(value).lower(),
        ),
        _setting("learning_rate", ("-lr", "--learning-rate"), "Initial learning rate.", OptimizerConfig),
        _setting(
            "lr_schedule",
            ("--lr-schedule",),
            "plateau (cut on a plateau, the seed's), cosine (to 0 over the run) or constant.",
            ScheduleConfig,
            kind=str,
        ),
        _setting(
            "lr_warmup",
            ("--lr-warmup",),
            "Epochs of linear warm-up from 0 (cosine only).",
            ScheduleConfig,
            kind=int,
        ),
        _setting(
            "lr_patience",
            ("-lrp", "--learning-rate-patience"),
            "Epochs without improvement before the LR drops.",
            ScheduleConfig,
            kind=int,
        ),
        _setting(
            "lr_decay",
            ("-lrd", "--learning-rate-decay"),
            "Factor the LR is multiplied by on a plateau; 0 keeps it constant.",
            ScheduleConfig,
        ),
        _setting("lr_min", ("-lrm", "--learning-rate-min"), "Lowest learning rate.", ScheduleConfig),
        _setting(
            "early_stopping_patience",
            ("-esp", "--early-stopping-patience"),
            "Epochs without improvement before stopping; 0 disables.",
            ScheduleConfig,
            kind=int,
        ),
        _setting(
            "clip_norm",
            ("-cn", "--clip-norm"),
            "Clip each gradient tensor to this norm.",
            OptimizerConfig,
            optional=True,
        ),
        _setting(
            "clip_value",
            ("-cv", "--clip-value"),
            "Clip each gradient element to ±value.",
            OptimizerConfig,
            optional=True,
        ),
        _setting("beta1", ("-b1", "--beta1"), "Adam/Adamax beta 1.", OptimizerConfig),
        _setting("beta2", ("-b2", "--beta2"), "Adam/Adamax beta 2.", OptimizerConfig),
        _setting("rho", ("-rho", "--rho"), "RMSprop/Adadelta rho.", OptimizerConfig),
        _setting("momentum", ("-mm", "--momentum"), "SGD momentum.", OptimizerConfig),
        _setting(
            "decay",
            ("-d", "--decay"),
            "Inverse-time decay lr / (1 + d · step); default 1e-6 (plateau, constant), none (cosine).",
            OptimizerConfig,
            optional=True,
        ),
        _setting(
            "use_final_model",
            ("-ufm", "--use-final-model"),
            "Keep the last epoch's weights instead of the best on validation.",
            ScheduleConfig,
            kind=bool,
        ),
        _setting(
            "start_weights",
            ("-w", "--start-weights"),
            "Weights file to start the student (train: the model) from.",
            ModelsSpec,
            kind=str,
            optional=True,
        ),
        _setting(
            "input_scale",
            ("--input-scale",),
            "What the models take for pixels 0-255: 1/255 (default), none (raw) or SCALE,OFFSET (2/255,-1).",
            ModelsSpec,
            kind=str,
            optional=True,
        ),
        _setting(
            "teacher_input_scale",
            ("--teacher-input-scale",),
            "The teacher's, when it differs from the student's (same values as --input-scale).",
            ModelsSpec,
            kind=str,
            optional=True,
            commands=TEACHING,
        ),
        _setting(
            "reinit",
            ("--reinit",),
            "Start the student (train: the model) from fresh random weights instead of its file's.",
            ModelsSpec,
            kind=bool,
        ),
        _setting(
            "val_split",
            ("--val-split",),
            "Share of the training split held out for validation (stratified).",
            DataSpec,
        ),
        _setting("data_dir", ("--data-dir",), "Local TFDS data directory.", DataSpec, kind=str, optional=True),
        _setting(
            "seed",
            ("-seed", "--seed"),
            "Random seed: the same seed gives the same history on CPU.",
            TrainConfig,
            kind=int,
        ),
        _setting(
            "targets",
            ("--targets",),
            "Teacher soft targets: auto (cache when they fit 1 GiB, views fixed by --views), online or cache.",
            TrainConfig,
            kind=str,
            commands=TEACHING,
        ),
        _setting(
            "cache_dir",
            ("--cache-dir",),
            "Keep cached soft targets on disk here (keyed by teacher weights and data).",
            TrainConfig,
            kind=str,
            optional=True,
            commands=TEACHING,
        ),
        _setting(
            "teacher_precision",
            ("--teacher-precision",),
            "The frozen teacher's forward pass: float32, bfloat16 or float16 (targets stay float32).",
            TrainConfig,
            kind=str,
            commands=TEACHING,
        ),
        _setting(
            "cache_topk",
            ("--cache-topk",),
            "Cache only each view's N largest teacher logits (for many classes; KD only).",
            TrainConfig,
            kind=int,
            optional=True,
            commands=TEACHING,
        ),
        Setting(
            Option(
                "augment",
                ("--augment",),
                "Training augmentation, comma-separated: flip, crop[:PAD], mixup[:ALPHA] or cutmix[:ALPHA].",
                kind=str,
                check="any",
            ),
            DataSpec,
            parse=parse_augment,
        ),
        _setting(
            "views",
            ("--views",),
            "Show each sample one of K fixed views (so a teacher's targets for them can be cached).",
            DataSpec,
            kind=int,
            optional=True,
        ),
        _setting(
            "view_seed",
            ("--view-seed",),
            "Seed of the views, independent of -seed (one view cache serves every run seed).",
            DataSpec,
            kind=int,
        ),
        _setting(
            "jit", ("--jit",), "XLA: auto (on for GPUs, off for CPUs, as measured), on or off.", TrainConfig, kind=str
        ),
        _setting(
            "strategy", ("--strategy",), "auto, one, mirrored or multiworker (from TF_CONFIG).", TrainConfig, kind=str
        ),
        _setting(
            "precision",
            ("--precision",),
            "float32, mixed_float16 (with loss scaling) or mixed_bfloat16.",
            TrainConfig,
            kind=str,
        ),
        _setting(
            "classes",
            ("--classes",),
            "Train a specialist: only the images of these classes (0-4, 0,2,5-7), relabelled in that order; "
            "use the model as --specialist FILE:CLASSES.",
            DataSpec,
            kind=str,
            optional=True,
            commands=("train",),
        ),
        _setting(
            "specialists",
            ("--specialist",),
            "Another teacher member, repeatable: FILE:CLASSES for a specialist (FILE:0-4, FILE:0,2,5-7) or FILE "
            "for a generalist. TEACHER may be FILE:CLASSES too.",
            ModelsSpec,
            kind=tuple,
            commands=("distill", *COMPARING),
        ),
        _setting(
            "neighbors",
            ("-k", "--neighbors"),
            "k of the kNN evaluation of a student's features.",
            OutputSpec,
            kind=int,
            commands=TEACHING,
        ),
        _setting(
            "export",
            ("--export",),
            "Also export the (best) student to TFLite: float32, float16, int8 or none (the default).",
            OutputSpec,
            kind=str,
            optional=True,
            commands=("distill", *COMPARING),
            parse=lambda value: None if value is None or str(value).lower() == "none" else str(value),
        ),
        _setting(
            "max_accuracy_drop",
            ("--max-accuracy-drop",),
            "Largest test-accuracy loss the export may cause.",
            OutputSpec,
            commands=("distill", *COMPARING),
        ),
        _setting(
            "seeds",
            ("--seeds",),
            "Repeat every method with this many seeds (seed, seed+1, ...); mean ± std.",
            Plan,
            kind=int,
            commands=COMPARING,
        ),
        _setting(
            "baseline",
            ("--baseline/--no-baseline",),
            "Also train the student from scratch.",
            Plan,
            kind=bool,
            commands=COMPARING,
        ),
        _setting(
            "teacher_epochs",
            ("--teacher-epochs",),
            "First train TEACHER with labels for this many epochs (for a zoo: teacher; an ensemble's members "
            "each on their classes), as the demo does.",
            Plan,
            kind=int,
            commands=COMPARING,
        ),
        Setting(
            Option("save_students", ("-s", "--save-students"), "all, best (on validation) or none.", kind=str),
            OutputSpec,
            commands=COMPARING,
            parse=lambda value: str(value).lower(),
        ),
        _setting(
            "tensorboard",
            ("--tensorboard",),
            "Per-method TensorBoard scalars under the out folder.",
            OutputSpec,
            kind=bool,
            commands=("train", *TEACHING),
        ),
        _setting(
            "resume",
            ("--resume",),
            "Continue the run in -out from its last checkpoint (same command plus this flag).",
            OutputSpec,
            kind=bool,
        ),
        _setting(
            "overwrite",
            ("--overwrite",),
            "Start again in an -out folder that already holds a run.",
            OutputSpec,
            kind=bool,
        ),
        _setting(
            "out_folder",
            ("-out", "--out-folder"),
            "Folder for the outputs.",
            OutputSpec,
            kind=str,
            optional=True,
            field="folder",
            command_line_default="out",
        ),
        _setting(
            "prefix",
            ("-res", "--results-name-prefix"),
            "Prefix for every output file name.",
            OutputSpec,
            kind=str,
        ),
        _setting("debug", ("--debug",), "Debug-level log file.", OutputSpec, kind=bool),
    )
}
# The values of the single-choice settings, which the help lists (the specs check them).
CHOICES: dict[str, tuple[str, ...]] = {
    "optimizer": OPTIMIZERS,
    "lr_schedule": LR_SCHEDULES,
    "jit": JIT_MODES,
    "strategy": STRATEGIES,
    "precision": PRECISIONS,
    "teacher_precision": TEACHER_PRECISIONS,
    "targets": TARGET_MODES,
    "export": (*EXPORT_MODES, "none"),
    "save_students": SAVE_MODES,
}

# Settings the command line sets through flags of its own (-or writes no results).
HIDDEN = {
    "write_results": Setting(
        Option("write_results", ("--write-results",), "Write results.json.", kind=bool, check="any"),
        OutputSpec,
        commands=COMPARING,
    )
}


def settings_for(command: str) -> dict[str, Setting]:
    """The settings ``command`` takes, in declaration order."""
    every = {**SETTINGS, **HIDDEN}
    return {name: setting for name, setting in every.items() if command in setting.commands}


def build_specs(command: str, values: Mapping[str, Any]) -> dict[type, dict[str, Any]]:
    """The converted ``values`` of ``command``'s settings, grouped by the spec that holds them; a
    setting another command takes is an error naming that command."""
    taken = settings_for(command)
    grouped: dict[type, dict[str, Any]] = {}
    for name, value in values.items():
        setting = taken.get(name)
        if setting is None:
            from ktrain.errors import KtrainError

            other = {**SETTINGS, **HIDDEN}[name]
            raise KtrainError(
                f"option '{name}' is not taken by {command}: it is an option of {', '.join(other.commands)}"
            )
        grouped.setdefault(setting.holder, {})[setting.target] = setting.convert(value)
    return grouped


def engine_config(grouped: Mapping[type, dict[str, Any]]) -> TrainConfig:
    """The engine's config from grouped settings; unset ones keep their defaults."""
    return TrainConfig(
        **grouped.get(TrainConfig, {}),
        optimizer=OptimizerConfig(**grouped.get(OptimizerConfig, {})),
        schedule=ScheduleConfig(**grouped.get(ScheduleConfig, {})),
    )
