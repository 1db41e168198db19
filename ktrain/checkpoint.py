"""Per-epoch checkpoints of everything that decides what a run does next, and their restore.

TensorFlow's ``CheckpointManager`` keeps the variables (student, the method's own state, optimizer
slots and iteration count, the base learning rate); a JSON sidecar written atomically after it keeps the rest (epoch,
controllers, history, an epoch in progress after Ctrl-C) and an ``.npz`` the best-weights copy.
A checkpoint counts only once its sidecar exists, so a kill at any moment leaves the previous
checkpoint usable; an unreadable one is skipped for the one before it.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import numpy as np
import tensorflow as tf

from ktrain.errors import KtrainError, RunFault
from ktrain.io import atomic_write, write_json_atomic

log = logging.getLogger("ktrain")

KEEP = 3


def has_checkpoint(folder: Path) -> bool:
    """Whether ``folder`` holds at least one complete checkpoint (one whose state file was written)."""
    return Path(folder).is_dir() and any(Path(folder).glob("*.state.json"))


class RunCheckpoint:
    """Checkpoints of one training run in ``folder`` (create inside the strategy's scope)."""

    def __init__(self, folder: Path, model, optimizer, base_lr: tf.Variable, method_state: list | None = None):
        self.folder = Path(folder)
        # Dropout's random state lives in Keras seed generators, which a model checkpoint leaves out.
        seed_states = [
            generator.state.value
            for layer in model._flatten_layers()
            for generator in getattr(layer, "_seed_generators", [])
        ]
        self.checkpoint = tf.train.Checkpoint(
            model=model,
            optimizer=optimizer,
            base_lr=base_lr,
            seed_states=seed_states,
            method_state=list(method_state or []),
        )
        self.manager = tf.train.CheckpointManager(self.checkpoint, str(self.folder), max_to_keep=KEEP)

    def save(self, state: dict, best_weights: list[np.ndarray] | None) -> str:
        try:
            path = self.manager.save()
            if best_weights is not None:
                with atomic_write(Path(f"{path}.best.npz")) as temporary:
                    np.savez(temporary, *best_weights)
            write_json_atomic(Path(f"{path}.state.json"), state)  # last: it makes the checkpoint count
        except (OSError, tf.errors.OpError) as exc:  # TensorFlow's writer raises its own errors (a full disk)
            for partial in self.folder.glob("*_temp*"):  # what TensorFlow's writer leaves when it fails
                if partial.is_dir():
                    shutil.rmtree(partial, ignore_errors=True)
                else:
                    partial.unlink(missing_ok=True)
            reason = getattr(exc, "strerror", None) or getattr(exc, "message", None) or str(exc)
            reason = (reason.splitlines() or [type(exc).__name__])[0]
            raise RunFault(
                f"could not write a checkpoint in '{self.folder}' ({reason}): "
                "free some space or choose another -out; earlier checkpoints are intact"
            ) from exc
        return path

    def restore(self) -> tuple[dict, list[np.ndarray] | None]:
        """Restore the newest readable checkpoint; returns its state and best-weights copy."""
        for path in reversed(self.manager.checkpoints):
            sidecar = Path(f"{path}.state.json")
            if not sidecar.is_file():
                continue
            try:
                state = json.loads(sidecar.read_text(encoding="utf-8"))
                self.checkpoint.restore(path).assert_existing_objects_matched()
                best_path = Path(f"{path}.best.npz")
                best = None
                if best_path.is_file():
                    with np.load(best_path) as archive:
                        best = [archive[f"arr_{index}"] for index in range(len(archive.files))]
            except Exception as exc:  # a damaged checkpoint raises many kinds of errors
                log.warning("checkpoint %s is unreadable (%s): trying the one before", path, exc)
                continue
            log.info("Resuming from %s (epoch %d done)", path, state["epoch"])
            return state, best
        raise KtrainError(
            f"no readable checkpoint in '{self.folder}': run again without --resume (or with --overwrite)"
        )
