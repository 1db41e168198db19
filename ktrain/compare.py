"""``ktrain compare`` (the seed's main job, done right) and ``ktrain demo`` (the same on digits).

Every method, and the from-scratch baseline, starts from the same initial student weights (per
seed); the teacher is evaluated beside them; the best student is chosen on the validation split;
outputs are written through temporary files.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import replace

import keras

from ktrain import models
from ktrain.checkpoint import has_checkpoint
from ktrain.classes import parse_classes
from ktrain.config import TrainConfig
from ktrain.data import DataSplits, check_augment, load_dataset
from ktrain.engine import NumericalFault, Trainer, seed_everything
from ktrain.errors import KtrainError
from ktrain.evaluate import extract_features, knn_accuracy, representation_report
from ktrain.listener import Listener, Listeners
from ktrain.methods import Method, build_method, get_method
from ktrain.plots import comparison_plots
from ktrain.report import (
    OutFolder,
    attach_log_file,
    claim_out_folder,
    detach_log_file,
    final_results_block,
    seed_pickle,
    write_json_atomic,
    write_pickle_atomic,
)
from ktrain.run import (
    Job,
    check_classes,
    check_export,
    check_export_mode,
    export_student,
    load_student,
    load_teacher,
    resolve_method,
    results_record,
    student_record,
    teacher_record,
    train_members,
)
from ktrain.precision import policy as precision_policy
from ktrain.strategy import build_strategy, jit_enabled, output_folder
from ktrain.specialists import split_spec
from ktrain.targets import prepare as prepare_targets
from ktrain.taps import LogitsView

log = logging.getLogger("ktrain")

SAVE_MODES = ("all", "best", "none")
BASELINE_NAME = "Scratch student"
DEMO_PKT_WEIGHT = 3000.0


def run_compare(job: Job, listener: Listener | None = None, teacher_epochs: int | None = None) -> dict:
    """Run every method of ``job.methods`` (and the baseline) on one teacher/student pair.

    With ``teacher_epochs`` the teacher is first trained from its (zoo) initial weights, as the demo does.
    """
    config = job.config.validate()
    if job.seeds < 1:
        raise KtrainError(f"--seeds is {job.seeds}: give 1 or more")
    if job.neighbors <= 0:
        raise KtrainError(f"neighbors (-k) is {job.neighbors}: give a value greater than 0")
    if job.save_students not in SAVE_MODES:
        raise KtrainError(f"save mode (-s) is '{job.save_students}': use all, best or none")
    check_augment(job.augment)
    check_export_mode(job.export)
    if not job.methods:
        raise KtrainError("no method given: use -m kd, -m pkt and/or -m pkt+kd")
    methods = [build_method(name, job.method_options) for name in job.methods]
    _refuse_repeats([method.name for method in methods])
    if not all(method.uses_teacher for method in methods):
        raise KtrainError("compare runs transfer methods: use --baseline for the from-scratch student")
    strategy = build_strategy(config.strategy)  # first: a strategy must exist before other TF work
    out = OutFolder(output_folder(strategy, job.out_folder), job.prefix)
    claim_out_folder(out, resume=job.resume, overwrite=job.overwrite)
    handler = None if job.omit_results else attach_log_file(out, job.debug)
    try:
        with precision_policy(config.precision):
            return _compare(job, config, methods, strategy, out, listener, teacher_epochs)
    finally:
        if handler is not None:
            detach_log_file(handler)


def run_demo(out_folder: str = "out/demo", epochs: int = 60, seed: int = 0, listener: Listener | None = None,
             seeds: int = 1, selective: bool = False) -> dict:
    """The seed's job on the built-in digits: train a zoo teacher, then compare KD, PKT, PKT+KD and a
    from-scratch student, with the table, results files and plots.

    PKT plus KD uses ``-pktw 3000``: with the seed's weight 1 the PKT part (about 1e-3 on the
    reference scale) is negligible and PKT plus KD would repeat KD (RepDistiller uses 30000).

    With ``selective`` the teacher is ``zoo:pyramid_ensemble`` (a generalist and two specialists, each
    trained on its own classes) and the students learn by ensemble KD and selective KD.
    """
    teacher = "zoo:pyramid_ensemble" if selective else "zoo:digits_teacher"
    methods = ("kd", "selective-kd") if selective else ("kd", "pkt", "pkt+kd")
    job = Job(command="demo", teacher=teacher, student="zoo:digits_student", dataset="digits",
              config=TrainConfig(epochs=epochs, seed=seed, strategy="one"), out_folder=out_folder, seeds=seeds,
              methods=methods, method_options={"pkt_weight": DEMO_PKT_WEIGHT}, overwrite=True)
    return run_compare(job, listener, teacher_epochs=epochs)


def _compare(job: Job, config: TrainConfig, methods: list[Method], strategy, out: OutFolder,
             listener: Listener | None, teacher_epochs: int | None) -> dict:
    started = time.perf_counter()
    deterministic = not jit_enabled(config.jit, strategy)
    seed_everything(config.seed, deterministic)
    log.info("Loading dataset %s...", job.dataset)
    data = load_dataset(job.dataset, data_dir=job.data_dir, val_split=job.val_split, seed=config.seed)
    uses_features = any(method.uses_features for method in methods)
    teacher_path, teacher_classes = split_spec(job.teacher)
    with strategy.scope():
        teacher_model = models.load_for(teacher_path, role="teacher", data=data)
    teacher_fit = teacher_members = None
    if teacher_epochs:
        log.info("Training the teacher...")
        teacher_config = replace(config, epochs=teacher_epochs)
        if len(teacher_model.outputs) > 1:
            teacher_members = train_members(teacher_model, data, teacher_config, strategy, listener, job.teacher)
        else:
            # A specialist TEACHER (FILE:0-4) learns its own classes only.
            own = data.restrict(parse_classes(teacher_classes, data.num_classes, job.teacher)) if teacher_classes else data
            view = LogitsView(teacher_model, name="teacher")
            if view.num_classes != own.num_classes:
                raise KtrainError(f"teacher '{job.teacher}' outputs {view.num_classes} classes but is trained on "
                                  f"{own.num_classes}: give a teacher with {own.num_classes} outputs")
            trainer = Trainer(student=view, method=get_method("supervised")(), config=teacher_config,
                              strategy=strategy, listener=listener, title="Teacher")
            teacher_fit = trainer.fit(own)
        if not job.omit_results:
            models.save_model_atomic(teacher_model, out.file("teacher.keras"))
    with strategy.scope():
        teacher = load_teacher(job, data, ensemble=any(method.uses_ensemble for method in methods),
                               features=uses_features, model=teacher_model)
        methods = [resolve_method(method, teacher, job) for method in methods]
    _refuse_repeats([method.name for method in methods])
    teacher_entry = teacher_record(teacher, data, config, job.teacher)
    if teacher_fit is not None:
        teacher_entry.update(history=teacher_fit.columns(), epochs_run=len(teacher_fit.history),
                             best_epoch=teacher_fit.best_epoch, train_seconds=teacher_fit.seconds)
    if teacher_members is not None:
        teacher_entry.update(member_training=teacher_members,
                             epochs_run=sum(member["epochs_run"] for member in teacher_members),
                             train_seconds=sum(member["train_seconds"] for member in teacher_members))
    if uses_features:
        teacher_entry["feature_layer"] = teacher.feature_source
        teacher_entry["representation"] = representation_report(teacher, data, job.neighbors, config.eval_batch_size)

    # One set of cached targets serves every method and seed.
    targets = prepare_targets(job.targets, job.augment, teacher, data, config.eval_batch_size, job.cache_dir)
    runs = list(methods) + ([get_method("supervised")()] if job.baseline else [])
    # Finished (method, seed) runs are recorded as they end, so --resume skips them.
    checkpoints = out.file("checkpoints")
    progress_path = checkpoints / "progress.json"
    done = json.loads(progress_path.read_text())["entries"] if job.resume and progress_path.is_file() else []
    keep_progress = not job.omit_results  # -or writes nothing, so such a run cannot be resumed
    if keep_progress:
        checkpoints.mkdir(parents=True, exist_ok=True)
    entries, best = [], None
    log.info("Starting KT method(s)...")
    for seed in range(config.seed, config.seed + job.seeds):
        seed_everything(seed, deterministic)
        with strategy.scope():
            initial_student = load_student(job, data)
        if seed == config.seed:
            check_classes(LogitsView(initial_student), teacher, job, data)
        initial_weights = initial_student.get_weights()
        untrained = None
        for method in runs:
            name = BASELINE_NAME if not method.uses_teacher else method.display_name
            finished = next((e for e in done if (e["name"], e["seed"]) == (name, seed)), None)
            if finished is not None:
                log.info("%s (seed %d) was finished before: kept", name, seed)
                entries.append(finished)
                if finished.get("best_so_far"):
                    best = (finished, None)
                continue
            with strategy.scope():
                # Same architecture, same initial weights for every method of this seed.
                model = keras.models.clone_model(initial_student)
                model.set_weights(initial_weights)
            view = LogitsView(model, data.x_val, name=f"student '{job.student}'", features=method.uses_features,
                              feature_layer=job.student_layer)
            if method.uses_features and untrained is None:
                untrained = representation_report(view, data, job.neighbors, config.eval_batch_size)
            tensorboard = None
            if job.tensorboard:
                from ktrain.tensorboard import TensorBoardListener

                tensorboard = TensorBoardListener(out.path / f"{out.prefix}tensorboard")
            title = name if job.seeds == 1 else f"{name} · seed {seed}"
            log.info("Performing %s...", title)
            trainer = Trainer(
                student=view, teacher=teacher if method.uses_teacher else None, method=method,
                config=replace(config, seed=seed), strategy=strategy, listener=Listeners(listener, tensorboard),
                title=title, epoch_metrics=_validation_knn(view, data, job, config) if method.uses_features else None,
                targets=targets if method.uses_teacher else None, augment=job.augment,
            )
            run_checkpoints = checkpoints / f"{method.name}_seed{seed}"
            try:
                fit = trainer.fit(data, checkpoint_dir=str(run_checkpoints) if keep_progress else None,
                                  resume=job.resume and has_checkpoint(run_checkpoints))
            except NumericalFault as exc:
                log.warning("%s failed: %s", title, exc)  # the comparison goes on with the next method
                entries.append({"name": name, "role": "student", "method": method.name, "seed": seed,
                                "params": view.params, "failed": str(exc)})
                if keep_progress:
                    write_json_atomic(progress_path, {"entries": entries})
                continue
            entry = student_record(method, view, trainer, fit, data, job.student)
            entry.update(name=name, seed=seed, uses_features=method.uses_features,
                         soft_targets=targets.source if targets is not None and method.uses_teacher else "online")
            if method.uses_features:
                entry["feature_layer"] = view.feature_source
                entry["representation"] = representation_report(view, data, job.neighbors, config.eval_batch_size)
                entry["untrained_representation"] = untrained
            entry["best_val_accuracy"] = max(fit.columns().get("val_accuracy", [0.0]))
            if job.save_students == "all":
                suffix = f"_seed{seed}" if job.seeds > 1 else ""
                entry["saved_to"] = str(models.save_model_atomic(model, out.file(f"{name}{suffix}_model.keras")))
                log.info("Student network has been saved as %s.", entry["saved_to"])
            elif job.save_students == "best" and method.trains_head and (
                best is None or entry["best_val_accuracy"] > best[0]["best_val_accuracy"]
            ):
                # Saved as soon as it leads, so only one student is ever kept and a resumed run knows it.
                if best is not None:
                    best[0].pop("saved_to", None)
                    best[0].pop("best_so_far", None)
                entry["saved_to"] = str(models.save_model_atomic(model, out.file("best_model.keras")))
                entry["best_so_far"] = True
                best = (entry, model)
            entries.append(entry)
            if keep_progress:
                write_json_atomic(progress_path, {"entries": entries})
    if best is not None:
        best[0].pop("best_so_far", None)
        log.info("The best student network (on validation) has been saved as %s.", best[0]["saved_to"])
    results = results_record(job.command, config, data, strategy, entries + [teacher_entry], started, job=job,
                       methods=methods)
    results["best_student"] = best[0]["name"] if best else None
    results["export"] = export_student(job, best[0]["saved_to"] if best else None, out, data)
    log.info("Evaluating results...")
    log.info(final_results_block(results))
    if not job.omit_results:
        log.info("Saving results...")
        write_json_atomic(out.file("results.json"), results)
        write_pickle_atomic(out.file("results.pkl"), seed_pickle(results))
        comparison_plots(results, out.path, out.prefix)
    log.info("Finished!")
    if results["export"]:
        check_export(results["export"])
    return results


def _refuse_repeats(names: list[str]) -> None:
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise KtrainError(f"method '{repeated[0]}' was given twice (seed names are aliases, and with an ensemble "
                          "teacher kd is ensemble-kd): give each method once")


def _validation_knn(view: LogitsView, data: DataSplits, job: Job, config: TrainConfig):
    """kNN accuracy of the student's features on the validation split (training split as database)."""

    def measure() -> dict[str, float]:
        database = extract_features(view, data.x_train, config.eval_batch_size)
        queries = extract_features(view, data.x_val, config.eval_batch_size)
        return {"val_knn_accuracy": knn_accuracy(database, data.y_train, queries, data.y_val, job.neighbors)}

    return measure
