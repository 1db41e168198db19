"""``ktrain compare`` (the seed's main job, done right) and ``ktrain demo`` (the same on digits).

Every method, and the from-scratch baseline, starts from the same initial student weights (per
seed); the teacher is evaluated beside them; the best student is chosen on the validation split;
outputs are written through temporary files. The steps, in order: the teacher (trained first if
asked), one method and seed at a time (skipped when the resume log has it), the best student, the
outputs.
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import replace
from pathlib import Path

import keras

from ktrain import models
from ktrain.checkpoint import has_checkpoint
from ktrain.classes import parse_classes
from ktrain.config import TrainConfig
from ktrain.engine import NumericalFault, Trainer
from ktrain.errors import KtrainError, counted
from ktrain.evaluation import extract_features, knn_accuracy, representation_report
from ktrain.io import json_ready, write_json_atomic, write_pickle_atomic, write_text_atomic
from ktrain.listener import Listener, Listeners, phase
from ktrain.loading import check_classes, load_student, load_teacher, student_view
from ktrain.methods.selection import MethodSpec, baseline, choose
from ktrain.outfolder import OutFolder
from ktrain.plots import comparison_plots, file_key
from ktrain.records import add_representation, results_record, student_record, teacher_record
from ktrain.report import final_results_block, seed_pickle
from ktrain.run import (
    Outcome,
    check_against_data,
    check_export,
    checkpoints,
    export_student,
    run_context,
    tensorboard_listener,
    train_members,
)
from ktrain.seeding import seed_everything
from ktrain.specialists import split_spec
from ktrain.specs import DataSpec, ModelsSpec, OutputSpec, Plan, Run, is_object, label
from ktrain.strategy import jit_enabled, needs_copies
from ktrain.taps import NetworkView, trainable_parameters
from ktrain.targets import prepare as prepare_targets

log = logging.getLogger("ktrain")

BASELINE_NAME = "Scratch student"


def run_compare(run: Run, listener: Listener | None = None) -> Outcome:
    """Run every method of ``run`` (and the baseline) on one teacher/student pair. A caller's student
    object is the starting point of every run and is never trained itself."""
    if not all(spec.cls.uses_teacher for spec in run.methods):
        raise KtrainError("compare runs transfer methods: use --baseline for the from-scratch student")
    with run_context(run, log_file=run.outputs.write_results) as (strategy, out):
        return Comparison(run, strategy, out, listener).run()


def run_demo(
    job,
    out_folder: str | None,
    epochs: int,
    seeds: int,
    seed: int,
    listener: Listener | None = None,
    overwrite: bool = False,
) -> Outcome:
    """A ``ktrain demo`` job (ktrain.demo.Job): train its zoo teacher on the built-in digits, then
    compare its methods with a from-scratch student, with the table, results files and plots. The
    demo starts again in a folder holding an earlier demo; another command's run there is refused
    unless ``overwrite``."""
    names, options = job.methods
    methods, _ = choose("compare", names, options=options)
    run = Run(
        command="demo",
        models=ModelsSpec(student=job.student, teacher=job.teacher),
        data=DataSpec("digits"),
        methods=methods,
        engine=TrainConfig(epochs=epochs, seed=seed, strategy="one"),
        outputs=OutputSpec(folder=out_folder, overwrite=overwrite or holds_demo(out_folder)),
        plan=Plan(seeds=seeds, teacher_epochs=job.teacher_epochs_for(epochs)),
    )
    return run_compare(run, listener)


def holds_demo(folder: str | None) -> bool:
    """Whether ``folder``'s results.json is a demo's (a run of another command is never replaced
    without --overwrite)."""
    if folder is None:
        return False
    for record in ("results.json", "run.json"):  # run.json: a demo stopped before its results
        try:
            if json.loads((Path(folder) / record).read_text(encoding="utf-8")).get("command") == "demo":
                return True
        except (OSError, ValueError, AttributeError):
            continue
    return False


def run_sweep(run: Run, grid, listener: Listener | None = None) -> Outcome:
    """Run a sweep (ktrain.grid): ``run.methods`` are the grid's points, ``grid`` their axes."""
    from ktrain.grid import refuse_fresh_views

    refuse_fresh_views(run)
    with run_context(run, log_file=run.outputs.write_results) as (strategy, out):
        return Sweep(run, strategy, out, listener, grid).run()


class ResumeLog:
    """Finished (method, seed) runs, recorded as they end in ``progress.json`` so --resume skips them."""

    def __init__(self, folder: Path | None, resume: bool, keep: bool):
        self.keep = keep and folder is not None  # -or writes nothing, so such a run cannot be resumed
        if folder is None:
            self.done = []
            return
        self.path = folder / "progress.json"
        self.done = self._read() if resume and self.path.is_file() else []
        if keep:
            folder.mkdir(parents=True, exist_ok=True)

    def _read(self) -> list[dict]:
        """The finished entries; a damaged log, or a damaged entry, is reported and left out: each
        run it held then resumes from its own checkpoints (a finished one ends at once)."""
        try:
            entries = json.loads(self.path.read_text(encoding="utf-8"))["entries"]
            if not isinstance(entries, list):
                raise ValueError("its entries are not a list")
        except (OSError, ValueError, KeyError, TypeError, RecursionError) as exc:
            log.warning("%s is unreadable (%s): every run resumes from its own checkpoints", self.path, exc)
            return []
        kept = []
        for position, entry in enumerate(entries):
            damage = entry_damage(entry)
            if damage is None:
                kept.append(entry)
            else:
                log.warning("%s: entry %d %s: its run resumes from its own checkpoints", self.path, position, damage)
        return kept

    def finished(self, name: str, seed: int) -> dict | None:
        return next((entry for entry in self.done if (entry["name"], entry["seed"]) == (name, seed)), None)

    def save(self, entries: list[dict]) -> None:
        if self.keep:
            write_json_atomic(self.path, {"entries": entries})


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def entry_damage(entry) -> str | None:
    """What is wrong with a finished run's entry read back from progress.json (None: nothing), for
    the fields that the table, results.json and the choice of the best student read."""
    if not isinstance(entry, dict):
        return "is not an object"
    kinds = {"name": str, "seed": int, "test": dict, "history": dict, "epochs_run": int, "best_epoch": int}
    for key, kind in kinds.items():
        if not isinstance(entry.get(key), kind) or isinstance(entry.get(key), bool):
            return f"has no valid '{key}'"
    if not _number(entry.get("best_val_accuracy")):
        return "has no valid 'best_val_accuracy'"
    accuracy = entry["test"].get("accuracy")
    if not _number(accuracy):
        return "has no valid test accuracy"
    if not all(isinstance(values, list) for values in entry["history"].values()):
        return "has a history that is not lists"
    return None


class BestStudent:
    """The student with the best validation accuracy so far, saved as soon as it leads, so only one
    student is ever kept and a resumed run knows it."""

    def __init__(self, out: OutFolder | None):
        self.out = out
        self.entry: dict | None = None

    def offer(self, entry: dict, model: keras.Model | None) -> None:
        if self.entry is not None and entry["best_val_accuracy"] <= self.entry["best_val_accuracy"]:
            return
        if self.entry is not None:
            self.entry.pop("saved_to", None)
            self.entry.pop("best_so_far", None)
        if model is not None and self.out is not None:
            entry["saved_to"] = str(models.save_model_atomic(model, self.out.output("best_model.keras")))
        entry["best_so_far"] = True
        self.entry = entry


class Comparison:
    """One ``compare`` run, step by step (see the module docstring)."""

    def __init__(self, run: Run, strategy, out: OutFolder | None, listener: Listener | None):
        self.run_spec, self.strategy, self.out, self.listener = run, strategy, out, listener
        self.config = run.engine
        self.deterministic = not jit_enabled(self.config.jit, strategy)
        self.best = BestStudent(out)
        self.entries: list[dict] = []
        self.students: list[keras.Model | None] = []  # beside self.entries

    def run(self) -> Outcome:
        started = time.perf_counter()
        run, config = self.run_spec, self.config
        seed_everything(config.seed, self.deterministic)
        log.info("Loading dataset %s...", label(run.data.dataset))
        self.data = run.data.load(config.seed)
        check_against_data(run, self.data)
        self.teacher, specs, teacher_entry = self.prepare_teacher()
        # One set of cached targets serves every method and seed.
        self.targets = prepare_targets(config, run.data.sample_views, self.teacher, self.data, self.listener)
        runs = list(specs) + ([baseline()] if run.plan.baseline else [])
        resume_log = ResumeLog(checkpoints(self.out, run.outputs), run.outputs.resume, run.outputs.write_results)
        log.info("Starting KT method(s)...")
        for seed in range(config.seed, config.seed + run.plan.seeds):
            self.run_seed(seed, runs, resume_log)
        self.report_unresolved()
        methods = [spec.build() for spec in specs]
        results = results_record(
            run, config, self.data, self.strategy, self.entries + [teacher_entry], started, methods
        )
        record = self.write_outputs(results)
        return Outcome(record, dict(enumerate(self.students)))

    # -- the teacher ---------------------------------------------------------------------------
    def prepare_teacher(self) -> tuple[object, tuple[MethodSpec, ...], dict]:
        """Load the teacher (training it first with ``--teacher-epochs``), resolve the methods that run
        with it, and score it."""
        run, data = self.run_spec, self.data
        with self.strategy.scope():
            teacher_model = models.load_for(
                split_spec(run.models.teacher)[0], role="teacher", data=data, input_scale=run.models.teacher_scale
            )
            if is_object(run.models.teacher) and (
                run.plan.teacher_epochs or needs_copies(self.strategy, self.config.precision)
            ):
                teacher_model = models.copy_model(teacher_model, "teacher")  # the caller's is never trained
        training = self.train_teacher(teacher_model) if run.plan.teacher_epochs else {}
        self.failures: list = []
        with self.strategy.scope():
            # The student's architecture (not trained) lets methods choose layers (AT's pairs); a method
            # the models cannot serve is reported and the others run.
            architecture = load_student(run.models, data, copy=True)
            teacher, specs = load_teacher(
                run.models,
                data,
                run.methods,
                explicit=run.explicit_methods,
                model=teacher_model,
                student=architecture,
                failures=self.failures,
                precision=self.config.teacher_precision,
            )
        self.student_params = trainable_parameters(architecture)
        for spec, message in self.failures:
            log.warning("%s cannot run with these models: %s", spec.cls.display_name, message)
        entry = teacher_record(teacher, data, self.config, label(run.models.teacher), run.outputs.neighbors)
        entry.update(training)
        return teacher, specs, entry

    def train_teacher(self, model: keras.Model) -> dict:
        """Train the teacher with labels (an ensemble's members each on their classes); returns the
        fields its results entry gains."""
        run, data = self.run_spec, self.data
        log.info("Training the teacher...")
        config = replace(self.config, epochs=run.plan.teacher_epochs)
        if len(model.outputs) > 1:
            members = train_members(model, data, config, self.strategy, self.listener, label(run.models.teacher))
            fields = {
                "member_training": members,
                "epochs_run": sum(m["epochs_run"] for m in members),
                "train_seconds": sum(m["train_seconds"] for m in members),
            }
        else:
            # A specialist TEACHER (FILE:0-4) learns its own classes only.
            classes = split_spec(run.models.teacher)[1]
            own = data.restrict(parse_classes(classes, data.num_classes, run.models.teacher)) if classes else data
            view = NetworkView(model, name="teacher")
            if view.num_classes != own.num_classes:
                raise KtrainError(
                    f"teacher '{label(run.models.teacher)}' outputs {counted(view.num_classes, 'class')} but is "
                    f"trained on {own.num_classes}: give a teacher with {own.num_classes} outputs"
                )
            trainer = Trainer(
                student=view,
                method=baseline().build(),
                config=config,
                strategy=self.strategy,
                listener=self.listener,
                title="Teacher",
            )
            fit = trainer.fit(own)
            fields = {
                "history": fit.columns(),
                "epochs_run": len(fit.history),
                "best_epoch": fit.best_epoch,
                "train_seconds": fit.seconds,
            }
        if run.outputs.write_results and self.out is not None:
            models.save_model_atomic(model, self.out.output("teacher.keras"))
        return fields

    def report_unresolved(self) -> None:
        """An entry (a "failed" row under the table) for each method the models could not serve."""
        for spec, message in self.failures:
            entry = {"name": spec.display_name, "role": "student", "method": spec.name, "seed": self.config.seed}
            if spec.point:
                entry["point"] = dict(spec.point)
            self.entries.append(entry | {"params": self.student_params, "failed": message})
            self.students.append(None)

    # -- methods and seeds ---------------------------------------------------------------------
    def run_seed(self, seed: int, runs: list[MethodSpec], resume_log: ResumeLog) -> None:
        """Every method once from this seed's initial student weights."""
        seed_everything(seed, self.deterministic)
        with self.strategy.scope():
            # -w must not touch the caller's; the architecture's loading said what there is to say
            initial = load_student(self.run_spec.models, self.data, copy=True, quiet=True)
        if seed == self.config.seed:
            check_classes(NetworkView(initial), self.teacher, self.run_spec.models, self.data)
        weights = initial.get_weights()
        untrained: dict[str, dict] = {}
        for spec in runs:
            name = spec.display_name if spec.cls.uses_teacher else BASELINE_NAME
            finished = resume_log.finished(name, seed)
            if finished is not None:
                log.info("%s (seed %d) was finished before: kept", name, seed)
                self.entries.append(finished)
                self.students.append(None)
                if finished.get("best_so_far"):
                    self.best.offer(finished, None)
                resume_log.save(self.entries)  # the log keeps what this run kept, too
                continue
            with self.strategy.scope():
                # Same architecture, same initial weights for every method of this seed.
                model = keras.models.clone_model(initial)
                model.set_weights(weights)
            self.entries.append(self.run_method(spec, name, seed, model, untrained))
            self.students.append(model)
            resume_log.save(self.entries)

    def run_method(self, spec: MethodSpec, name: str, seed: int, model: keras.Model, untrained: dict) -> dict:
        """Train one method from ``model`` (fresh method state); returns its results entry."""
        run, data, config = self.run_spec, self.data, self.config
        method = spec.build()
        teacher = self.teacher if method.uses_teacher else None
        if teacher is not None:
            method.attach_teacher(teacher)
        view = student_view(model, data, run.models, method)
        if view.feature_key is not None and view.feature_key not in untrained:
            with phase("kNN and mAP of the untrained student's features"):
                untrained[view.feature_key] = representation_report(
                    view, data, run.outputs.neighbors, config.eval_batch_size
                )
        title = name if run.plan.seeds == 1 else f"{name} · seed {seed}"
        log.info("Performing %s...", title)
        targets = self.targets if method.uses_teacher else None
        trainer = Trainer(
            student=view,
            teacher=teacher,
            method=method,
            config=replace(config, seed=seed),
            strategy=self.strategy,
            listener=Listeners(self.listener, self.tensorboard()),
            title=title,
            epoch_metrics=self.validation_knn(view) if view.feature_key else None,
            targets=targets,
            views=run.data.sample_views,
        )
        folder = checkpoints(self.out, run.outputs)
        folder = None if folder is None else folder / f"{spec.key}_seed{seed}"
        point = {"point": dict(spec.point)} if spec.point else {}  # a sweep's grid values, failed or not
        point["key"] = spec.key  # file names: kd, pkt+kd, kd_temperature-2
        try:
            fit = trainer.fit(
                data,
                checkpoint_dir=None if folder is None else str(folder),
                resume=run.outputs.resume and folder is not None and has_checkpoint(folder),
            )
        except NumericalFault as exc:
            log.warning("%s failed: %s", title, exc)  # the comparison goes on with the next method
            return {
                "name": name,
                "role": "student",
                "method": method.name,
                "seed": seed,
                "params": view.params,
                "failed": str(exc),
                **point,
            }
        entry = student_record(method, view, trainer, fit, data, label(run.models.student))
        entry.update(
            name=name,
            seed=seed,
            uses_features=view.feature_key is not None,
            soft_targets=targets.source if targets is not None else "online",
            **point,
        )
        add_representation(
            entry, view, untrained.get(view.feature_key), data, run.outputs.neighbors, config.eval_batch_size
        )
        entry["best_val_accuracy"] = max(fit.columns().get("val_accuracy", [0.0]))
        self.save_student(entry, model, method.trains_head)
        return entry

    def save_student(self, entry: dict, model: keras.Model, trains_head: bool) -> None:
        """``-s all`` saves every student; ``-s best`` the best on validation among those with a head."""
        mode = self.run_spec.outputs.save_students
        if mode == "all" and self.out is not None:
            suffix = f"_seed{entry['seed']}" if self.run_spec.plan.seeds > 1 else ""
            entry["saved_to"] = str(
                models.save_model_atomic(model, self.out.output(f"{file_key(entry)}{suffix}_model.keras"))
            )
            log.info("Student network has been saved as %s.", entry["saved_to"])
        elif mode == "best" and trains_head:
            self.best.offer(entry, model)

    def tensorboard(self) -> Listener | None:
        return tensorboard_listener(self.run_spec, self.out)

    def validation_knn(self, view: NetworkView):
        """kNN accuracy of the student's features on the validation split (training split as database)."""
        data, batch_size, k = self.data, self.config.eval_batch_size, self.run_spec.outputs.neighbors

        def measure() -> dict[str, float]:
            database = extract_features(view, data.x_train, batch_size)
            queries = extract_features(view, data.x_val, batch_size)
            return {"val_knn_accuracy": knn_accuracy(database, data.y_train, queries, data.y_val, k)}

        return measure

    # -- outputs -------------------------------------------------------------------------------
    def write_outputs(self, results: dict, plots: bool = True) -> dict:
        """Export, write and plot (with an out folder); returns the record as results.json holds it."""
        run, out = self.run_spec, self.out
        best = self.best.entry
        if best is not None:
            best.pop("best_so_far", None)
            if "saved_to" in best:
                log.info("The best student network (on validation) has been saved as %s.", best["saved_to"])
        results["best_student"] = best["name"] if best else None
        saved = best.get("saved_to") if best else None
        results["export"] = export_student(run.outputs, saved, out, self.data, run.models.student_scale)
        log.info("Evaluating results...")
        log.info(final_results_block(results))
        record = json_ready(results)
        if run.outputs.write_results and out is not None:
            log.info("Saving results...")
            write_json_atomic(out.output("results.json"), record)
            write_pickle_atomic(out.output("results.pkl"), seed_pickle(record))
            if plots:
                comparison_plots(record, out.output)
        log.info("Finished!")
        check_export(record)
        return record


class Sweep(Comparison):
    """A comparison whose methods are a grid's points: its outputs are the table by point (in
    results.json under ``sweep``), a flat CSV and a heatmap, instead of one curve per run."""

    def __init__(self, run: Run, strategy, out: OutFolder | None, listener: Listener | None, grid):
        super().__init__(run, strategy, out, listener)
        self.grid = grid

    def write_outputs(self, results: dict) -> dict:
        from ktrain.grid import CSV_NAME, HEATMAP_NAME, best_point, csv_text, run_rows, summarize
        from ktrain.plots import sweep_heatmap

        runs, scratch = run_rows(results["results"]), baseline().name
        summary = summarize(runs, scratch)
        best = best_point(summary)
        results["sweep"] = {
            "grid": self.grid.record(),
            "baseline": scratch,
            "points": summary,
            "best": best["name"] if best else None,
        }
        if best is not None:
            log.info("Best point on validation: %s (%.4f)", best["name"], best["val_accuracy"])
            self.keep_best_of(best["name"])
        if self.run_spec.outputs.write_results and self.out is not None:  # results.json is written last
            write_text_atomic(self.out.output(CSV_NAME), csv_text(runs, self.grid.keys))
            heatmap = self.out.output(HEATMAP_NAME)
            if sweep_heatmap(summary, self.grid.axes, heatmap) is None:
                heatmap.unlink(missing_ok=True)  # an earlier sweep's, overwritten
        return super().write_outputs(results, plots=False)

    def keep_best_of(self, point: str) -> None:
        """With ``-s best``, the saved student is the best point's run best on validation (not the
        best single run of any point), when that run was trained in this process."""
        runs = [
            (entry["best_val_accuracy"], index)
            for index, entry in enumerate(self.entries)
            if entry["name"] == point and "best_val_accuracy" in entry and self.students[index] is not None
        ]
        if not runs or self.run_spec.outputs.save_students != "best" or self.best.entry is None:
            return
        index = max(runs)[1]
        if self.entries[index] is not self.best.entry:
            self.best.entry = None
            for entry in self.entries:
                entry.pop("saved_to", None)
                entry.pop("best_so_far", None)
            self.best.offer(self.entries[index], self.students[index])
