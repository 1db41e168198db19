"""Every byte ktrain puts on disk goes through here: atomic writes (locks and fsync will join them).

A file is written to a temporary name in its own folder, then renamed over the target, so a crash
leaves the old file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import json
import os
import pickle
import tempfile
from pathlib import Path

from ktrain.errors import RunFault


@contextlib.contextmanager
def atomic_write(path: Path):
    """Yield a temporary path beside ``path``; on success give it normal permissions and rename it to
    ``path``, so a crash leaves the old file or the new one, never half of one."""
    path = Path(path)
    temporary = None
    try:
        descriptor, temporary = tempfile.mkstemp(prefix=f".{path.stem}.", suffix=path.suffix, dir=path.parent)
        os.close(descriptor)
        yield Path(temporary)
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(temporary, 0o666 & ~umask)  # mkstemp creates 0600
        os.replace(temporary, path)
    except OSError as exc:  # creating, writing or renaming alike
        raise RunFault(
            f"could not write '{path}' ({exc.strerror or exc}): free some space or choose another -out; "
            "files written before are intact"
        ) from exc
    finally:
        if temporary is not None and os.path.exists(temporary):
            os.unlink(temporary)


def json_ready(payload: dict) -> dict:
    """``payload`` exactly as results.json holds it once read back (plain lists, floats and strings)."""
    return json.loads(json.dumps(payload, default=_plain))


def write_json_atomic(path: Path, payload: dict) -> Path:
    """Write JSON through a temporary file in the same folder, then rename."""
    with atomic_write(path) as temporary:
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
