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
from ktrain.data import DataSplits, check_augment, load_dataset
from ktrain.engine import FitResult, Trainer, evaluate_classifier, seed_everything
from ktrain.errors import KtrainError, first_line
from ktrain.evaluate import representation_report
from ktrain.listener import Listener
from ktrain.methods import Method, build_method
from ktrain.report import OutFolder, attach_log_file, claim_out_folder, detach_log_file, environment, write_json_atomic
from ktrain.precision import policy as precision_policy
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
    with strategy.scope():
        teacher = teacher_view(job, method, data) if method.uses_teacher else None
        student_model = load_student(job, data)
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


# -- helpers -----------------------------------------------------------------------------------
def teacher_view(job: Job, method: Method, data: DataSplits) -> LogitsView:
    spec = job.teacher
    model = models.load_model(spec, role="teacher", input_shape=data.image_shape, num_classes=data.num_classes)
    models.check_input_shape(model, role="teacher", spec=spec, image_shape=data.image_shape, dataset=data.name)
    view = LogitsView(model, data.x_val, name=f"teacher '{spec}'", features=method.uses_features,
                      feature_layer=job.teacher_layer)
    model.trainable = False
    return view


def load_student(job: Job, data: DataSplits) -> keras.Model:
    model = models.load_model(job.student, role="student", input_shape=data.image_shape, num_classes=data.num_classes)
    models.check_input_shape(model, role="student", spec=job.student, image_shape=data.image_shape, dataset=data.name)
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


def teacher_record(teacher: LogitsView, data: DataSplits, config: TrainConfig, spec: str) -> dict:
    """The teacher's validation (logged: a sanity check before training) and test scores."""
    validation = evaluate_classifier(teacher, data.x_val, data.y_val, config.eval_batch_size)
    log.info("Teacher validation accuracy %.4f (logits: %s)", validation["accuracy"], teacher.source)
    return {
        "name": "Teacher",
        "role": "teacher",
        "source": spec,
        "logits_from": teacher.source,
        "params": teacher.params,
        "validation": {f"val_{key}": value for key, value in validation.items()},
        "test": evaluate_classifier(teacher, data.x_test, data.y_test, config.eval_batch_size),
    }


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
    model = models.load_model(spec, role="model", input_shape=data.image_shape, num_classes=data.num_classes)
    models.check_input_shape(model, role="model", spec=spec, image_shape=data.image_shape, dataset=data.name)
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


def build_cache(teacher_spec: str, dataset: str, *, cache_dir: str, features: bool = False,
                teacher_layer: str | None = None, data_dir: str | None = None, val_split: float = 0.3,
                seed: int = 0, batch_size: int = 128) -> dict:
    """``ktrain cache``: compute (or verify) the on-disk soft targets a later run with the same
    teacher, dataset, ``--val-split`` and ``--seed`` will read."""
    from ktrain.targets import load_or_build

    if batch_size <= 0:
        raise KtrainError(f"evaluation batch size (-ebs) is {batch_size}: give a value greater than 0")
    keras.utils.set_random_seed(seed)  # a zoo: teacher is built the same way every time
    data = load_dataset(dataset, data_dir=data_dir, val_split=val_split, seed=seed)
    model = models.load_model(teacher_spec, role="teacher", input_shape=data.image_shape, num_classes=data.num_classes)
    models.check_input_shape(model, role="teacher", spec=teacher_spec, image_shape=data.image_shape, dataset=data.name)
    teacher = LogitsView(model, data.x_val, name=f"teacher '{teacher_spec}'", features=features,
                         feature_layer=teacher_layer)
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
