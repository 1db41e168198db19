"""Run outputs: the out folder, the log file in the seed's format, and results.json, all written safely."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import fnmatch
import json
import logging
import os
import platform
import shutil
import statistics
import sys
import tempfile
from datetime import UTC, datetime
from pathlib import Path

from ktrain.errors import KtrainError
from ktrain.io import append_json_lines

LOG_FORMAT = "%(asctime)s [%(threadName)-12.12s] [%(levelname)-5.5s]  %(message)s"
RUN_SEPARATOR = "\n" + "-" * 93 + "\n"


class OutFolder:
    """The ``-out`` folder and the ``-res`` prefix every file name gets (``X`` → ``X_name``)."""

    def __init__(self, folder: str | os.PathLike, prefix: str = ""):
        self.path = Path(folder)
        self.prefix = f"{prefix}_" if prefix else ""
        # The first output is the commit point: the run is past every check of its input. Then the
        # hooks run once: an --overwrite run discards the run it set aside, held warnings show.
        self.commit_hooks: list = []
        self.committed = False
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            probe = tempfile.NamedTemporaryFile(dir=self.path, prefix=".ktrain-write-test-", delete=True)
            probe.close()
        except OSError as exc:
            raise KtrainError(
                f"out folder '{self.path}' is not writable ({exc.strerror or exc}): choose another with -out"
            ) from exc

    def file(self, name: str) -> Path:
        return self.path / f"{self.prefix}{name}"

    def output(self, name: str) -> Path:
        """The path of output ``name`` (a file or a folder), listed in the folder's manifest before
        it is written: ``--overwrite`` removes what the manifest lists, and nothing else. The first
        output commits the run (see ``commit_hooks``)."""
        if not self.committed:
            self.committed = True
            for hook in self.commit_hooks:
                hook()
            self.commit_hooks.clear()
        path = self.file(name)
        list_outputs(self.path, [path], self.prefix)
        return path


LOCK_NAME = ".ktrain.lock"
MANIFEST = ".ktrain-files"  # one JSON string per line: the names of the outputs ktrain wrote here
ASIDE = ".ktrain-overwritten"  # an --overwrite run's predecessor, until the new run is past its checks
# What ktrain 0.1 wrote, for folders without a manifest (after the -res prefix); models and curves
# per run also, named by the run's display name (legacy_outputs).
LEGACY_OUTPUTS = (
    "checkpoints",
    "results.json",
    "results.pkl",
    "run.json",
    "tensorboard",
    "model.keras",
    "student.keras",
    "teacher.keras",
    "best_model.keras",
    "student_*.tflite",
    "KT_Methods_Comparison_*.png",
    "sweep.csv",
    "sweep_heatmap.png",
)


def legacy_outputs() -> list[str]:
    """The name patterns of 0.1's outputs. A run's model and curves start with its display name, not
    with a wildcard, so that with no prefix they never match the files of a run with a prefix."""
    from ktrain.comparison import BASELINE_NAME
    from ktrain.methods import registered

    names = [method.display_name for method in registered()] + [BASELINE_NAME]
    per_run = [f"{name}*_model.keras" for name in names] + [f"{name}*_validation_curves.png" for name in names]
    return [*LEGACY_OUTPUTS, *per_run]


def legacy_names(folder: Path, prefix: str) -> set[str]:
    """The entries of ``folder`` that 0.1 wrote for runs with ``prefix`` (``X_`` or ""), by name,
    except any another prefix's manifest (or the unprefixed one) lists: those are never this run's."""
    patterns = [prefix + pattern for pattern in legacy_outputs()]
    others = set()
    for path in folder.glob(MANIFEST + "*"):
        other = path.name[len(MANIFEST) + 1 :]
        if path.is_file() and (other + "_" if other else "") != prefix:
            others |= manifest_names(folder, other) or set()
    return {
        entry.name
        for entry in folder.iterdir()
        if entry.name not in others and any(fnmatch.fnmatchcase(entry.name, pattern) for pattern in patterns)
    }


def manifest_path(folder: Path, prefix: str = "") -> Path:
    """The manifest of the runs with ``-res`` ``prefix`` in ``folder`` (one per prefix: an
    ``--overwrite`` of one never touches another's files)."""
    return Path(folder) / (MANIFEST + (f".{prefix.rstrip('_')}" if prefix else ""))


def manifest_names(folder: Path, prefix: str = "") -> set[str] | None:
    """The output names listed in the manifest; None for a folder without one."""
    manifest = manifest_path(folder, prefix)
    if not manifest.is_file():
        return None
    names = set()
    for line in manifest.read_text(encoding="utf-8").splitlines():
        try:
            name = json.loads(line)
        except ValueError:  # a torn last line: the entry it was adding was not written yet
            continue
        if isinstance(name, str) and name not in ("", ".", "..") and "/" not in name:
            names.add(name)
    return names


def list_outputs(folder: Path, paths: list[Path], prefix: str = "") -> None:
    """Add ``paths`` (entries of ``folder``) to the manifest of ``prefix``'s runs. The first manifest
    of a folder written by 0.1 (no manifest) starts with the 0.1 outputs it holds for ``prefix``
    (``ktrain report`` redrawing its plots, a resumed 0.1 run), so an ``--overwrite`` still finds them."""
    listed = manifest_names(folder, prefix)
    if listed is None:
        listed = set()
        paths = [*(Path(folder) / name for name in sorted(legacy_names(Path(folder), prefix))), *paths]
    new = [Path(path).name for path in paths if Path(path).name not in listed]
    if new:
        append_json_lines(manifest_path(folder, prefix), new)


def set_aside(out: OutFolder) -> Path:
    """``--overwrite``: move the earlier run's outputs (those its manifest lists; for a folder
    written by 0.1, its known output names) into a hidden folder, and nothing else. The new run
    restores them if its input is refused (:func:`restore_aside`) and discards them once it is
    past its checks (:func:`discard_aside`). The log, which every run appends to, and the lock stay."""
    listed = manifest_names(out.path, out.prefix)
    if listed is None:
        listed = legacy_names(out.path, out.prefix)
    aside = out.file(ASIDE)
    discard_aside(aside)  # a killed run's leftover: ktrain's own
    aside.mkdir()
    manifest = manifest_path(out.path, out.prefix)
    for name in sorted(listed - {LOCK_NAME, out.file("output.log").name}) + [manifest.name]:
        path = out.path / name
        if path.exists() or path.is_symlink():
            os.replace(path, aside / name)
    return aside


def restore_aside(out: OutFolder, aside: Path) -> None:
    """Put a refused ``--overwrite`` run's predecessor back as it was (once: then ``aside`` is gone)."""
    if not aside.is_dir():
        return
    for path in aside.iterdir():
        target = out.path / path.name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target)
        os.replace(path, target)
    aside.rmdir()


def discard_aside(aside: Path | None) -> None:
    if aside is not None and aside.is_dir():
        shutil.rmtree(aside)


@contextlib.contextmanager
def folder_lock(out: OutFolder):
    """Hold an exclusive lock on ``out`` for as long as the run lives, so a second run on the same
    folder is refused instead of mixing its files with this one's. The kernel drops the lock of a
    killed process, so ``--resume`` is never blocked by a dead run. The lock file stays (removing it
    would let a waiting process lock a file nobody else sees)."""
    handle = open(out.path / LOCK_NAME, "a+", encoding="utf-8")  # noqa: SIM115 (held for the run's life)
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as exc:
        if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            handle.close()
            raise KtrainError(
                f"out folder '{out.path}' cannot be locked ({exc.strerror or exc}): choose an -out on a local disk"
            ) from None
        handle.seek(0)
        holder = handle.read().strip() or "another process"
        handle.close()
        raise KtrainError(
            f"out folder '{out.path}' is in use by a running ktrain ({holder}): wait for it to end, or choose "
            "another -out"
        ) from None
    try:
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}: {' '.join(sys.argv)}"[:500] + "\n")
        handle.flush()
        yield
    finally:
        fcntl.flock(handle, fcntl.LOCK_UN)
        handle.close()


def claim_out_folder(out: OutFolder, *, resume: bool = False, overwrite: bool = False) -> Path | None:
    """Refuse an out folder that already holds a run, unless it is resumed or may be overwritten;
    with ``--overwrite``, returns where the earlier run's outputs were set aside (see :func:`set_aside`)."""
    checkpoints = out.file("checkpoints")
    results = out.file("results.json")
    holds_run = results.exists() or (checkpoints.is_dir() and any(checkpoints.iterdir()))
    if resume or not holds_run:
        return None
    if not overwrite:
        raise KtrainError(
            f"out folder '{out.path}' already holds a run ({results.name if results.exists() else checkpoints.name}): "
            "add --resume to continue it, --overwrite to start again, or choose another -out"
        )
    return set_aside(out)


def attach_log_file(out: OutFolder, debug: bool = False) -> logging.Handler:
    """Append the run's log to ``output.log`` in the seed's format; returns the handler to detach later."""
    logger = logging.getLogger("ktrain")
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    handler = _LogFile(out.file("output.log"), mode="a", encoding="utf-8")
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
