"""Run outputs: the log file in the seed's format, results.json's summaries and the seed's results.pkl
(the out folder itself is :mod:`ktrain.outfolder`)."""

from __future__ import annotations

import logging
import os
import platform
import statistics
import sys
from datetime import UTC, datetime

from ktrain.outfolder import LOG, OutFolder

LOG_FORMAT = "%(asctime)s [%(threadName)-12.12s] [%(levelname)-5.5s]  %(message)s"
RUN_SEPARATOR = "\n" + "-" * 93 + "\n"


def attach_log_file(out: OutFolder, debug: bool = False) -> logging.Handler:
    """Append the run's log to ``output.log`` in the seed's format; returns the handler to detach later."""
    logger = logging.getLogger("ktrain")
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    handler = _LogFile(out.file(LOG), mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logger.addHandler(handler)
    # While a run logs to its file, keep its records off the root logger (TensorFlow gives it a
    # console handler): the terminal shows the Rich display, and warnings, one line each.
    handler.console = HeldWarnings()
    out.commit_hooks.append(handler.console.show_held)
    logger.addHandler(handler.console)
    logger.propagate = False
    logger.info(RUN_SEPARATOR)
    return handler


class HeldWarnings(logging.StreamHandler):
    """The run's warnings on stderr, one line each. Until the run names its first output (past
    every check of its input) they are held: a refused run's stderr is its one error line."""

    def __init__(self):
        super().__init__(sys.stderr)
        self.setLevel(logging.WARNING)
        self.setFormatter(logging.Formatter("warning: %(message)s"))
        self.held: list[logging.LogRecord] | None = []

    def emit(self, record: logging.LogRecord) -> None:
        if self.held is not None:
            self.held.append(record)
        else:
            super().emit(record)

    def show_held(self) -> None:  # not release(): logging.Handler's lock method has that name
        held, self.held = self.held or [], None
        for record in held:
            super().emit(record)


class _LogFile(logging.FileHandler):
    """``output.log``. A write error (a full disk) stops the log, not the run, and says so once on
    stderr; the next file the run writes reports the disk in one line if it fails too."""

    stopped = False
    console: logging.Handler | None = None  # the run's warnings on stderr, attached and detached with it

    def emit(self, record: logging.LogRecord) -> None:
        if not self.stopped:
            super().emit(record)

    def handleError(self, record: logging.LogRecord) -> None:
        error = sys.exc_info()[1]
        if not isinstance(error, OSError):
            super().handleError(record)
        elif not self.stopped:
            self.stopped = True
            sys.stderr.write(f"warning: could not write '{self.baseFilename}' ({error.strerror}): the log stops here\n")

    def close(self) -> None:
        try:
            super().close()
        except OSError:  # flushing the last records failed: already reported
            self.stream = None


def detach_log_file(handler: logging.Handler, refused: bool = False) -> None:
    """Detach the run's log; its held warnings are printed now, unless the run was ``refused``."""
    logger = logging.getLogger("ktrain")
    logger.removeHandler(handler)
    if getattr(handler, "console", None) is not None:
        logger.removeHandler(handler.console)
        if not refused:
            handler.console.show_held()
    handler.close()
    logger.propagate = True


def seed_pickle(results: dict) -> list[dict]:
    """The seed's ``results.pkl`` structure: ``[{method, history, evaluation}, ...]``, teacher last,
    each with the ``seed`` it ran with too.

    ``evaluation`` is ``[loss, accuracy, crossentropy]`` on the test split, where ``loss`` is the
    model's own objective (the method's loss; cross-entropy for the teacher and the baseline), not
    the seed's MSE.
    """
    records = []
    students = [entry for entry in results["results"] if entry["role"] == "student"]
    several_seeds = len({entry.get("seed") for entry in students}) > 1
    for entry in students + [entry for entry in results["results"] if entry["role"] == "teacher"]:
        if "failed" in entry:
            continue
        name = entry["name"] + (f" (seed {entry['seed']})" if several_seeds and entry["role"] == "student" else "")
        test = entry["test"]
        records.append(
            {
                "method": name,
                "history": {key: [float(v) for v in values] for key, values in entry["history"].items()}
                if entry.get("history")
                else None,
                "evaluation": [
                    float(test.get("loss", test["crossentropy"])),
                    float(test["accuracy"]),
                    float(test["crossentropy"]),
                ],
                "seed": entry.get("seed"),  # beside the seed's three keys (None for the teacher)
            }
        )
    return records


def mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample standard deviation over seeds (0 for one run), as every table reports them."""
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def summarize(results: dict) -> list[dict]:
    """One row per model name, in run order: mean and standard deviation over seeds of each metric."""
    groups: dict[str, list[dict]] = {}
    for entry in results["results"]:
        groups.setdefault(entry["name"], []).append(entry)
    teacher = next((entry for entry in results["results"] if entry["role"] == "teacher"), None)
    rows = []
    for name, group in groups.items():
        entries = [entry for entry in group if "failed" not in entry]
        row = {
            "name": name,
            "role": group[0]["role"],
            "method": group[0].get("method"),
            "runs": len(entries),
            "params": group[0]["params"],
        }
        failures = [entry["failed"] for entry in group if "failed" in entry]
        if failures:
            row["failed"] = failures[0]
            row["failures"] = len(failures)
        metrics = {
            "accuracy": [e["test"]["accuracy"] for e in entries],
            "crossentropy": [e["test"]["crossentropy"] for e in entries],
            "objective": [e["test"].get("loss", e["test"]["crossentropy"]) for e in entries],
            "knn_accuracy": [e["representation"]["knn_accuracy_cosine"] for e in entries if e.get("representation")],
            "map": [e["representation"]["map"] for e in entries if e.get("representation")],
            "untrained_knn_accuracy": [
                e["untrained_representation"]["knn_accuracy_cosine"]
                for e in entries
                if e.get("untrained_representation")
            ],
            "untrained_map": [
                e["untrained_representation"]["map"] for e in entries if e.get("untrained_representation")
            ],
            "epochs": [e["epochs_run"] for e in entries if "epochs_run" in e],
            "seconds": [e["train_seconds"] for e in entries if "train_seconds" in e],
        }
        for key, values in metrics.items():
            if values:
                row[key], row[f"{key}_std"] = mean_std(values)
        if teacher is not None and row["role"] == "student":
            row["teacher_over_student"] = teacher["params"] / row["params"]
        rows.append(row)
    return rows


def final_results_block(results: dict) -> str:
    """The seed's "Final results" log block (4 significant digits), means over seeds, teacher last."""
    rows = summarize(results)
    teacher = next((row for row in rows if row["role"] == "teacher"), None)
    student = next((row for row in rows if row["role"] == "student"), None)
    lines = ["Final results: "]
    if teacher and student:
        ratio = teacher["params"] / student["params"]
        lines += [
            "Parameters:",
            f"    Teacher params: {teacher['params']}",
            f"    Student params: {student['params']}",
            f"    Ratio: T/S={ratio:.4} S/T={1 / ratio:.4}",
        ]
    for row in [r for r in rows if r["role"] != "teacher"] + ([teacher] if teacher else []):
        lines.append(f"{row['name']}: ")
        if row["runs"] == 0:
            lines.append(f"    failed: {row['failed']}")
            continue
        lines.append(f"    loss: {row['objective']:.4}")
        lines.append(f"    categorical_accuracy: {row['accuracy']:.4}")
        lines.append(f"    categorical_crossentropy: {row['crossentropy']:.4}")
        if "knn_accuracy" in row:
            lines.append(f"    knn_accuracy: {row['knn_accuracy']:.4}")
            lines.append(f"    map: {row['map']:.4}")
        if row["runs"] > 1:
            lines.append(f"    (mean of {row['runs']} seeds; accuracy std {row['accuracy_std']:.4})")
    return "\n".join(lines) + "\n"


def environment() -> dict:
    """Library versions and machine, so a result can be traced to what produced it."""
    import keras
    import numpy
    import tensorflow as tf

    import ktrain

    return {
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "versions": {
            "ktrain": ktrain.__version__,
            "python": sys.version.split()[0],
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "numpy": numpy.__version__,
        },
        "machine": {
            "platform": platform.platform(),
            "processor": platform.machine(),
            "cpu_count": os.cpu_count(),
            "gpus": [device.name for device in tf.config.list_physical_devices("GPU")],
        },
    }
