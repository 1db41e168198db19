"""Run outputs: the out folder, the log file in the seed's format, and results.json, all written safely."""

from __future__ import annotations

import json
import logging
import os
import platform
import sys
import tempfile
from datetime import datetime, timezone
from pathlib import Path

from ktrain.errors import KtrainError

LOG_FORMAT = "%(asctime)s [%(threadName)-12.12s] [%(levelname)-5.5s]  %(message)s"
RUN_SEPARATOR = "\n" + "-" * 93 + "\n"


class OutFolder:
    """The ``-out`` folder and the ``-res`` prefix every file name gets (``X`` → ``X_name``)."""

    def __init__(self, folder: str | os.PathLike, prefix: str = ""):
        self.path = Path(folder)
        self.prefix = f"{prefix}_" if prefix else ""
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


def attach_log_file(out: OutFolder, debug: bool = False) -> logging.Handler:
    """Append the run's log to ``output.log`` in the seed's format; returns the handler to detach later."""
    logger = logging.getLogger("ktrain")
    logger.setLevel(logging.DEBUG if debug else logging.INFO)
    handler = logging.FileHandler(out.file("output.log"), mode="a", encoding="utf-8")
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    logger.addHandler(handler)
    logger.info(RUN_SEPARATOR)
    return handler


def detach_log_file(handler: logging.Handler) -> None:
    logging.getLogger("ktrain").removeHandler(handler)
    handler.close()


def write_json_atomic(path: Path, payload: dict) -> Path:
    """Write JSON through a temporary file in the same folder, then rename: never a half-written file."""
    path = Path(path)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            json.dump(payload, handle, indent=2, default=_plain)
            handle.write("\n")
        os.replace(temporary, path)
    finally:
        if os.path.exists(temporary):
            os.unlink(temporary)
    return path


def environment() -> dict:
    """Library versions and machine, so a result can be traced to what produced it."""
    import keras
    import numpy
    import tensorflow as tf

    import ktrain

    return {
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
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


def _plain(value):
    if hasattr(value, "item"):
        return value.item()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"cannot write {type(value).__name__} to JSON")
