"""The ``-out`` folder of a run: its lock, its manifest of outputs, ``--overwrite``'s aside, and
the record of what the folder held before, so that a refused run leaves it exactly as it was.

The life of a run's folder:

1. The folder is locked (one run at a time), then :class:`Before` notes what it holds.
2. The claim refuses a folder holding a run, unless ``--resume`` or ``--overwrite``; an
   overwrite moves the earlier run's listed outputs aside (``.ktrain-overwritten``).
3. Each output is listed in the manifest before it is written (:meth:`OutFolder.output`).
4. The run ends. A refusal (bad input), or a Ctrl-C, before the new run has a checkpoint of its
   own puts the folder back as :class:`Before` found it, the earlier run included. Any other end
   (a finished run, a failure under way, a Ctrl-C after a checkpoint) discards the aside.

Moving files between the folder and the aside holds a Ctrl-C until the move is done
(:func:`uninterrupted`), so neither is ever left half moved by one.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import fnmatch
import json
import os
import shutil
import signal
import stat
import sys
import tempfile
import threading
from pathlib import Path

from ktrain.errors import KtrainError
from ktrain.io import append_json_lines, atomic_write, write_failed

LOCK_NAME = ".ktrain.lock"
MANIFEST = ".ktrain-files"  # one JSON string per line: the names of the outputs ktrain wrote here
ASIDE = ".ktrain-overwritten"  # an --overwrite run's predecessor, until the new run has a checkpoint
FINGERPRINT = "run.json"  # the settings that decide a run (ktrain.fingerprint writes it)
LOG = "output.log"
# What ktrain 0.1 wrote, for folders without a manifest (after the -res prefix).
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
# 0.1 named each run's model and curves by the run's display name, as it was then: a fact of that
# file format, frozen here so that ``ktrain report`` on a 0.1 folder needs no TensorFlow (the
# methods' classes import it). Later versions name files by method key, under a manifest.
LEGACY_RUN_NAMES = (
    "Knowledge Distillation",
    "Probabilistic Knowledge Transfer",
    "PKT plus Distillation",
    "Selective KD",
    "Ensemble KD",
    "Decoupled KD",
    "DIST",
    "Similarity-Preserving KD",
    "Relational KD",
    "Attention Transfer",
    "FitNets",
    "Supervised",
    "Scratch student",
)


class OutFolder:
    """The ``-out`` folder and the ``-res`` prefix every file name gets (``X`` → ``X_name``)."""

    def __init__(self, folder: str | os.PathLike, prefix: str = ""):
        self.path = Path(folder)
        self.prefix = f"{prefix}_" if prefix else ""
        # The first output is the point past every check of the run's input: the hooks run once
        # (held warnings show). What this run listed is what a refusal removes.
        self.commit_hooks: list = []
        self.committed = False
        self.listed: set[str] = set()
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
        output runs the ``commit_hooks``."""
        if not self.committed:
            self.committed = True
            for hook in self.commit_hooks:
                hook()
            self.commit_hooks.clear()
        path = self.file(name)
        list_outputs(self.path, [path], self.prefix)
        self.listed.add(path.name)
        return path


def legacy_outputs() -> list[str]:
    """The name patterns of 0.1's outputs. A run's model and curves start with its display name, not
    with a wildcard, so that with no prefix they never match the files of a run with a prefix."""
    per_run = [f"{name}*_model.keras" for name in LEGACY_RUN_NAMES]
    per_run += [f"{name}*_validation_curves.png" for name in LEGACY_RUN_NAMES]
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
    for line in manifest.read_text(encoding="utf-8", errors="replace").splitlines():
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


@contextlib.contextmanager
def uninterrupted():
    """Hold a Ctrl-C until the block is done, then deliver it: files moved between the folder and
    the aside are never left half moved. Only the main thread has signal handlers."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list = []
    previous = signal.signal(signal.SIGINT, lambda signum, frame: caught.append(frame))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
    if caught:
        if callable(previous):
            previous(signal.SIGINT, caught[0])
        raise KeyboardInterrupt


def _remove(path: Path) -> None:
    """Remove a file or folder if it is there; a name the system refuses (too long) is not there."""
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink()
    except (FileNotFoundError, NotADirectoryError):
        pass
    except OSError as exc:
        if exc.errno != errno.ENAMETOOLONG:
            raise


def holds_run(out: OutFolder) -> bool:
    checkpoints = out.file("checkpoints")
    return out.file("results.json").exists() or (checkpoints.is_dir() and any(checkpoints.iterdir()))


def set_aside(out: OutFolder) -> Path:
    """``--overwrite``: move the earlier run's outputs (those its manifest lists; for a folder
    written by 0.1, its known output names) into a hidden folder, and nothing else. The log, which
    every run appends to, and the lock stay."""
    listed = manifest_names(out.path, out.prefix)
    if listed is None:
        listed = legacy_names(out.path, out.prefix)
    aside = out.file(ASIDE)
    manifest = manifest_path(out.path, out.prefix)
    with uninterrupted():
        aside.mkdir()
        for name in sorted(listed - {LOCK_NAME, out.file(LOG).name}) + [manifest.name]:
            path = out.path / name
            if path.exists() or path.is_symlink():
                os.replace(path, aside / name)
    return aside


def restore_aside(out: OutFolder, aside: Path) -> None:
    """Put an ``--overwrite`` run's predecessor back as it was (once: then ``aside`` is gone)."""
    if not aside.is_dir():
        return
    with uninterrupted():
        for path in aside.iterdir():
            target = out.path / path.name
            _remove(target)
            os.replace(path, target)
        aside.rmdir()


def discard_aside(aside: Path | None) -> None:
    if aside is not None and aside.is_dir():
        shutil.rmtree(aside)


def recover_aside(out: OutFolder) -> None:
    """An aside left by a killed ``--overwrite`` run: that run's own checkpoints or results
    supersede it (discarded); without them, it is still the folder's run (put back)."""
    aside = out.file(ASIDE)
    if not aside.is_dir():
        return
    if holds_run(out):
        discard_aside(aside)
    else:
        restore_aside(out, aside)


def _open_lock(path: Path) -> int:
    """Open (or create) the lock file itself: never through a symlink, never a folder or a FIFO."""
    flags = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        descriptor = os.open(path, flags, 0o644)
    except OSError as exc:
        reason = "it is a symbolic link" if exc.errno == errno.ELOOP else exc.strerror or str(exc)
        raise KtrainError(f"cannot use the lock file '{path}' ({reason}): remove it, or choose another -out") from None
    if not stat.S_ISREG(os.fstat(descriptor).st_mode):
        os.close(descriptor)
        raise KtrainError(f"cannot use the lock file '{path}' (not a regular file): remove it, or choose another -out")
    return descriptor


def _holder(descriptor: int) -> str:
    with contextlib.suppress(OSError):
        text = os.pread(descriptor, 500, 0).decode("utf-8", errors="replace").strip()
        if text:
            return text
    return "another process"


@contextlib.contextmanager
def folder_lock(out: OutFolder):
    """Hold an exclusive lock on ``out`` for as long as the run lives, so a second run on the same
    folder is refused instead of mixing its files with this one's. The kernel drops the lock of a
    killed process, so ``--resume`` is never blocked by a dead run. A refused run may remove a lock
    file it created: a lock taken on a file no longer at the path is taken again on the new one.
    Yields the lock file's text from before this run wrote its own (for :class:`Before`)."""
    path = out.path / LOCK_NAME
    for _ in range(10):
        descriptor = _open_lock(path)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            holder = _holder(descriptor)
            os.close(descriptor)
            if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise KtrainError(
                    f"out folder '{out.path}' cannot be locked ({exc.strerror or exc}): choose an -out on a local disk"
                ) from None
            raise KtrainError(
                f"out folder '{out.path}' is in use by a running ktrain ({holder}): wait for it to end, or choose "
                "another -out"
            ) from None
        with contextlib.suppress(OSError):
            if os.stat(path, follow_symlinks=False).st_ino == os.fstat(descriptor).st_ino:
                break
        os.close(descriptor)  # removed or replaced meanwhile: lock the file now at the path
    else:
        raise KtrainError(f"out folder '{out.path}' keeps changing its lock file: choose another -out")
    try:
        try:
            previous = os.pread(descriptor, 4096, 0)
            os.ftruncate(descriptor, 0)
            os.pwrite(descriptor, (f"pid {os.getpid()}: {' '.join(sys.argv)}"[:500] + "\n").encode(), 0)
        except OSError as exc:
            raise write_failed(path, exc) from None
        yield previous
    finally:
        fcntl.flock(descriptor, fcntl.LOCK_UN)
        os.close(descriptor)


def check_inputs_outside(out: OutFolder, inputs: list[tuple[str, str]]) -> None:
    """Refuse a run that reads a file its outputs could replace in its own out folder (or that
    ``--overwrite`` would move aside with the earlier run): a model, weights or data file read
    there would be lost. Other files in the folder, and subfolders not ktrain's, are fine."""
    folder = out.path.resolve()
    listed = (manifest_names(out.path, out.prefix) or set()) if out.path.is_dir() else set()
    patterns = [out.prefix + pattern for pattern in (*legacy_outputs(), *_WRITTEN)]
    for what, given in inputs:
        path = Path(given).resolve()
        if not path.is_relative_to(folder) or path == folder:
            continue
        top = path.relative_to(folder).parts[0]
        if top in listed or top.startswith(".ktrain") or any(fnmatch.fnmatchcase(top, p) for p in patterns):
            raise KtrainError(
                f"the {what} '{given}' is in the out folder '{out.path}', where this run writes (or moves) its "
                "outputs: copy it elsewhere first, or choose another -out"
            )


# Names this version writes beside 0.1's (per method key, and the log).
_WRITTEN = ("*_model.keras", "*_validation_curves.png", "*.tflite", "output.log", "*.png")


def claim_out_folder(out: OutFolder, *, resume: bool = False, overwrite: bool = False) -> Path | None:
    """Refuse an out folder that already holds a run, unless it is resumed or may be overwritten;
    with ``--overwrite``, returns where the earlier run's outputs were set aside (see :func:`set_aside`)."""
    recover_aside(out)
    if resume or not holds_run(out):
        return None
    if not overwrite:
        held = out.file("results.json") if out.file("results.json").exists() else out.file("checkpoints")
        raise KtrainError(
            f"out folder '{out.path}' already holds a run ({held.name}): "
            "add --resume to continue it, --overwrite to start again, or choose another -out"
        )
    return set_aside(out)


class Before:
    """What an out folder held when a run locked it, so that a refused run can leave it exactly as
    it was: the run's own outputs go, the earlier run it set aside comes back, and the log, the
    manifest and run.json get their old contents (or go, if the run created them)."""

    def __init__(self, out: OutFolder, holder: bytes | None, created: Path | None = None):
        self.out, self.created = out, created
        self.entries = {entry.name for entry in out.path.iterdir()}
        if holder is None:  # the lock file is this run's
            self.entries.discard(LOCK_NAME)
        log = out.file(LOG)
        self.log_size = log.stat().st_size if log.is_file() else None
        self.kept = {}
        for path in (out.file(FINGERPRINT), manifest_path(out.path, out.prefix)):
            if path.is_file() and not path.is_symlink():
                self.kept[path.name] = path.read_bytes()
        self.holder = holder

    def restore(self, aside: Path | None) -> None:
        out = self.out
        manifest = manifest_path(out.path, out.prefix)
        bookkeeping = {LOCK_NAME, out.file(LOG).name, out.file(FINGERPRINT).name, manifest.name}
        with uninterrupted():
            for name in out.listed - bookkeeping:
                if aside is not None or name not in self.entries:
                    _remove(out.path / name)
            if aside is not None:
                restore_aside(out, aside)
            for name in bookkeeping - self.entries:
                _remove(out.path / name)
            for name, content in self.kept.items():
                with atomic_write(out.path / name) as temporary:
                    temporary.write_bytes(content)
            if self.log_size is not None:
                with contextlib.suppress(OSError):
                    os.truncate(out.file(LOG), self.log_size)
            if self.holder is not None:  # in place: the lock is held on this very file
                with contextlib.suppress(OSError), open(out.path / LOCK_NAME, "r+b") as lock:
                    lock.truncate()
                    lock.write(self.holder)
            if self.created is not None:
                self._remove_created()

    def _remove_created(self) -> None:
        """The out folder and the parents of it that this run created, as long as they are empty
        (something else put there meanwhile stays)."""
        for folder in (self.out.path.absolute(), *self.out.path.absolute().parents):
            if not folder.is_relative_to(self.created.absolute()):
                break
            try:
                folder.rmdir()
            except OSError:
                break
