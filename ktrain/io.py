"""Every byte ktrain puts on disk goes through here: atomic, durable writes.

A file is written to a temporary name in its own folder, flushed to the disk, then renamed over the
target, and the folder is flushed too; so a crash or a power cut leaves the old file or the new one,
never half of one, and a file written before another is on disk before it.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import tempfile
from pathlib import Path

from ktrain.errors import KtrainError, RunFault


@contextlib.contextmanager
def atomic_write(path: Path, fix: str = "choose another -out"):
    """Yield a temporary path beside ``path``; on success give it normal permissions and rename it to
    ``path``, so a crash leaves the old file or the new one, never half of one. A failure is one
    line (``fix`` says where else to write)."""
    path = Path(path)
    temporary = None
    try:
        descriptor, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
        os.close(descriptor)
        yield Path(temporary)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp creates 0600
        fsync(temporary)
        os.replace(temporary, path)
        fsync(path.parent)
    except OSError as exc:  # creating, writing or renaming alike
        raise write_failed(path, exc, fix) from exc
    finally:
        if temporary is not None and os.path.exists(temporary):
            os.unlink(temporary)


def _last_byte(path) -> bytes:
    with open(path, "rb") as stream:
        stream.seek(0, os.SEEK_END)
        if stream.tell() == 0:
            return b""
        stream.seek(-1, os.SEEK_END)
        return stream.read(1)


def write_failed(path: Path, exc: OSError, fix: str = "choose another -out") -> RunFault:
    """The one line for a file that could not be written; ``fix`` names where else to write."""
    return RunFault(
        f"could not write '{path}' ({exc.strerror or exc}): free some space or {fix}; files written before are intact"
    )


def fsync(path: Path) -> None:
    """Flush a written file, or a folder's entries (new and renamed names), to the disk."""
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def append_json_lines(path: Path, records: list[dict], *, fresh: bool = False) -> None:
    """Append one JSON line per record to ``path`` (or start it afresh) and flush it to the disk.

    For logs that only grow: a crash can leave a torn last line, so readers count lines from a
    record written afterwards, never from the file itself."""
    try:
        torn = not fresh and os.path.exists(path) and _last_byte(path) not in (b"", b"\n")
        with open(path, "w" if fresh else "a", encoding="utf-8") as stream:
            if torn:  # a crash cut the last line: end it, so the new records stay whole
                stream.write("\n")
            stream.writelines(json.dumps(record, default=_plain) + "\n" for record in records)
            stream.flush()
            os.fsync(stream.fileno())
    except OSError as exc:
        raise write_failed(path, exc) from exc


def json_ready(payload: dict) -> dict:
    """``payload`` exactly as results.json holds it once read back (plain lists, floats and strings)."""
    return json.loads(json.dumps(payload, default=_plain))


def write_json_atomic(path: Path, payload: dict, fix: str = "choose another -out") -> Path:
    """Write JSON through a temporary file in the same folder, then rename."""
    with atomic_write(path, fix) as temporary:
        temporary.write_text(json.dumps(payload, indent=2, default=_plain) + "\n", encoding="utf-8")
    return Path(path)


def write_text_atomic(path: Path, text: str) -> Path:
    """Write ``text`` (UTF-8) through a temporary file in the same folder, then rename."""
    with atomic_write(path) as temporary:
        temporary.write_text(text, encoding="utf-8")
    return Path(path)


def write_pickle_atomic(path: Path, payload) -> Path:
    """Pickle ``payload`` (plain Python types) through a temporary file, then rename."""
    with atomic_write(path) as temporary:
        temporary.write_bytes(pickle.dumps(payload, protocol=pickle.HIGHEST_PROTOCOL))
    return Path(path)


def _plain(value):
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")


def check_output_file(path: Path, what: str) -> None:
    """Refuse, before any work, an output file path that cannot be written: a folder at the path,
    or a file where one of its folders should be (``what`` names the argument, for the fix)."""
    path = Path(path)
    if path.is_dir():
        raise KtrainError(f"{what} '{path}' is a folder: give a file name, such as {path / 'student.tflite'}")
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise KtrainError(f"{what} '{path}' is inside '{parent}', which is a file: give another path")
            return
