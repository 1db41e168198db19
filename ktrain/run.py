"""One training run: ``train`` / ``distill`` / ``pkt`` a student, and ``train`` of an ensemble.

A run validates its specs before any heavy work, builds the strategy first and every model inside
its scope, trains with the engine, evaluates on the test split (used for nothing else), and writes
the student and results.json through temporary files. Without an out folder (the Python API's
default) nothing is written: no checkpoints, log, student or results file.

A caller's student object is trained as a copy built in the strategy's scope (the optimizer's
slots must live there), and the trained weights are written back into it. A caller's teacher
object is used as it is on one device in float32 (copied otherwise) and comes back unchanged, its
``trainable`` flags included.
"""

from __future__ import annotations

import contextlib
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path

import keras

from ktrain import models
from ktrain.augment import check_padding
from ktrain.checkpoint import has_checkpoint
from ktrain.classes import format_classes
from ktrain.config import TrainConfig
from ktrain.data import DataSplits
from ktrain.engine import Interrupted, Trainer, check_batch_size
from ktrain.errors import KtrainError, RunFault, path_error
from ktrain.evaluation import check_neighbors, evaluate_classifier, representation_report
from ktrain.fingerprint import check_and_record
from ktrain.io import json_ready, write_json_atomic
from ktrain.listener import Listener, Listeners, phase
from ktrain.loading import check_classes, load_student, load_teacher, student_view
from ktrain.methods.selection import baseline
from ktrain.outfolder import (
    FINGERPRINT,
    LOCK_NAME,
    Before,
    OutFolder,
    check_inputs_outside,
    claim_out_folder,
    discard_aside,
    folder_lock,
    list_outputs,
)
from ktrain.precision import policy as precision_policy
from ktrain.records import add_representation, results_record, student_record, teacher_record
from ktrain.report import attach_log_file, detach_log_file
from ktrain.seeding import seed_everything
from ktrain.specialists import ensemble_from_model, is_generalist, members_of
from ktrain.specs import OutputSpec, Run, is_object, label
from ktrain.strategy import build_strategy, jit_enabled, needs_copies, output_folder
from ktrain.targets import check_topk_classes
from ktrain.targets import prepare as prepare_targets

log = logging.getLogger("ktrain")


@dataclass
class Outcome:
    """What a run returns: ``record``, exactly what results.json holds (or would hold), and the
    trained student models by their index in ``record["results"]`` (None: not kept, say resumed)."""

    record: dict
    students: dict[int, keras.Model | None] = field(default_factory=dict)


@contextlib.contextmanager
def run_context(run: Run, *, log_file: bool = True):
    """Validate ``run``, build its strategy (first: it must exist before other TF work), claim the out
    folder and attach the log file; yields ``(strategy, out)``, ``out`` None when nothing is written.
    A teacher model object gets its ``trainable`` flags back when the run ends.

    A refusal, or a Ctrl-C, before the run has a checkpoint of its own leaves the folder as it was
    (see :mod:`ktrain.outfolder`); any other end discards the earlier run an ``--overwrite`` set aside."""
    run.validate()
    strategy = build_strategy(run.engine.strategy)
    with contextlib.ExitStack() as stack:
        out, before, aside = None, None, None
        if run.outputs.writes_files:  # -or -s none: no folder at all
            folder = Path(output_folder(strategy, run.outputs.folder))
            created = first_missing(folder)
            out = OutFolder(folder, run.outputs.prefix)
            role = "model" if run.command == "train" else "student"
            check_inputs_outside(out, run.models.files(role) + run.data.files())
            lock_existed = (out.path / LOCK_NAME).exists()
            try:
                holder = stack.enter_context(folder_lock(out))  # before the check: no second run slips in
            except (KtrainError, OSError) as exc:
                if created is not None:  # not the running run's folder: this one made it
                    Before(out, None, created).restore(None)
                if isinstance(exc, OSError):
                    raise path_error(exc) from None
                raise
            before = Before(out, holder if lock_existed else None, created)
            try:
                aside = claim_out_folder(out, resume=run.outputs.resume, overwrite=run.outputs.overwrite)
                list_outputs(out.path, [out.file(FINGERPRINT)], out.prefix)  # not output(): no commit yet
                check_and_record(run, out.file(FINGERPRINT), strategy.num_replicas_in_sync)
            except (KtrainError, OSError, KeyboardInterrupt) as exc:
                before.restore(aside)
                if isinstance(exc, OSError):
                    raise path_error(exc) from None
                raise
        handler, ended = None, None  # ended: a refusal or an early Ctrl-C leaves nothing of the run
        try:
            handler = attach_log_file(out, run.outputs.debug) if log_file and out is not None else None
            with precision_policy(run.engine.precision), models.unchanged_trainable(run.models.teacher):
                yield strategy, out
        except KtrainError as exc:
            ended = "refused" if not isinstance(exc, RunFault) else None
            raise
        except OSError as exc:  # a path no check caught (writers say their own failures as RunFault)
            ended = "refused"
            raise path_error(exc) from None
        except KeyboardInterrupt:  # Ctrl-C outside a training loop (which raises Interrupted)
            ended = "interrupted"
            checkpointed = out is not None and has_checkpoint(out.file("checkpoints"), recursive=True)
            raise Interrupted(None, None, str(out.file("checkpoints")) if checkpointed else None) from None
        finally:
            _end(out, before, aside, handler, ended)


def _end(out: OutFolder | None, before: Before | None, aside: Path | None, handler, ended: str | None) -> None:
    """Detach the log and settle the folder: a run ``ended`` by a refusal or a Ctrl-C before it had a
    checkpoint of its own leaves the folder as it was; otherwise the set-aside earlier run goes."""
    undo = ended is not None and out is not None and not has_checkpoint(out.file("checkpoints"), recursive=True)
    if handler is not None:
        if ended == "interrupted":
            log.info("Interrupted (Ctrl-C)")
        detach_log_file(handler, refused=undo)  # no stray warning before the one line
    if before is None:
        return
    if undo:
        before.restore(aside)
    else:
        discard_aside(aside)


def first_missing(folder: Path) -> Path | None:
    """The outermost folder of ``folder``'s path that does not exist yet (None if it exists)."""
    missing, folder = None, folder.absolute()
    for path in (folder, *folder.parents):
        if path.exists():
            return missing
        missing = path
    return missing


def check_against_data(run: Run, data: DataSplits) -> None:
    """Settings only the data can refuse, checked as soon as it is loaded: before a teacher is
    trained or scored, so a refusal comes first and costs nothing."""
    if run.outputs.neighbors:
        check_neighbors(run.outputs.neighbors, len(data.x_train))
    check_batch_size(run.engine.batch_size, len(data.y_train))
    check_padding(run.data.sample_views.augment, data.image_shape)
    check_topk_classes(run.engine.cache_topk, data)


def checkpoints(out: OutFolder | None, outputs: OutputSpec):
    """The checkpoint folder, or None when no results are written (``-or``: nothing to resume)."""
    return None if out is None or not outputs.write_results else out.output("checkpoints")


def run_single(run: Run, listener: Listener | None = None) -> Outcome:
    """Run ``train``, ``distill`` or ``pkt`` end to end."""
    with run_context(run) as (strategy, out):
        return _run_single(run, strategy, out, Listeners(listener, tensorboard_listener(run, out)))


def tensorboard_listener(run: Run, out: OutFolder | None) -> Listener | None:
    """``--tensorboard``: each training run's scalars under ``-out/tensorboard/<run>/``."""
    if not run.outputs.tensorboard or out is None:
        return None
    from ktrain.tensorboard import TensorBoardListener

    return TensorBoardListener(lambda: out.output("tensorboard"))  # named when it first writes


def _run_single(run: Run, strategy, out: OutFolder | None, listener: Listener | None) -> Outcome:
    started = time.perf_counter()
    config = run.engine
    seed_everything(config.seed, deterministic=not jit_enabled(config.jit, strategy))
    log.info("Loading dataset %s...", label(run.data.dataset))
    data = run.data.load(config.seed)
    check_against_data(run, data)
    specs, teacher = run.methods, None
    role = "model" if run.command == "train" else "student"
    copies = needs_copies(strategy, config.precision)
    with strategy.scope():
        # The optimizer's slots must share the strategy's scope with the student's variables, so a
        # caller's student object is always trained as a copy, then written back.
        student_model = load_student(run.models, data, copy=True, role=role)
        if specs[0].cls.uses_teacher:
            teacher, specs = load_teacher(
                run.models,
                data,
                specs,
                explicit=run.explicit_methods,
                copy=copies,
                student=student_model,
                precision=config.teacher_precision,
            )
    if run.command == "train" and len(student_model.outputs) > 1:
        return _train_ensemble(run, strategy, out, listener, data, student_model, started)
    method = specs[0].build()
    if teacher is not None:
        method.attach_teacher(teacher)
    student = student_view(student_model, data, run.models, method, role)
    check_classes(student, teacher, run.models, data, role)
    neighbors, batch_size = run.outputs.neighbors, config.eval_batch_size
    teacher_entry = (
        None if teacher is None else teacher_record(teacher, data, config, label(run.models.teacher), neighbors)
    )
    untrained = None
    if student.feature_key is not None:
        with phase("kNN and mAP of the untrained student's features"):
            untrained = representation_report(student, data, neighbors, batch_size)
        log.info("Untrained student: kNN accuracy %.4f, mAP %.4f", untrained["knn_accuracy_cosine"], untrained["map"])
    targets = None
    if teacher is not None:
        targets = prepare_targets(config, run.data.sample_views, teacher, data, listener)
    log.info("Performing %s...", method.display_name)
    trainer = Trainer(
        student=student,
        teacher=teacher,
        method=method,
        config=config,
        strategy=strategy,
        listener=listener,
        targets=targets,
        views=run.data.sample_views,
    )
    folder = checkpoints(out, run.outputs)
    fit = trainer.fit(data, checkpoint_dir=None if folder is None else str(folder), resume=run.outputs.resume)
    log.info("Evaluating results...")
    entry = student_record(method, student, trainer, fit, data, label(run.models.student))
    entry["soft_targets"] = targets.source if targets is not None else "online"
    add_representation(entry, student, untrained, data, neighbors, batch_size)
    saved = None
    if out is not None:
        saved = models.save_model_atomic(
            student.model, out.output("model.keras" if run.command == "train" else "student.keras")
        )
        entry["saved_to"] = str(saved)
        log.info("Student network has been saved as %s.", saved)
    entries = [entry] + ([teacher_entry] if teacher_entry else [])
    results = results_record(run, config, data, strategy, entries, started, [method])
    returned = returned_student(run, student_model)  # before finish: a failed export check keeps the weights
    return Outcome(finish(results, saved, run.outputs, out, data, run.models.student_scale), {0: returned})


def returned_student(run: Run, trained: keras.Model) -> keras.Model:
    """The caller's student object, holding the trained weights, or the model trained from a file."""
    models.write_back(run.models.student, trained)
    return run.models.student if is_object(run.models.student) else trained


def finish(results: dict, saved, outputs: OutputSpec, out: OutFolder | None, data: DataSplits, scale=None) -> dict:
    """Export the (best) student when asked, write results.json, and check the export last; returns
    the record as results.json holds it. ``scale``: the student's ``--input-scale``."""
    results["export"] = export_student(outputs, saved, out, data, scale)
    record = json_ready(results)
    if outputs.write_results and out is not None:
        write_json_atomic(out.output("results.json"), record)
    log.info("Finished!")
    check_export(record)
    return record


def check_export(results: dict) -> None:
    """Fail (one line) when the export lost more accuracy than allowed; last, after every file is written."""
    if results.get("export"):
        from ktrain.tflite import check

        check(results["export"])


def export_student(outputs: OutputSpec, saved, out: OutFolder | None, data: DataSplits, scale=None) -> dict | None:
    """``--export MODE``: the saved student as ``student_MODE.tflite``, checked on the test split."""
    if not outputs.export or saved is None or out is None:
        return None
    from ktrain.tflite import export

    log.info("Exporting the student to TFLite (%s)...", outputs.export)
    return export(
        str(saved),
        str(out.output(f"student_{outputs.export}.tflite")),
        outputs.export,
        max_accuracy_drop=outputs.max_accuracy_drop,
        data=data,
        input_scale=scale,
    )


def _train_ensemble(
    run: Run,
    strategy,
    out: OutFolder | None,
    listener: Listener | None,
    data: DataSplits,
    model: keras.Model,
    started: float,
) -> Outcome:
    """``ktrain train`` of a multi-output ensemble (zoo:pyramid_ensemble): every member is trained on its
    own classes, then the averaged ensemble is scored; the multi-output model is saved."""
    source = label(run.models.student)
    log.info("Training the %d members of ensemble '%s'...", len(model.outputs), source)
    folder = checkpoints(out, run.outputs)
    members = train_members(
        model, data, run.engine, strategy, listener, source, None if folder is None else str(folder), run.outputs.resume
    )
    ensemble = ensemble_from_model(model, data, source)
    test = evaluate_classifier(ensemble.averaged, data.x_test, data.y_test, run.engine.eval_batch_size)
    log.info("Averaged ensemble: test accuracy %.4f", test["accuracy"])
    entry = {
        "name": "Ensemble",
        "role": "student",
        "method": baseline().name,
        "source": source,
        "logits_from": ensemble.source,
        "params": ensemble.params,
        "test": test,
        "members": members,
        "epochs_run": sum(member["epochs_run"] for member in members),
        "train_seconds": sum(member["train_seconds"] for member in members),
    }
    if out is not None:
        saved = models.save_model_atomic(model, out.output("model.keras"))
        entry["saved_to"] = str(saved)
        log.info("Ensemble has been saved as %s.", saved)
    results = results_record(run, run.engine, data, strategy, [entry], started, [baseline().build()])
    record = json_ready(results)
    if out is not None:
        write_json_atomic(out.output("results.json"), record)
    log.info("Finished!")
    return Outcome(record, {0: returned_student(run, model)})


def train_members(
    model: keras.Model,
    data: DataSplits,
    config: TrainConfig,
    strategy,
    listener: Listener | None,
    spec: str,
    checkpoint_dir: str | None = None,
    resume: bool = False,
) -> list[dict]:
    """Train each output of an ensemble with labels, a specialist on the samples of its classes only."""
    records = []
    model.trainable = True
    for index, member in enumerate(members_of(model, data.num_classes, spec, data.x_val)):
        general = is_generalist(member.classes, data.num_classes)
        subset = data if general else data.restrict(member.classes)
        title = f"{member.name} [{format_classes(member.classes)}]"
        log.info("Training member %s on %d images...", title, len(subset.y_train))
        trainer = Trainer(
            student=member.view,
            method=baseline().build(),
            config=config,
            strategy=strategy,
            listener=listener,
            title=title,
        )
        folder = None if checkpoint_dir is None else f"{checkpoint_dir}/member{index}"
        fit = trainer.fit(
            subset, checkpoint_dir=folder, resume=resume and folder is not None and has_checkpoint(folder)
        )
        test = trainer.evaluate(subset.x_test, subset.y_test)
        log.info(
            "Member %s: test accuracy %.4f on the %d test images of its classes",
            title,
            test["accuracy"],
            len(subset.y_test),
        )
        records.append(
            {
                "name": member.name,
                "classes": list(member.classes),
                "generalist": general,
                "test": test,
                "test_images": len(subset.y_test),
                "history": fit.columns(),
                "epochs_run": len(fit.history),
                "best_epoch": fit.best_epoch,
                "train_seconds": fit.seconds,
            }
        )
    return records
