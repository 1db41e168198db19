"""``--tensorboard``: each training run's per-epoch values as TensorBoard scalars.

Written with TensorFlow's core ``tf.summary.write`` and the scalars plugin's metadata, so ktrain
needs no ``tensorboard`` package to write them (only to view them: ``pip install tensorboard``).
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Callable
from pathlib import Path

import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from ktrain.errors import RunFault, first_line
from ktrain.listener import Listener

SCALAR = summary_pb2.SummaryMetadata(plugin_data=summary_pb2.SummaryMetadata.PluginData(plugin_name="scalars"))


class TensorBoardListener(Listener):
    """Writes every number of each epoch's logs under ``folder/<run title>/``."""

    def __init__(self, folder: Path | Callable[[], Path]):
        """``folder``, or a function that names it as an output of the run when it is first needed
        (the first training run: past the checks of the run's input)."""
        self._folder = folder
        self.folder = None if callable(folder) else Path(folder)
        self.writer = None

    def on_train_begin(self, title, epochs, steps_per_epoch):
        run = re.sub(r"[^A-Za-z0-9._+-]+", "_", title).strip("_")
        if self.folder is None:
            self.folder = Path(self._folder())
        with self._writing():
            self.writer = tf.summary.create_file_writer(str(self.folder / run))

    def on_epoch_end(self, epoch, logs):
        with self._writing(), self.writer.as_default():
            for name, value in logs.items():
                if name != "epoch" and isinstance(value, (int, float)):
                    tf.summary.write(name, tf.constant(value, tf.float32), step=epoch, metadata=SCALAR)

    def on_train_end(self):
        if self.writer is not None:
            writer, self.writer = self.writer, None
            with self._writing():
                writer.flush()
                writer.close()

    @contextlib.contextmanager
    def _writing(self):
        """TensorFlow's summary writer raises its own errors (a full disk, a file where the folder
        goes): one line, like every other write."""
        try:
            yield
        except (OSError, tf.errors.OpError) as exc:
            raise RunFault(
                f"could not write TensorBoard events in '{self.folder}' ({first_line(exc)}): free some space, "
                "choose another -out, or drop --tensorboard"
            ) from None
