"""Per-epoch checkpoints of everything that decides what a run does next, and their restore.

A checkpoint ``ckpt-N`` is three things, written in this order:

- TensorFlow's variable files (student, the method's own state, optimizer slots and iteration
  count, the base learning rate, dropout's seed states), flushed to the disk;
- new epochs appended to ``history.jsonl`` and, when the best weights changed, ``ckpt-N.best.npz``;
- ``ckpt-N.state.json`` (epoch, controllers, how many history lines count, which best-weights file
  is current, an epoch cut short by Ctrl-C). The state file is written last, so it makes the
  checkpoint count: a kill at any moment leaves the previous checkpoint usable, and an unreadable
  one is skipped for the one before it.

Only the newest ``KEEP`` complete checkpoints stay, with the best-weights files they name, and the
history is stored once: disk use does not grow with the number of epochs beyond the history itself.
"""

from __future__ import annotations

import json
import logging
import re
import shutil
from pathlib import Path

import numpy as np
import tensorflow as tf

from ktrain.errors import KtrainError, RunFault, first_line
from ktrain.io import append_json_lines, atomic_write, fsync, write_json_atomic

log = logging.getLogger("ktrain")

KEEP = 3
HISTORY = "history.jsonl"
_NAME = re.compile(r"^ckpt-(\d+)(?:[._]|$)")


def _number(path: Path) -> int | None:
    match = _NAME.match(path.name)
    return int(match.group(1)) if match else None


def _complete(folder: Path) -> list[int]:
    """Numbers of the checkpoints in ``folder`` whose state file was written, oldest first."""
    return sorted(_number(path) for path in Path(folder).glob("ckpt-*.state.json"))


def _check_history(history, epochs: int) -> None:
    """A checkpoint's history is one record per epoch done, in order (else it is not the run's)."""
    if not isinstance(history, list) or len(history) != epochs:
        count = len(history) if isinstance(history, list) else "no"
        raise ValueError(f"its history holds {count} epochs, not the {epochs} it says are done")
    for position, record in enumerate(history, start=1):
        if not isinstance(record, dict) or record.get("epoch") != position:
            raise ValueError(f"its history's line {position} is not epoch {position}'s record")


def has_checkpoint(folder: Path, recursive: bool = False) -> bool:
    """Whether ``folder`` (or, ``recursive``, any folder in it: a comparison's runs) holds at least
    one complete checkpoint (one whose state file was written)."""
    if not Path(folder).is_dir():
        return False
    return any(Path(folder).rglob("ckpt-*.state.json")) if recursive else bool(_complete(folder))


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
        # Restoring creates the checkpoint's save counter, which ``write`` saves only if it exists;
        # creating it now keeps every restored object matched.
        self.checkpoint.save_counter  # noqa: B018
        self._history_lines = 0  # lines of history.jsonl the checkpoints so far account for
        self._best: tuple[list | None, str | None] = (None, None)  # the best weights on disk, and their file

    def save(self, state: dict, best_weights: list[np.ndarray] | None) -> str:
        """Write checkpoint ``ckpt-N`` from the engine's ``state`` (its ``history`` included) and
        the current best weights (the same list object as last time means unchanged)."""
        number = None
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            number = max((n for n in map(_number, self.folder.iterdir()) if n is not None), default=0) + 1
            prefix = self.folder / f"ckpt-{number}"
            self.checkpoint.write(str(prefix))
            for written in self.folder.glob(f"ckpt-{number}.*"):
                fsync(written)
            sidecar = {key: value for key, value in state.items() if key != "history"}
            sidecar["history_length"] = self._append_history(state["history"])
            sidecar["best_file"] = self._write_best(number, best_weights)
            write_json_atomic(Path(f"{prefix}.state.json"), sidecar)  # last: it makes the checkpoint count
        except RunFault:
            self._remove(number)
            raise
        except (OSError, tf.errors.OpError) as exc:  # TensorFlow's writer raises its own errors (a full disk)
            if number is not None:
                self._remove(number)
            raise RunFault(
                f"could not write a checkpoint in '{self.folder}' ({first_line(exc)}): "
                "free some space or choose another -out; earlier checkpoints are intact"
            ) from exc
        self._prune()
        return str(prefix)

    def restore(self) -> tuple[dict, list[np.ndarray] | None]:
        """Restore the newest readable checkpoint; returns its state (with its history) and
        best-weights copy. Later history lines, from checkpoints that did not count, are dropped."""
        for number in reversed(_complete(self.folder)):
            prefix = self.folder / f"ckpt-{number}"
            try:
                state = self._state(number)
                history = self._read_history(state)
                _check_history(history, state["epoch"])
                self.checkpoint.restore(str(prefix)).assert_existing_objects_matched()
                # A checkpoint written by ktrain 0.1 holds its history and a best-weights copy of its own.
                best_file = state.get("best_file")
                if "history" in state and (self.folder / f"{prefix.name}.best.npz").is_file():
                    best_file = f"{prefix.name}.best.npz"  # 0.1 wrote one only once a best epoch existed
                best = None
                if best_file is not None:  # named but missing: the checkpoint is incomplete
                    with np.load(self.folder / best_file) as archive:
                        best = [archive[f"arr_{index}"] for index in range(len(archive.files))]
            except Exception as exc:  # a damaged checkpoint raises many kinds of errors
                log.warning("checkpoint %s is unreadable (%s): trying the one before", prefix, exc)
                continue
            for newer in _complete(self.folder):  # unreadable ones must never count again
                if newer > number:
                    state_file = self.folder / f"ckpt-{newer}.state.json"
                    state_file.replace(state_file.with_name(f"ckpt-{newer}.unreadable"))
            log.info("Resuming from %s (epoch %d done)", prefix, state["epoch"])
            append_json_lines(self.folder / HISTORY, history, fresh=True)
            self._history_lines = len(history)
            self._best = (best, best_file)
            state["history"] = history
            return state, best
        raise KtrainError(
            f"no readable checkpoint in '{self.folder}': run again without --resume (or with --overwrite)"
        )

    def _state(self, number: int) -> dict:
        """Checkpoint ``number``'s state file, checked for what a resume reads from it."""
        state = json.loads(Path(self.folder / f"ckpt-{number}.state.json").read_text(encoding="utf-8"))
        if not isinstance(state, dict) or not isinstance(state.get("epoch"), int):
            raise ValueError("the state file is not a checkpoint's")
        if "history" not in state and not isinstance(state.get("history_length"), int):
            raise ValueError("the state file does not say how much history counts")
        for key, kind in (("plateau", dict), ("early_stopping", dict), ("best", dict), ("stopped_early", bool)):
            if not isinstance(state.get(key), kind):
                raise ValueError(f"the state file lacks '{key}'")
        epoch, best = state["epoch"], state["best"].get("epoch")
        if epoch < 0:
            raise ValueError(f"the state file's epoch is {epoch}")
        if best is not None and (not isinstance(best, int) or not 0 <= best <= epoch):
            raise ValueError(f"its best epoch {best} is not one of the {epoch} done")
        cut = state.get("in_progress")
        if cut is not None and (not isinstance(cut, dict) or cut.get("epoch") != epoch + 1):
            raise ValueError("its epoch cut short is not the one after the last done")
        return state

    def _append_history(self, history: list[dict]) -> int:
        append_json_lines(self.folder / HISTORY, history[self._history_lines :], fresh=self._history_lines == 0)
        self._history_lines = len(history)
        return self._history_lines

    def _read_history(self, state: dict) -> list[dict]:
        if "history" in state:
            return state["history"]
        wanted = state["history_length"]
        with open(self.folder / HISTORY, encoding="utf-8") as stream:
            lines = [line for _, line in zip(range(wanted), stream)]
        if len(lines) < wanted or not all(line.endswith("\n") for line in lines):
            raise ValueError(f"{HISTORY} holds fewer than {wanted} epochs")
        return [json.loads(line) for line in lines]

    def _write_best(self, number: int, best_weights: list[np.ndarray] | None) -> str | None:
        if best_weights is None:
            return None
        if best_weights is not self._best[0]:
            name = f"ckpt-{number}.best.npz"
            with atomic_write(self.folder / name) as temporary:
                np.savez(temporary, *best_weights)
            self._best = (best_weights, name)
        return self._best[1]

    def _prune(self) -> None:
        """Remove all but the newest ``KEEP`` complete checkpoints, keeping the best-weights files
        the kept ones name; a dropped checkpoint's state file goes first, so it stops counting."""
        kept = _complete(self.folder)[-KEEP:]
        named = set()
        for number in kept:
            try:
                named.add(self._state(number).get("best_file"))
            except (OSError, ValueError):  # a damaged kept state: keep every best-weights file
                named |= {path.name for path in self.folder.glob("*.best.npz")}
        for number in sorted({_number(path) for path in self.folder.iterdir()} - {None, *kept}):
            if number < kept[-1]:
                self._remove(number, keep=named)

    def _remove(self, number: int, keep: set = frozenset()) -> None:
        files = sorted(self.folder.glob(f"ckpt-{number}[._]*"), key=lambda path: not path.name.endswith(".state.json"))
        for path in files:
            if path.name in keep:
                continue
            if path.is_dir():
                shutil.rmtree(path, ignore_errors=True)
            else:
                path.unlink(missing_ok=True)
