"""The Python API: train, distill, compare, evaluate and export from a notebook or a script.

The command line is a thin layer over these functions; both build the same specs (ktrain.specs)
from the same settings (ktrain.settings) and method options (ktrain.methods).
"""

from __future__ import annotations

import contextlib
import difflib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Any

from ktrain.config import TrainConfig
from ktrain.errors import KtrainError
from ktrain.listener import listening
from ktrain.settings import HIDDEN, SETTINGS, build_specs, engine_config, settings_for
from ktrain.specs import DataSpec, ModelsSpec, OutputSpec, Plan, Run

MODELS = """Models are Keras model objects, ``.keras``/``.h5``/``.hdf5`` paths or ``"zoo:NAME"``. A student
    object is trained as a copy built in the strategy's scope (one device or several, any
    precision), and the trained weights are written back into the object."""
DATA = """``data`` is a dataset name (``"digits"``, built in; or a TFDS name such as ``"mnist"``), an ``.npz``
    path in the keras.datasets layout, a tuple ``(x_train, y_train, x_test, y_test)`` of NumPy arrays,
    or a tuple ``(train, test)`` of ``tf.data.Dataset`` objects yielding ``(image, label)`` pairs,
    batched or not, with class indices as labels. Datasets are read into memory once (the engine
    needs every sample by index, for shuffling, the validation carve-out and cached teacher targets);
    one larger than half the machine's memory is refused. uint8 images are scaled by 1/255 on their
    way to the model; float images are used as given. Labels are class indices or one-hot rows.
    The validation split is carved from the training split (``val_split``, stratified, by ``seed``)
    as the command line does, unless ``validation=(x_val, y_val)`` (or a dataset) is given."""
OPTIONS = """Options are keyword arguments: the engine's settings (``epochs``, ``batch_size``,
    ``learning_rate``, ``seed``, ...; ``ktrain.settings.SETTINGS`` lists them) and the options of
    the chosen methods (``temperature``, ``kd_lambda``, ...; see ``ktrain methods``). A misspelt or
    misplaced one raises :class:`ktrain.KtrainError` naming the valid ones. Nothing is written to
    disk unless ``out_folder=`` is given (a TFDS name may still download into its data folder).
    Progress goes to ``listener`` (a :class:`ktrain.Listener`); without one the call is silent.
    Each run seeds Python, NumPy and TensorFlow with ``seed`` and, off XLA, turns on TensorFlow's
    deterministic ops for the process, as the command line does."""


@dataclass(frozen=True)
class Result:
    """One trained student.

    ``student``: the trained Keras model (None for a run finished before a resume); ``history``:
    per-epoch lists, the columns of results.json; ``test``: ``accuracy`` and ``crossentropy`` on the
    test split; ``entry``: its entry in results.json; ``record``: the whole of results.json, exactly
    as it is (or would be) written."""

    student: Any
    history: dict[str, list[float]]
    test: dict[str, float]
    entry: dict
    record: dict

    @property
    def method(self) -> str:
        return self.entry["method"]

    @property
    def seed(self) -> int:
        return self.entry.get("seed", self.record["config"]["seed"])


@dataclass(frozen=True)
class Comparison:
    """A comparison: ``runs``, one :class:`Result` per method and seed (the from-scratch baseline
    included); ``teacher``, the teacher's entry; ``best``, the name of the best student on
    validation; ``record``, the whole of results.json."""

    runs: list[Result]
    teacher: dict
    best: str | None
    record: dict

    def of(self, method: str) -> list[Result]:
        """The runs of ``method`` (its name, as in ``ktrain methods``), one per seed."""
        return [run for run in self.runs if run.method == method]


def train(model, data, *, validation=None, listener=None, **options) -> Result:
    """Train ``model`` on ``data`` with labels only (a teacher, a specialist, a from-scratch baseline).

    {MODELS}
    The model object is returned as ``result.student``, holding the trained weights.

    {DATA}

    {OPTIONS}
    """
    return run_command("train", student=model, data=data, validation=validation, listener=listener, options=options)


def distill(teacher, student, data, method: str | None = None, *, validation=None, listener=None, **options) -> Result:
    """Distill ``teacher`` into ``student`` on ``data`` with ``method`` (default: KD).

    {MODELS}
    The student object is returned as ``result.student``, holding the trained
    weights. The teacher object is never modified, its ``trainable`` flags included.

    {DATA}

    {OPTIONS}
    """
    methods = None if method is None else (method,)
    return run_command(
        "distill",
        student=student,
        data=data,
        teacher=teacher,
        methods=methods,
        validation=validation,
        listener=listener,
        options=options,
    )


def compare(
    teacher, student, data, methods: Iterable[str] | None = None, *, validation=None, listener=None, **options
) -> Comparison:
    """Compare ``methods`` (default: KD, PKT and PKT+KD) on one teacher/student pair, with a
    from-scratch baseline (``baseline=False`` drops it), over ``seeds`` seeds.

    Models are Keras model objects, ``.keras``/``.h5``/``.hdf5`` paths or ``"zoo:NAME"``. Every run
    starts from the student object's weights (or the file's) and trains its own copy; the object
    itself is not trained. The teacher object is never modified. ``result.runs`` holds the trained
    students.

    {DATA}

    {OPTIONS}
    """
    names = None if methods is None else ((methods,) if isinstance(methods, str) else tuple(methods))
    return run_command(
        "compare",
        student=student,
        data=data,
        teacher=teacher,
        methods=names,
        validation=validation,
        listener=listener,
        options=options,
    )


@dataclass(frozen=True)
class Sweep(Comparison):
    """A sweep: a :class:`Comparison` whose runs are the grid's points, plus ``points`` (one row per
    point and the scratch baseline: method, grid values, validation and test accuracy as mean and
    std over seeds) and ``best_point``, the row best on validation."""

    @property
    def points(self) -> list[dict]:
        return self.record["sweep"]["points"]

    @property
    def best_point(self) -> dict | None:
        return next((row for row in self.points if row["best"]), None)


def sweep(
    teacher,
    student,
    data,
    methods: Iterable[str] | None = None,
    grid: Mapping[str, Iterable] | Iterable[str] = (),
    *,
    max_points: int = 1000,
    validation=None,
    listener=None,
    **options,
) -> Sweep:
    """Run ``methods`` (default: KD) at every point of ``grid`` on one teacher/student pair, over
    ``seeds`` seeds, beside a from-scratch student, and pick the point best on validation.

    ``grid`` maps method options to their values (``{{"temperature": [2, 4], "kd_lambda": [0.1, 0.5]}}``)
    or lists them as the command line writes them (``["temperature=2,4", "kd_lambda=0.1,0.5"]``). A
    key applies to every chosen method that has it; a key none has raises KtrainError naming the valid
    ones. A grid of more than ``max_points`` points is refused. The teacher's targets are
    computed once for every point and seed: with ``augment``, give ``views`` (K fixed views).
    Models and options as in :func:`compare`; ``out_folder=`` adds sweep.csv and, for two keys,
    sweep_heatmap.png beside results.json.

    {DATA}
    """
    from ktrain.comparison import run_sweep
    from ktrain.grid import parse_grid, sweep_specs

    names = None if methods is None else ((methods,) if isinstance(methods, str) else tuple(methods))
    _, given = split_options("sweep", options)
    run = build_run(
        "sweep", student=student, data=data, teacher=teacher, methods=names, validation=validation, options=options
    )
    chosen = [spec.name for spec in run.methods]
    axes = parse_grid(grid, chosen, given)
    specs = sweep_specs(chosen, axes, given, max_points)
    with _quiet_tensorflow(), listening(listener):
        outcome = run_sweep(replace(run, methods=specs), axes, listener)
    return comparison(outcome, Sweep)


def evaluate(
    model,
    data,
    *,
    neighbors: int = 0,
    layer: str | None = None,
    batch_size: int = 128,
    data_dir=None,
    input_scale: str | None = None,
    listener=None,
):
    """Test accuracy and cross-entropy of ``model`` on ``data``'s test split, and with ``neighbors``
    the kNN accuracy and mAP of its features (``layer``, default the classifier's input).
    ``input_scale``: the pixel range the model takes, as ``--input-scale``. Its phases (loading,
    testing, kNN) go to ``listener``.

    ``model`` is a Keras model object, a ``.keras``/``.h5``/``.hdf5`` path or ``"zoo:NAME"``.

    {DATA}
    """
    from ktrain.evaluation import evaluate_model
    from ktrain.models import resolve_model
    from ktrain.scaling import parse_input_scale
    from ktrain.specs import check_model_spec

    if neighbors < 0 or batch_size <= 0:
        raise KtrainError(
            f"neighbors is {neighbors} and batch_size is {batch_size}: give neighbors >= 0, batch_size > 0"
        )
    model = resolve_model(model)  # a run folder means its best student, as for export
    check_model_spec(model, "evaluated")
    dataset = as_dataset(data, None)
    scale = parse_input_scale(input_scale)
    with listening(listener):
        return evaluate_model(
            model,
            dataset,
            neighbors=neighbors,
            layer=layer,
            data_dir=data_dir,
            batch_size=batch_size,
            input_scale=scale,
        )


def export(
    student,
    path,
    *,
    quantize: str = "float32",
    data=None,
    max_accuracy_drop: float = 0.01,
    data_dir=None,
    check: bool = True,
    listener=None,
) -> dict:
    """Export ``student`` (a model object, a model file or a run's out folder) to the TFLite file
    ``path``: ``quantize`` is float32 (also "none"), float16 or int8 (full-integer, calibrated on
    ``data``'s training split). With ``data``, the export is checked on its test split, and an
    accuracy loss over ``max_accuracy_drop`` raises KtrainError after the file is written (with
    ``check=False`` the report says ``passed: False`` instead). Returns the report (size,
    accuracies, agreement with Keras, latency). Its phases (loading, converting, checking) go to
    ``listener``.

    {DATA}
    """
    from ktrain.data import load_dataset
    from ktrain.specs import check_model_spec
    from ktrain.tflite import check as check_report
    from ktrain.tflite import export as export_model

    if isinstance(student, os.PathLike):
        student = os.fspath(student)
    if not isinstance(student, str):
        check_model_spec(student, "student")
    splits = None
    with listening(listener):
        if data is not None:
            dataset = as_dataset(data, None)
            if isinstance(dataset, str):
                splits = load_dataset(dataset, data_dir=data_dir)
            else:
                splits = dataset.splits(val_split=DataSpec.val_split, seed=0)
        mode = "float32" if quantize == "none" else quantize
        report = export_model(student, os.fspath(path), mode, max_accuracy_drop=max_accuracy_drop, data=splits)
    if check:
        check_report(report)
    return report


def demo(
    out_folder: str | None = None,
    *,
    job: str = "seed",
    epochs: int | None = None,
    seed: int = 0,
    seeds: int | None = None,
    overwrite: bool = False,
    listener=None,
) -> Comparison:
    """An offline demo on the built-in digits (``ktrain demo``): train a zoo teacher, then compare the
    job's methods with a scratch student, ``seeds`` times. ``job`` "seed" (the default): KD, PKT and
    PKT+KD at their defaults; "pyramid": a pyramid of specialists, ensemble KD and selective KD.
    ``epochs`` (default: the job's, 60) sets the students' epochs, and shortens the teacher's to
    at most as many. Writes into ``out_folder`` when given (the command line uses
    :func:`demo_folder`), replacing an earlier demo there; a folder holding another command's run
    is refused unless ``overwrite``. :func:`demo_settings` says what the job runs and why."""
    from ktrain.comparison import run_demo

    chosen = _demo_job(job)
    epochs = chosen.epochs if epochs is None else epochs
    seeds = chosen.seeds if seeds is None else seeds
    if epochs <= 0 or seeds <= 0:
        raise KtrainError(f"epochs (-e) is {epochs} and seeds is {seeds}: give values greater than 0")
    with _quiet_tensorflow(), listening(listener):
        outcome = run_demo(
            chosen, out_folder, epochs=epochs, seeds=seeds, seed=seed, listener=listener, overwrite=overwrite
        )
    return comparison(outcome)


def demo_folder(job: str = "seed") -> str:
    """Where ``ktrain demo`` writes when no folder is given."""
    return _demo_job(job).folder


def demo_epochs(job: str = "seed") -> int:
    """The students' epochs of ``job`` unless ``epochs`` is given."""
    return _demo_job(job).epochs


def demo_settings(job: str = "seed", epochs: int | None = None, seeds: int | None = None) -> list[str]:
    """Lines saying which settings ``job`` runs with, and why."""
    chosen = _demo_job(job)
    return chosen.describe(chosen.epochs if epochs is None else epochs, chosen.seeds if seeds is None else seeds)


def _demo_job(job: str):
    from ktrain.demo import JOBS

    if job not in JOBS:
        raise KtrainError(f"demo job '{job}' is unknown: use {', '.join(JOBS)}")
    return JOBS[job]


def cache(
    teacher,
    data,
    cache_dir: str = "cache",
    *,
    features: bool = False,
    teacher_layer: str | None = None,
    specialists: Iterable[str] = (),
    data_dir: str | None = None,
    val_split: float = DataSpec.val_split,
    seed: int = TrainConfig.seed,
    batch_size: int = TrainConfig.eval_batch_size,
    augment=None,
    views: int | None = DataSpec.views,
    view_seed: int = DataSpec.view_seed,
    cache_topk: int | None = TrainConfig.cache_topk,
    teacher_precision: str = TrainConfig.teacher_precision,
    teacher_input_scale: str | None = None,
    listener=None,
) -> dict:
    """Precompute ``teacher``'s soft targets (and with ``features`` its features at ``teacher_layer``)
    on a named dataset's train and validation splits into ``cache_dir``, for later runs with the
    same ``val_split`` and ``seed`` (``ktrain cache``); returns a summary. With ``augment`` and
    ``views`` K it holds the logits of K views of every training sample (``view_seed`` as the runs
    will use), and with ``cache_topk`` N only each view's N largest logits; ``teacher_precision`` as
    the runs will use, and ``teacher_input_scale`` the pixel range the teacher takes (as
    ``--teacher-input-scale``)."""
    from ktrain.augment import Views, parse_augment
    from ktrain.targets import build_cache

    with listening(listener):
        return build_cache(
            ModelsSpec(teacher=teacher, specialists=tuple(specialists), teacher_input_scale=teacher_input_scale),
            data,
            cache_dir=cache_dir,
            features=features or bool(teacher_layer),
            teacher_layer=teacher_layer,
            data_dir=data_dir,
            val_split=val_split,
            seed=seed,
            batch_size=batch_size,
            views=Views(parse_augment(augment), views, view_seed),
            topk=cache_topk,
            listener=listener,
            teacher_precision=teacher_precision,
        )


def default(function, name: str):
    """The default of ``function``'s parameter ``name`` (the command line's options take them)."""
    import inspect

    return inspect.signature(function).parameters[name].default


for _function in (train, distill, compare, sweep, evaluate, export):
    if _function.__doc__:  # None under python -OO
        _function.__doc__ = _function.__doc__.format(MODELS=MODELS, DATA=DATA, OPTIONS=OPTIONS)


# -- shared with the command line ------------------------------------------------------------------
def run_command(command: str, *, listener=None, **arguments) -> Result | Comparison:
    """Build the run of ``command`` (train, distill, pkt, compare) from ``arguments`` (those of
    :func:`build_run`) and run it: what every public function and every training command of the
    command line calls."""
    run = build_run(command, **arguments)
    with _quiet_tensorflow(), listening(listener):
        if command == "compare":
            from ktrain.comparison import run_compare

            return comparison(run_compare(run, listener))
        from ktrain.run import run_single

        outcome = run_single(run, listener)
    return _result(outcome.record, 0, outcome.students.get(0))


@contextlib.contextmanager
def _quiet_tensorflow():
    """TensorFlow's Python warnings (retracing notices: each method builds its own compiled steps)
    stay off the caller's console during a run."""
    import tensorflow as tf

    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        yield
    finally:
        logger.setLevel(level)


def build_run(
    command: str,
    *,
    student,
    data,
    teacher=None,
    methods: tuple[str, ...] | None = None,
    switches: Iterable[str] = (),
    validation=None,
    options: Mapping[str, Any],
) -> Run:
    """The specs of one run, from its models, data, methods and options (validated when it runs).
    ``switches`` names the methods whose command-line switch was given (``pkt --kd``)."""
    from ktrain.methods import choose

    settings, method_options = split_options(command, options)
    grouped = build_specs(command, settings)
    specs, explicit = choose(command, methods, switches, method_options)
    return Run(
        command=command,
        models=ModelsSpec(student=student, teacher=teacher, **grouped.get(ModelsSpec, {})),
        data=DataSpec(as_dataset(data, validation), **grouped.get(DataSpec, {})),
        methods=specs,
        engine=engine_config(grouped),
        outputs=OutputSpec(**grouped.get(OutputSpec, {})),
        plan=Plan(**grouped.get(Plan, {})),
        explicit_methods=explicit,
    )


def split_options(command: str, options: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``options`` as (settings, method options); a name that is neither is a KtrainError naming the
    valid ones, with the closest as a suggestion."""
    from ktrain.methods import option_specs

    method_specs = option_specs()
    settings, method_options = {}, {}
    for name, value in options.items():
        if name in SETTINGS or name in HIDDEN:
            settings[name] = value
        elif name in method_specs:
            method_options[name] = value
        else:
            valid = [*settings_for(command), *method_specs]
            close = difflib.get_close_matches(name, valid, n=1)
            hint = f" (did you mean {close[0]}?)" if close else ""
            raise KtrainError(f"unknown option '{name}'{hint}: {command} takes {', '.join(valid)}")
    return settings, method_options


def as_dataset(data, validation):
    """A dataset name or path as it is; arrays and tf.data datasets as :class:`ktrain.memory.InMemoryData`."""
    if isinstance(data, str | os.PathLike):
        if validation is not None:
            raise KtrainError("validation= goes with data in memory: for a named dataset or .npz file, use val_split=")
        return os.fspath(data)
    if isinstance(data, tuple | list):
        from ktrain import memory

        if len(data) == 2 and all(memory.is_dataset(part) for part in data):
            return memory.from_datasets(*data, validation=validation)
        return memory.from_arrays(data, validation=validation)
    raise KtrainError(
        f"data is a {type(data).__name__}: give a dataset name, an .npz path, (x_train, y_train, x_test, y_test) "
        "arrays or (train, test) tf.data datasets"
    )


def _result(record: dict, index: int, student) -> Result:
    entry = record["results"][index]
    return Result(student, entry.get("history", {}), entry.get("test", {}), entry, record)


def comparison(outcome, kind: type[Comparison] = Comparison) -> Comparison:
    """A :class:`Comparison` (or ``kind``) from a compare run's outcome."""
    record = outcome.record
    runs = [_result(record, index, model) for index, model in outcome.students.items()]
    teacher = next(entry for entry in record["results"] if entry["role"] == "teacher")
    return kind(runs, teacher, record.get("best_student"), record)
