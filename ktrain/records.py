"""The entries of results.json: the teacher's, each student's, and the record around them."""

from __future__ import annotations

import logging
import time

import numpy as np

from ktrain.classes import format_classes
from ktrain.config import TrainConfig
from ktrain.data import DataSplits
from ktrain.engine import FitResult, Trainer
from ktrain.evaluation import evaluate_classifier, predict_logits, representation_report
from ktrain.listener import phase
from ktrain.methods.base import Method
from ktrain.report import environment
from ktrain.specialists import SpecialistEnsemble, is_generalist
from ktrain.strategy import describe, jit_enabled
from ktrain.taps import NetworkView

log = logging.getLogger("ktrain")


def teacher_record(teacher, data: DataSplits, config: TrainConfig, spec: str, neighbors: int) -> dict:
    """The teacher's validation (logged: a sanity check before training) and test scores; an ensemble
    is scored as its averaged ensemble, and each member on the test images of its own classes. A
    teacher view with features also gets its representation scores."""
    with phase("Scoring the teacher"):
        return _teacher_record(teacher, data, config, spec, neighbors)


def _teacher_record(teacher, data: DataSplits, config: TrainConfig, spec: str, neighbors: int) -> dict:
    ensemble = isinstance(teacher, SpecialistEnsemble)
    scorer = teacher.averaged if ensemble else teacher
    validation = evaluate_classifier(scorer, data.x_val, data.y_val, config.eval_batch_size)
    log.info(
        "Teacher validation accuracy %.4f (%s: %s)",
        validation["accuracy"],
        "averaged ensemble" if ensemble else "logits",
        teacher.source,
    )
    if not spec.startswith("zoo:"):  # ktrain builds these for the data; an untrained one gets its own note
        warn_if_near_chance(scorer, data, validation["accuracy"], config.eval_batch_size)
    record = {
        "name": "Teacher",
        "role": "teacher",
        "source": spec,
        "logits_from": teacher.source,
        "params": teacher.params,
        "validation": {f"val_{key}": value for key, value in validation.items()},
        "test": evaluate_classifier(scorer, data.x_test, data.y_test, config.eval_batch_size),
    }
    if getattr(teacher, "fidelity", None) is not None:
        record["precision"] = teacher.precision
        record["fidelity"] = teacher.fidelity  # to float32 targets, on the validation split
    if ensemble:
        record["members"] = member_scores(teacher, data, config.eval_batch_size)
    elif teacher.feature_key is not None:
        record["feature_layer"] = teacher.feature_source
        record["representation"] = representation_report(teacher, data, neighbors, config.eval_batch_size)
    return record


def near_chance(accuracy: float, num_classes: int) -> bool:
    """Within a tenth of the way from chance (1/classes) to perfect."""
    chance = 1.0 / num_classes
    return accuracy < chance + 0.1 * (1.0 - chance)


def warn_if_near_chance(teacher, data: DataSplits, accuracy: float, batch_size: int) -> None:
    """A teacher that scores near chance on validation teaches nothing: name the likely cause. If
    its predictions match the labels under another class order, say which."""
    if data.num_classes < 2 or not near_chance(accuracy, data.num_classes):
        return
    predicted = np.argmax(predict_logits(teacher, data.x_val, batch_size), axis=1)
    counts = np.zeros((data.num_classes, predicted.max() + 1 if len(predicted) else 1), np.int64)
    np.add.at(counts, (data.y_val, predicted), 1)
    mapped = counts.max(axis=1).sum() / max(len(predicted), 1)  # each label read as its most frequent output
    one_to_one = len(set(counts.argmax(axis=1).tolist())) >= 0.8 * data.num_classes  # not one output for all
    if one_to_one and mapped >= 0.5 and mapped >= 2 * accuracy:
        order = ", ".join(f"{label}→{output}" for label, output in enumerate(counts.argmax(axis=1)[:5]))
        cause = (
            f"its outputs match the labels under another class order ({100 * mapped:.0f} % of validation images, "
            f"label→output {order}, ...): give a teacher whose outputs follow the dataset's class order"
        )
    else:
        cause = (
            "likely causes: it expects another input range (a model that scales its own inputs, or one trained on "
            "[-1, 1]: see --input-scale), or its classes are in another order than the dataset's labels"
        )
    log.warning(
        "the teacher scores %.1f %% on validation, near chance for %d classes (%.1f %%), and will teach nothing; %s",
        100 * accuracy,
        data.num_classes,
        100 / data.num_classes,
        cause,
    )


def member_scores(ensemble: SpecialistEnsemble, data: DataSplits, batch_size: int) -> list[dict]:
    """Each member's test accuracy on the test images of the classes it covers."""
    scores = []
    for member in ensemble.members:
        subset = data.restrict(member.classes)
        test = evaluate_classifier(member.view, subset.x_test, subset.y_test, batch_size)
        log.info(
            "Teacher member %s [%s]: test accuracy %.4f on %d images of its classes",
            member.name,
            format_classes(member.classes),
            test["accuracy"],
            len(subset.y_test),
        )
        scores.append(
            {
                "name": member.name,
                "classes": list(member.classes),
                "generalist": is_generalist(member.classes, data.num_classes),
                "test": test,
                "test_images": len(subset.y_test),
            }
        )
    return scores


def student_record(
    method: Method, view: NetworkView, trainer: Trainer, fit: FitResult, data: DataSplits, spec: str
) -> dict:
    with phase(f"Testing {trainer.title}"):
        test = trainer.evaluate(data.x_test, data.y_test)
    return {
        "name": method.display_name,
        "role": "student",
        "method": method.name,
        "method_options": method.record(),
        "trains_head": method.trains_head,
        "source": spec,
        "logits_from": view.source,
        "params": view.params,
        "test": test,
        "history": fit.columns(),
        "best_epoch": fit.best_epoch,
        "epochs_run": len(fit.history),
        "stopped_early": fit.stopped_early,
        "restored_best": fit.restored_best,
        "train_seconds": fit.seconds,
    }


def add_representation(
    entry: dict, view: NetworkView, untrained: dict | None, data: DataSplits, neighbors: int, batch_size: int
) -> None:
    """kNN and mAP of a student's features, trained and untrained, when it taps any."""
    if view.feature_key is None:
        return
    entry["feature_layer"] = view.feature_source
    with phase(f"kNN and mAP of the {entry['name']} features"):
        entry["representation"] = representation_report(view, data, neighbors, batch_size)
    entry["untrained_representation"] = untrained


def results_record(
    run, config: TrainConfig, data: DataSplits, strategy, entries: list[dict], started: float, methods: list[Method]
) -> dict:
    """What results.json holds: the run's settings, data, machine, every entry and the size ratio."""
    teacher = next((entry for entry in entries if entry["role"] == "teacher"), None)
    student = next((entry for entry in entries if entry["role"] == "student"), None)
    ratio = None
    if teacher and student:
        ratio = {
            "teacher_over_student": teacher["params"] / student["params"],
            "student_over_teacher": student["params"] / teacher["params"],
        }
    described = [{"name": method.name, "options": method.record()} for method in methods]
    return {
        "command": run.command,
        "run": run.record(),
        "config": config.to_dict(),
        "method": described[0] if len(described) == 1 else None,
        "methods": described,
        "dataset": {
            "name": data.name,
            "sizes": data.sizes(),
            "num_classes": data.num_classes,
            "image_shape": list(data.image_shape),
            "fingerprint": data.fingerprint(),
        },
        "strategy": describe(strategy),
        "jit": jit_enabled(config.jit, strategy),
        **environment(),
        "results": entries,
        "ratio": ratio,
        "wall_seconds": time.perf_counter() - started,
    }
