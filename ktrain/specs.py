"""What a run is asked to do, as small frozen specs, each validated once, up front.

The order of :meth:`Run.validate` is the order a user would fix things in: the models named
(files and zoo names are checked before any dataset is loaded or downloaded), the data, the
methods, the engine, the outputs. Lower modules receive only the spec they need.

A model is a file path, ``zoo:NAME`` or a Keras model object (the Python API); a dataset is a name,
an ``.npz`` path or data already in memory (:class:`ktrain.memory.InMemoryData`). No TensorFlow is
imported here: the command line builds these before it imports anything heavy.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ktrain.augment import VIEW_SEED, Augment, Views, parse_augment
from ktrain.config import MAX_SEED, TrainConfig
from ktrain.errors import KtrainError, model_called
from ktrain.scaling import parse_input_scale

if TYPE_CHECKING:
    from ktrain.methods.selection import MethodSpec

MODEL_SUFFIXES = (".keras", ".h5", ".hdf5")
SAVE_MODES = ("all", "best", "none")
EXPORT_MODES = ("float32", "float16", "int8")


def label(value: Any) -> Any:
    """How a spec's value is recorded and named in messages: a model object by its name, data in
    memory by its description, anything else as it is."""
    if hasattr(value, "describe"):
        return value.describe()
    if hasattr(value, "get_weights") and hasattr(value, "name"):
        return f"<model object '{value.name}'>"
    return value


def is_object(spec: Any) -> bool:
    """Whether a model argument is a model object (not a path or zoo name)."""
    return spec is not None and not isinstance(spec, str)


def check_model_spec(spec, role: str) -> None:
    """A model argument names an existing model file or a zoo architecture (nothing is loaded), or
    is a built Keras model."""
    if is_object(spec):
        import keras

        if not isinstance(spec, keras.Model):
            raise KtrainError(
                f"the {role} is a {type(spec).__name__}: give a Keras model, a .keras/.h5 path or 'zoo:NAME'"
            )
        if not spec.built or not getattr(spec, "inputs", None):
            raise KtrainError(
                f"the {model_called(role)} '{spec.name}' is not built: give it an Input layer, or call it once on "
                "a batch"
            )
        return
    from ktrain import zoo
    from ktrain.specialists import split_spec

    path = split_spec(spec)[0]
    if path.startswith(zoo.ZOO_PREFIX):
        key = path.removeprefix(zoo.ZOO_PREFIX)
        if key not in zoo.ARCHITECTURES:
            names = ", ".join(zoo.ZOO_PREFIX + name for name in zoo.ARCHITECTURES)
            raise KtrainError(f"unknown zoo model '{path}' ({role}): use one of {names}")
        return
    if not Path(path).is_file():
        raise KtrainError(f"{model_called(role)} '{path}' not found: give a .keras or .h5 file, or zoo:NAME")
    if Path(path).suffix.lower() not in MODEL_SUFFIXES:
        raise KtrainError(
            f"{model_called(role)} '{path}' is not a .keras or .h5 file: save it with model.save('x.keras')"
        )


@dataclass(frozen=True)
class ModelsSpec:
    """The student (None for commands without one: ``cache``), and the teacher with any more ensemble
    members (``--specialist``)."""

    student: Any = None
    teacher: Any = None
    specialists: tuple[str, ...] = ()
    reinit: bool = False
    start_weights: str | None = None
    input_scale: str | None = None
    teacher_input_scale: str | None = None

    @property
    def student_scale(self) -> tuple[float, float] | None:
        """The student's input range (None: 1/255, or raw pixels for a model that starts by rescaling)."""
        return parse_input_scale(self.input_scale)

    @property
    def teacher_scale(self) -> tuple[float, float] | None:
        if self.teacher_input_scale is not None:
            return parse_input_scale(self.teacher_input_scale, "--teacher-input-scale")
        return self.student_scale

    def validate(self, needs_teacher: bool, student_role: str = "student") -> ModelsSpec:
        self.student_scale, self.teacher_scale  # noqa: B018 (parsed now: a bad value is refused before anything runs)
        if needs_teacher and self.teacher is None:
            raise KtrainError("this method needs a TEACHER model")
        if is_object(self.teacher) and self.teacher is self.student:
            raise KtrainError(
                "the teacher and the student are the same model object: give the student as a copy, "
                "e.g. keras.models.clone_model(teacher)"
            )
        for role, spec in (("teacher", self.teacher), (student_role, self.student)):
            if spec is not None:
                check_model_spec(spec, role)
        for spec in self.specialists:
            check_model_spec(spec, "specialist")
        if self.start_weights is not None and self.reinit:
            raise KtrainError(
                "-w and --reinit were both given: -w starts from a weights file, --reinit from fresh random "
                "weights; give one"
            )
        if self.start_weights is not None and not Path(self.start_weights).is_file():
            raise KtrainError(f"start weights '{self.start_weights}' not found (-w): give a weights file")
        return self

    def files(self, student_role: str = "student") -> list[tuple[str, str]]:
        """The files the models are read from, as ``(what, path)``: model files and -w's weights."""
        from ktrain import zoo
        from ktrain.specialists import split_spec

        named = [("teacher", self.teacher), (student_role, self.student)]
        named += [("specialist", spec) for spec in self.specialists]
        found = [(role, split_spec(spec)[0]) for role, spec in named if isinstance(spec, str)]
        found = [(role, path) for role, path in found if not path.startswith(zoo.ZOO_PREFIX)]
        return found + ([("start weights (-w)", self.start_weights)] if self.start_weights else [])


@dataclass(frozen=True)
class DataSpec:
    """The dataset and how it is split and augmented; ``classes`` trains a specialist on some classes."""

    dataset: Any
    data_dir: str | None = None
    val_split: float = 0.3
    augment: Augment = Augment()
    classes: str | None = None
    views: int | None = None  # --views K: K replayable views per training sample
    view_seed: int = VIEW_SEED

    def validate(self) -> DataSpec:
        if not 0.0 < self.val_split < 1.0:
            raise KtrainError(f"--val-split is {self.val_split}: give a fraction between 0 and 1 (the seed used 0.3)")
        if not isinstance(self.augment, Augment):
            object.__setattr__(self, "augment", parse_augment(self.augment))
        self.sample_views.validate()
        return self

    @property
    def sample_views(self) -> Views:
        """How training samples are shown: the augmentation, the view count and the view seed."""
        return Views(parse_augment(self.augment), self.views, self.view_seed)

    def files(self) -> list[tuple[str, str]]:
        """The files the data is read from, as ``(what, path)``: an .npz dataset."""
        return [("dataset", self.dataset)] if isinstance(self.dataset, str) and self.dataset.endswith(".npz") else []

    def load(self, seed: int):
        """The splits (the validation carve-out depends on ``seed``), restricted to ``classes`` if given."""
        import logging

        from ktrain.classes import parse_classes
        from ktrain.data import load_dataset

        if isinstance(self.dataset, str):
            data = load_dataset(self.dataset, data_dir=self.data_dir, val_split=self.val_split, seed=seed)
        else:
            data = self.dataset.splits(val_split=self.val_split, seed=seed)
        chosen = tuple(range(data.num_classes))
        if self.classes:
            chosen = parse_classes(self.classes, data.num_classes, f"--classes {self.classes}")
            data = data.restrict(chosen)
            logging.getLogger("ktrain").info(
                "Training on classes %s only (%d training images)", self.classes, len(data.y_train)
            )
        splits = (("training", data.y_train), ("validation", data.y_val), ("test", data.y_test))
        empty = [name for name, labels in splits if not len(labels)]
        if empty and self.classes:
            raise KtrainError(
                f"--classes {self.classes} leaves the {empty[0]} split of {data.name} empty: give classes with images "
                "in every split"
            )
        if empty:
            raise KtrainError(
                f"--val-split {self.val_split} leaves the {empty[0]} split of {data.name} empty (each class gives "
                f"round(val_split × its images) to validation): give a --val-split that leaves images in both"
            )
        missing = [chosen[label] for label in sorted(set(range(data.num_classes)) - set(data.y_train.tolist()))]
        if missing:
            logging.getLogger("ktrain").warning(
                "%s has %d classes but no training images of class %s: a model with %d outputs will never learn %s",
                data.name,
                data.num_classes,
                ", ".join(map(str, missing[:10])) + (", ..." if len(missing) > 10 else ""),
                data.num_classes,
                "it" if len(missing) == 1 else "them",
            )
        mixing = self.sample_views.augment.mixing_name
        if mixing and len(set(data.y_train.tolist())) < 2:
            raise KtrainError(
                f"--augment {mixing} on {data.name}, whose training split has one class: mixing needs two "
                f"classes or more, drop {mixing}"
            )
        return data


MAX_PREFIX_BYTES = 150  # leaves room for the longest name ktrain adds, and then some


def _shortened(text: str) -> str:
    return text if len(text) <= 60 else f"{text[:28]}…{text[-28:]}"


@dataclass(frozen=True)
class OutputSpec:
    """Where results go and what is written: files, students, exports, TensorBoard, the log."""

    # None: nothing is written (the Python API's default); the command line writes to "out".
    folder: str | None = None
    prefix: str = ""
    resume: bool = False
    overwrite: bool = False
    debug: bool = False
    write_results: bool = True
    save_students: str = "best"
    tensorboard: bool = False
    export: str | None = None
    max_accuracy_drop: float = 0.01
    neighbors: int = 5

    def validate(self) -> OutputSpec:
        if self.resume and self.overwrite:
            raise KtrainError(
                "--resume and --overwrite were both given: --resume continues the run, --overwrite "
                "starts it again; give one"
            )
        if self.neighbors <= 0:
            raise KtrainError(f"neighbors (-k) is {self.neighbors}: give a value greater than 0")
        if any(separator in self.prefix for separator in ("/", "\\", os.sep)) or self.prefix in (".", ".."):
            raise KtrainError(
                f"-res '{self.prefix}' is not a plain name: it prefixes file names in -out; give a name without '/'"
            )
        if len(self.prefix.encode()) > MAX_PREFIX_BYTES:
            raise KtrainError(
                f"-res '{_shortened(self.prefix)}' is {len(self.prefix.encode())} bytes long: a file name holds at "
                f"most 255 and ktrain adds its own to the prefix; give at most {MAX_PREFIX_BYTES}"
            )
        long_names = [part for part in Path(self.folder or ".").parts if len(part.encode()) > 255]
        if long_names:
            raise KtrainError(
                f"-out names a folder '{_shortened(long_names[0])}' of {len(long_names[0].encode())} bytes: a file or "
                "folder name holds at most 255; give a shorter one"
            )
        if self.save_students not in SAVE_MODES:
            raise KtrainError(f"save mode (-s) is '{self.save_students}': use all, best or none")
        if self.export is not None and self.export not in EXPORT_MODES:
            raise KtrainError(f"--export is '{self.export}': use {', '.join(EXPORT_MODES)} or none")
        if self.export not in (None, "none") and self.save_students == "none":
            raise KtrainError(
                f"--export {self.export} with -s none: the export is made from the saved student; give -s best "
                "(the default) or drop --export"
            )
        if self.resume and not self.write_results:
            raise KtrainError("--resume with -or: a resumed run finds its finished parts in results.json; drop -or")
        if self.folder is None:
            wanted = (
                ("export", self.export),
                ("resume", self.resume),
                ("tensorboard", self.tensorboard),
                ("save_students='all'", self.save_students == "all"),
            )
            asked = [name for name, given in wanted if given]
            if asked:
                raise KtrainError(
                    f"{asked[0]} needs an out folder: give out_folder=PATH (nothing is written without one)"
                )
        return self

    @property
    def writes(self) -> bool:
        return self.folder is not None

    @property
    def writes_files(self) -> bool:
        """Whether anything lands in the folder (``-or -s none`` writes nothing there)."""
        wanted = (self.write_results, self.save_students != "none", self.export, self.tensorboard)
        return self.writes and any(wanted)


@dataclass(frozen=True)
class Plan:
    """How often methods run: seeds, the from-scratch baseline, and training the teacher first."""

    seeds: int = 1
    baseline: bool = True
    teacher_epochs: int = 0

    def validate(self) -> Plan:
        if self.seeds < 1:
            raise KtrainError(f"--seeds is {self.seeds}: give 1 or more")
        if self.teacher_epochs < 0:
            raise KtrainError(f"--teacher-epochs is {self.teacher_epochs}: give 0 (teacher already trained) or more")
        return self


@dataclass(frozen=True)
class Run:
    """One command: its specs, validated together by :meth:`validate` before any heavy work."""

    command: str
    models: ModelsSpec
    data: DataSpec
    methods: tuple[MethodSpec, ...]
    engine: TrainConfig = field(default_factory=TrainConfig)
    outputs: OutputSpec = field(default_factory=OutputSpec)
    plan: Plan = field(default_factory=Plan)
    # Whether the user named the methods (a default method that cannot use the teacher is dropped).
    explicit_methods: bool = True

    def validate(self) -> Run:
        if not self.methods:
            raise KtrainError("no method given: name at least one with -m")
        self.models.validate(
            needs_teacher=any(spec.cls.uses_teacher for spec in self.methods),
            student_role="model" if self.command == "train" else "student",
        )
        self.data.validate()
        self.engine.validate()
        views = self.data.sample_views
        if self.engine.cache_topk is not None and views.augment and views.count is None:
            raise KtrainError(
                f"--cache-topk with --augment {views.augment} but no --views: fresh views run the teacher "
                "online, so give --views K to cache K views, or drop --cache-topk"
            )
        for spec in self.methods:
            spec.check_samples(views.augment.mixing_name, self.engine.cache_topk)
            spec.check_epochs(self.engine.epochs)
        self.outputs.validate()
        self.plan.validate()
        last = self.engine.seed + self.plan.seeds - 1
        if last > MAX_SEED:
            raise KtrainError(
                f"-seed {self.engine.seed} with --seeds {self.plan.seeds} runs up to seed {last}: seeds go up to "
                f"{MAX_SEED}, give a lower -seed"
            )
        return self

    def record(self) -> dict:
        """The settings results.json records (the engine's config is recorded beside it)."""
        return {
            "command": self.command,
            "models": _record(self.models),
            "data": _record(self.data),
            "outputs": _record(self.outputs),
            "plan": _record(self.plan),
        }


def _record(spec) -> dict:
    return {item.name: label(getattr(spec, item.name)) for item in dataclasses.fields(spec)}
