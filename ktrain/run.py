"""Jobs the CLI runs: ``train`` / ``distill`` one student, and the offline ``demo``.

A job validates every input before any heavy work, builds the strategy first and every model inside
its scope, trains with the engine, evaluates on the test split (used for nothing else), and writes
the student and results.json through temporary files.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import keras

from ktrain import models
from ktrain.config import TrainConfig
from ktrain.checkpoint import has_checkpoint
from ktrain.classes import format_classes, parse_classes
from ktrain.data import DataSplits, check_augment, load_dataset
from ktrain.engine import FitResult, Trainer, evaluate_classifier, seed_everything
from ktrain.errors import KtrainError, first_line
from ktrain.evaluate import representation_report
from ktrain.listener import Listener
from ktrain.methods import Method, build_method, get_method
from ktrain.report import OutFolder, attach_log_file, claim_out_folder, detach_log_file, environment, write_json_atomic
from ktrain.precision import policy as precision_policy
from ktrain.specialists import SpecialistEnsemble, ensemble_from_model, is_generalist, load_ensemble, members_of, split_spec
from ktrain.strategy import build_strategy, describe, jit_enabled, output_folder
from ktrain.targets import prepare as prepare_targets
from ktrain.taps import LogitsView

log = logging.getLogger("ktrain")


@dataclass(frozen=True)
class Job:
    """One ``ktrain train``, ``distill``, ``pkt`` or ``compare`` invocation."""

    command: str
    student: str
    dataset: str
    method: str = "supervised"
    method_options: dict = field(default_factory=dict)
    config: TrainConfig = field(default_factory=TrainConfig)
    teacher: str | None = None
    # More teacher members, FILE:CLASSES (a specialist) or FILE (a generalist): the teacher is an ensemble.
    specialists: tuple[str, ...] = ()
    # train only: the classes a specialist is trained on ("0-4"); None for all.
    classes: str | None = None
    out_folder: str = "out"
    prefix: str = ""
    data_dir: str | None = None
    val_split: float = 0.3
    reinit: bool = False
    start_weights: str | None = None
    debug: bool = False
    student_layer: str | None = None
    teacher_layer: str | None = None
    neighbors: int = 5
    resume: bool = False
    overwrite: bool = False
    export: str | None = None
    max_accuracy_drop: float = 0.01
    targets: str = "auto"
    cache_dir: str | None = None
    augment: tuple[str, ...] = ()
    # compare only
    methods: tuple[str, ...] = ("kd", "pkt", "pkt+kd")
    baseline: bool = True
    seeds: int = 1
    save_students: str = "best"
    omit_results: bool = False
    tensorboard: bool = False


def run_job(job: Job, listener: Listener | None = None) -> dict:
    """Run ``job`` end to end; returns what was written to results.json."""
    config = job.config.validate()
    if job.neighbors <= 0:
        raise KtrainError(f"neighbors (-k) is {job.neighbors}: give a value greater than 0")
    check_augment(job.augment)
    check_export_mode(job.export)
    method = build_method(job.method, job.method_options)
    if method.uses_teacher and job.teacher is None:
        raise KtrainError(f"method '{method.name}' needs a TEACHER model")
    strategy = build_strategy(config.strategy)  # first: a strategy must exist before other TF work
    out = OutFolder(output_folder(strategy, job.out_folder), job.prefix)
    claim_out_folder(out, resume=job.resume, overwrite=job.overwrite)
    handler = attach_log_file(out, job.debug)
    try:
        with precision_policy(config.precision):
            return _run(job, config, method, strategy, out, listener)
    finally:
        detach_log_file(handler)


def _run(job: Job, config: TrainConfig, method: Method, strategy, out: OutFolder, listener: Listener | None) -> dict:
    started = time.perf_counter()
    seed_everything(config.seed, deterministic=not jit_enabled(config.jit, strategy))
    log.info("Loading dataset %s...", job.dataset)
    data = load_dataset(job.dataset, data_dir=job.data_dir, val_split=job.val_split, seed=config.seed)
    if job.classes:
        data = data.restrict(parse_classes(job.classes, data.num_classes, f"--classes {job.classes}"))
        log.info("Training on classes %s only (%d training images)", job.classes, len(data.y_train))
    with strategy.scope():
        teacher = None
        if method.uses_teacher:
            teacher = load_teacher(job, data, ensemble=method.uses_ensemble, features=method.uses_features)
            method = resolve_method(method, teacher, job)
        student_model = load_student(job, data)
    if job.command == "train" and len(student_model.outputs) > 1:
        return _train_ensemble(job, config, strategy, out, listener, data, student_model, started)
    student = LogitsView(student_model, data.x_val, name=f"student '{job.student}'",
                         features=method.uses_features, feature_layer=job.student_layer)
    check_classes(student, teacher, job, data)
    teacher_entry = None
    if teacher is not None:
        teacher_entry = teacher_record(teacher, data, config, job.teacher)
    initial = None
    if method.uses_features:
        initial = representation_report(student, data, job.neighbors, config.eval_batch_size)
        log.info("Untrained student: kNN accuracy %.4f, mAP %.4f", initial["knn_accuracy_cosine"], initial["map"])
    targets = None
    if teacher is not None:
        targets = prepare_targets(job.targets, job.augment, teacher, data, config.eval_batch_size, job.cache_dir)
    log.info("Performing %s...", method.display_name)
    trainer = Trainer(student=student, teacher=teacher, method=method, config=config, strategy=strategy,
                      listener=listener, targets=targets, augment=job.augment)
    fit = trainer.fit(data, checkpoint_dir=str(out.file("checkpoints")), resume=job.resume)
    log.info("Evaluating results...")
    entry = student_record(method, student, trainer, fit, data, job.student)
    entry["soft_targets"] = targets.source if targets is not None else "online"
    if method.uses_features:
        entry["feature_layer"] = student.feature_source
        entry["representation"] = representation_report(student, data, job.neighbors, config.eval_batch_size)
        entry["untrained_representation"] = initial
        if teacher_entry is not None:
            teacher_entry["feature_layer"] = teacher.feature_source
            teacher_entry["representation"] = representation_report(teacher, data, job.neighbors,
                                                                    config.eval_batch_size)
    saved = models.save_model_atomic(student.model, out.file("model.keras" if job.command == "train" else "student.keras"))
    entry["saved_to"] = str(saved)
    log.info("Student network has been saved as %s.", saved)
    entries = [entry] + ([teacher_entry] if teacher_entry else [])
    results = results_record(job.command, config, data, strategy, entries, started, job=job, method=method)
    results["export"] = export_student(job, saved, out, data)
    write_json_atomic(out.file("results.json"), results)
    log.info("Finished!")
    if results["export"]:
        check_export(results["export"])
    return results


def export_student(job: Job, saved, out: OutFolder, data: DataSplits) -> dict | None:
    """``--export MODE``: the saved student as ``student_MODE.tflite``, checked on the test split."""
    if not job.export or saved is None:
        return None
    from ktrain.export import export

    log.info("Exporting the student to TFLite (%s)...", job.export)
    return export(str(saved), str(out.file(f"student_{job.export}.tflite")), job.export,
                  max_accuracy_drop=job.max_accuracy_drop, data=data)


def _train_ensemble(job: Job, config: TrainConfig, strategy, out: OutFolder, listener: Listener | None,
                    data: DataSplits, model: keras.Model, started: float) -> dict:
    """``ktrain train`` of a multi-output ensemble (zoo:pyramid_ensemble): every member is trained on its
    own classes, then the averaged ensemble is scored; the multi-output model is saved."""
    log.info("Training the %d members of ensemble '%s'...", len(model.outputs), job.student)
    members = train_members(model, data, config, strategy, listener, job.student, str(out.file("checkpoints")),
                            job.resume)
    ensemble = ensemble_from_model(model, data, job.student)
    test = evaluate_classifier(ensemble.averaged, data.x_test, data.y_test, config.eval_batch_size)
    log.info("Averaged ensemble: test accuracy %.4f", test["accuracy"])
    entry = {
        "name": "Ensemble",
        "role": "student",
        "method": "supervised",
        "source": job.student,
        "logits_from": ensemble.source,
        "params": ensemble.params,
        "test": test,
        "members": members,
        "epochs_run": sum(member["epochs_run"] for member in members),
        "train_seconds": sum(member["train_seconds"] for member in members),
    }
    saved = models.save_model_atomic(model, out.file("model.keras"))
    entry["saved_to"] = str(saved)
    log.info("Ensemble has been saved as %s.", saved)
    results = results_record(job.command, config, data, strategy, [entry], started, job=job,
                             method=get_method("supervised")())
    write_json_atomic(out.file("results.json"), results)
    log.info("Finished!")
    return results


def train_members(model: keras.Model, data: DataSplits, config: TrainConfig, strategy, listener: Listener | None,
                  spec: str, checkpoint_dir: str | None = None, resume: bool = False) -> list[dict]:
    """Train each output of an ensemble with labels, a specialist on the samples of its classes only."""
    records = []
    model.trainable = True
    for index, member in enumerate(members_of(model, data.num_classes, spec, data.x_val)):
        general = is_generalist(member.classes, data.num_classes)
        subset = data if general else data.restrict(member.classes)
        title = f"{member.name} [{format_classes(member.classes)}]"
        log.info("Training member %s on %d images...", title, len(subset.y_train))
        trainer = Trainer(student=member.view, method=get_method("supervised")(), config=config, strategy=strategy,
                          listener=listener, title=title)
        folder = None if checkpoint_dir is None else f"{checkpoint_dir}/member{index}"
        fit = trainer.fit(subset, checkpoint_dir=folder, resume=resume and folder is not None and has_checkpoint(folder))
        test = trainer.evaluate(subset.x_test, subset.y_test)
        log.info("Member %s: test accuracy %.4f on the %d test images of its classes", title, test["accuracy"],
                 len(subset.y_test))
        records.append({"name": member.name, "classes": list(member.classes), "generalist": general,
                        "test": test, "test_images": len(subset.y_test), "history": fit.columns(),
                        "epochs_run": len(fit.history), "best_epoch": fit.best_epoch, "train_seconds": fit.seconds})
    return records


# -- helpers -----------------------------------------------------------------------------------
def load_teacher(job: Job, data: DataSplits, *, ensemble: bool = False, features: bool = False,
                 model: keras.Model | None = None) -> LogitsView | SpecialistEnsemble:
    """The teacher: a view of one model, or a :class:`SpecialistEnsemble` when the teacher has several
    outputs, names its classes (``FILE:0-4``), comes with ``--specialist`` members, or ``ensemble`` asks
    for one. ``model``, if given, is the teacher already loaded (or just trained)."""
    path, classes = split_spec(job.teacher)
    if model is None:
        model = models.load_for(path, role="teacher", data=data)
    if ensemble or job.specialists or classes is not None or len(model.outputs) > 1:
        teacher = load_ensemble([job.teacher, *job.specialists], data, first=model)
        log.info("Teacher ensemble: %s", teacher.source)
        return teacher
    view = LogitsView(model, data.x_val, name=f"teacher '{job.teacher}'", features=features,
                      feature_layer=job.teacher_layer)
    model.trainable = False
    return view


def resolve_method(method: Method, teacher, job: Job) -> Method:
    """With an ensemble teacher, ``kd`` means KD from the averaged ensemble, and the ensemble methods are
    built with the ensemble's layout; a method that needs one teacher model is refused."""
    if not isinstance(teacher, SpecialistEnsemble):
        return method
    name = "ensemble-kd" if method.name == "kd" else method.name
    if not get_method(name).uses_ensemble:
        raise KtrainError(
            f"method '{method.name}' needs one teacher model, but the teacher is an ensemble of "
            f"{len(teacher.members)} members: use kd (from the averaged ensemble) or -sl (selective KD)"
        )
    return build_method(name, {**job.method_options, "layout": teacher.layout, "num_classes": teacher.num_classes})


def load_student(job: Job, data: DataSplits) -> keras.Model:
    model = models.load_for(job.student, role="student", data=data)
    model.trainable = True
    if job.reinit:
        model = keras.models.clone_model(model)  # clone_model draws fresh initial weights
    if job.start_weights:
        try:
            model.load_weights(job.start_weights)
        except Exception as exc:
            raise KtrainError(
                f"could not load start weights '{job.start_weights}' into the student ({first_line(exc)}): "
                "give a weights file saved from the same architecture"
            ) from exc
    return model


def check_classes(student: LogitsView, teacher: LogitsView | None, job: Job, data: DataSplits) -> None:
    if teacher is not None and teacher.num_classes != student.num_classes:
        raise KtrainError(
            f"teacher '{job.teacher}' outputs {teacher.num_classes} classes but student '{job.student}' outputs "
            f"{student.num_classes}: give a teacher and a student with the same classes"
        )
    for role, spec, view in (("teacher", job.teacher, teacher), ("student", job.student, student)):
        if view is not None and view.num_classes != data.num_classes:
            raise KtrainError(
                f"{role} '{spec}' outputs {view.num_classes} classes but dataset '{data.name}' has "
                f"{data.num_classes}: give a model with {data.num_classes} outputs"
            )


def teacher_record(teacher: LogitsView | SpecialistEnsemble, data: DataSplits, config: TrainConfig,
                   spec: str) -> dict:
    """The teacher's validation (logged: a sanity check before training) and test scores; an ensemble
    is scored as its averaged ensemble, and each member on the test images of its own classes."""
    ensemble = isinstance(teacher, SpecialistEnsemble)
    scorer = teacher.averaged if ensemble else teacher
    validation = evaluate_classifier(scorer, data.x_val, data.y_val, config.eval_batch_size)
    log.info("Teacher validation accuracy %.4f (%s: %s)", validation["accuracy"],
             "averaged ensemble" if ensemble else "logits", teacher.source)
    record = {
        "name": "Teacher",
        "role": "teacher",
        "source": spec,
        "logits_from": teacher.source,
        "params": teacher.params,
        "validation": {f"val_{key}": value for key, value in validation.items()},
        "test": evaluate_classifier(scorer, data.x_test, data.y_test, config.eval_batch_size),
    }
    if ensemble:
        record["members"] = member_scores(teacher, data, config.eval_batch_size)
    return record


def member_scores(ensemble: SpecialistEnsemble, data: DataSplits, batch_size: int) -> list[dict]:
    """Each member's test accuracy on the test images of the classes it covers."""
    scores = []
    for member in ensemble.members:
        subset = data.restrict(member.classes)
        test = evaluate_classifier(member.view, subset.x_test, subset.y_test, batch_size)
        log.info("Teacher member %s [%s]: test accuracy %.4f on %d images of its classes", member.name,
                 format_classes(member.classes), test["accuracy"], len(subset.y_test))
        scores.append({"name": member.name, "classes": list(member.classes),
                       "generalist": is_generalist(member.classes, data.num_classes), "test": test,
                       "test_images": len(subset.y_test)})
    return scores


def student_record(method: Method, view: LogitsView, trainer: Trainer, fit: FitResult, data: DataSplits,
                   spec: str) -> dict:
    return {
        "name": method.display_name,
        "role": "student",
        "method": method.name,
        "method_options": method.options(),
        "trains_head": method.trains_head,
        "source": spec,
        "logits_from": view.source,
        "params": view.params,
        "test": trainer.evaluate(data.x_test, data.y_test),
        "history": fit.columns(),
        "best_epoch": fit.best_epoch,
        "epochs_run": len(fit.history),
        "stopped_early": fit.stopped_early,
        "restored_best": fit.restored_best,
        "train_seconds": fit.seconds,
    }


def results_record(command: str, config: TrainConfig, data: DataSplits, strategy, entries: list[dict], started: float,
             job: Job | None = None, method: Method | None = None, methods: list[Method] | None = None) -> dict:
    teacher = next((entry for entry in entries if entry["role"] == "teacher"), None)
    student = next((entry for entry in entries if entry["role"] == "student"), None)
    ratio = None
    if teacher and student:
        ratio = {
            "teacher_over_student": teacher["params"] / student["params"],
            "student_over_teacher": student["params"] / teacher["params"],
        }
    job_settings = None
    if job is not None:
        job_settings = {key: value for key, value in vars(job).items() if key not in ("config",)}
    return {
        "command": command,
        "job": job_settings,
        "config": config.to_dict(),
        "method": {"name": method.name, "options": method.options()} if method else None,
        "methods": [{"name": m.name, "options": m.options()} for m in methods] if methods else None,
        "dataset": {"name": data.name, "sizes": data.sizes(), "num_classes": data.num_classes,
                    "image_shape": list(data.image_shape), "fingerprint": data.fingerprint()},
        "strategy": describe(strategy),
        "jit": jit_enabled(config.jit, strategy),
        **environment(),
        "results": entries,
        "ratio": ratio,
        "wall_seconds": time.perf_counter() - started,
    }



def evaluate_model(spec: str, dataset: str, *, neighbors: int = 0, layer: str | None = None,
                   data_dir: str | None = None, batch_size: int = 128) -> dict:
    """``ktrain evaluate``: test accuracy and cross-entropy, and kNN accuracy of the features with ``neighbors``."""
    data = load_dataset(dataset, data_dir=data_dir)
    model = models.load_for(spec, role="model", data=data)
    if len(model.outputs) > 1:
        return _evaluate_ensemble(model, spec, data, neighbors, batch_size)
    view = LogitsView(model, data.x_val, name=f"model '{spec}'", features=neighbors > 0, feature_layer=layer)
    if view.num_classes != data.num_classes:
        raise KtrainError(f"model '{spec}' outputs {view.num_classes} classes but dataset '{data.name}' has "
                          f"{data.num_classes}: give a model with {data.num_classes} outputs")
    scores = {"test images": len(data.y_test), "params": view.params,
              **{f"test {k}": v for k, v in evaluate_classifier(view, data.x_test, data.y_test, batch_size).items()}}
    if neighbors:
        report = representation_report(view, data, neighbors, batch_size)
        scores.update({f"test kNN accuracy (k={neighbors})": report["knn_accuracy_cosine"], "test mAP": report["map"]})
    return scores


def _evaluate_ensemble(model: keras.Model, spec: str, data: DataSplits, neighbors: int, batch_size: int) -> dict:
    """An ensemble of specialists: the averaged ensemble, and each member on the images of its classes."""
    if neighbors:
        raise KtrainError(f"model '{spec}' is an ensemble of {len(model.outputs)} outputs, which has no single "
                          "feature layer: drop -k, or evaluate one member saved as its own model")
    ensemble = ensemble_from_model(model, data, spec)
    scores = {"test images": len(data.y_test), "params": ensemble.params,
              **{f"test {k}": v for k, v in evaluate_classifier(ensemble.averaged, data.x_test, data.y_test,
                                                                 batch_size).items()}}
    for member in member_scores(ensemble, data, batch_size):
        scores[f"{member['name']} [{format_classes(member['classes'])}]"] = member["test"]["accuracy"]
    return scores


def build_cache(teacher_spec: str, dataset: str, *, cache_dir: str, features: bool = False,
                teacher_layer: str | None = None, data_dir: str | None = None, val_split: float = 0.3,
                seed: int = 0, batch_size: int = 128, specialists: tuple[str, ...] = ()) -> dict:
    """``ktrain cache``: compute (or verify) the on-disk soft targets a later run with the same
    teacher (and ``specialists``), dataset, ``--val-split`` and ``--seed`` will read."""
    from ktrain.targets import load_or_build

    if batch_size <= 0:
        raise KtrainError(f"evaluation batch size (-ebs) is {batch_size}: give a value greater than 0")
    keras.utils.set_random_seed(seed)  # a zoo: teacher is built the same way every time
    data = load_dataset(dataset, data_dir=data_dir, val_split=val_split, seed=seed)
    job = Job(command="cache", student="", dataset=dataset, teacher=teacher_spec, specialists=tuple(specialists),
              teacher_layer=teacher_layer)
    teacher = load_teacher(job, data, features=features)
    if features and isinstance(teacher, SpecialistEnsemble):
        raise KtrainError("--features: an ensemble teacher has no single feature layer; cache its logits only")
    targets = load_or_build(teacher, data, batch_size, cache_dir)
    return {"path": targets.source, "megabytes": targets.nbytes() / 2**20,
            "arrays": {f"{split}/{kind}": list(array.shape) for split, kinds in targets.arrays.items()
                       for kind, array in kinds.items()}}


def check_export_mode(mode: str | None) -> None:
    from ktrain.export import MODES

    if mode is not None and mode not in MODES:
        raise KtrainError(f"--export is '{mode}': use float32, float16 or int8")


def check_export(report: dict) -> None:
    from ktrain.export import check

    check(report)
