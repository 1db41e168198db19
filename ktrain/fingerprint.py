"""What decides a run's results, recorded in ``run.json`` when it starts, so ``--resume`` continues
only the run that was started.

A fingerprint is flat (setting → value as text). It holds the models (a file by its path and
checksum), the dataset, its validation split and augmentation, the seed, every engine setting but
the ones that only change how fast or how long (``-e``, which may grow on resume, ``-ebs``,
``--cache-dir``), the methods and their resolved options (a sweep's grid values aside: a resumed
sweep may add points), and the baseline and teacher epochs of a comparison. Not ``-v``,
``--debug`` or the outputs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from ktrain.errors import KtrainError
from ktrain.io import write_json_atomic
from ktrain.specs import Run, is_object, label

NAME = "run.json"
UNDECIDING = ("epochs", "eval_batch_size", "cache_dir")


def fingerprint(run: Run) -> dict[str, str]:
    """``run``'s deciding settings, flat, as text."""
    flat: dict[str, str] = {}
    models = run.models
    for name in ("teacher", "student", "start_weights"):
        flat[f"models.{name}"] = _model(getattr(models, name))
    flat["models.specialists"] = ", ".join(_model(member) for member in models.specialists)
    flat["models.reinit"] = str(models.reinit)
    data = run.data
    flat["data.dataset"] = str(label(data.dataset))
    for name in ("val_split", "augment", "classes", "views", "view_seed"):
        flat[f"data.{name}"] = str(label(getattr(data, name)))
    _flatten("engine", dataclasses.asdict(run.engine), flat)
    for spec in run.methods:
        grid = {key for key, _ in spec.point}
        options = {key: value for key, value in spec.options.to_dict().items() if key not in grid}
        flat[f"method.{spec.name}"] = json.dumps(options, sort_keys=True, default=str)
    flat["plan.baseline"] = str(run.plan.baseline)
    flat["plan.teacher_epochs"] = str(run.plan.teacher_epochs)
    return flat


def _flatten(prefix: str, values: dict, flat: dict[str, str]) -> None:
    for key, value in values.items():
        if key in UNDECIDING:
            continue
        if isinstance(value, dict):
            _flatten(f"{prefix}.{key}", value, flat)
        else:
            flat[f"{prefix}.{key}"] = str(value)


def _model(spec: Any) -> str:
    """A model file by its path and a checksum of its bytes; a zoo name or an object as recorded."""
    if spec is None or is_object(spec) or not Path(str(spec)).is_file():
        return str(label(spec))
    digest = hashlib.sha256()
    with open(spec, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"{spec} (sha256 {digest.hexdigest()[:16]})"


def check_and_record(run: Run, path: Path) -> None:
    """On ``--resume``, refuse a run whose deciding settings differ from those ``path`` recorded
    (naming each, old → new); then record this run's. A folder from before run.json is accepted."""
    current = fingerprint(run)
    if run.outputs.resume and path.is_file():
        try:
            recorded = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise KtrainError(f"'{path}' is unreadable ({exc}): start again with --overwrite") from None
        differences = [
            f"{key} {recorded.get(key, '(unset)')} → {current.get(key, '(unset)')}"
            for key in sorted(set(recorded) | set(current))
            if recorded.get(key) != current.get(key)
        ]
        if differences:
            raise KtrainError(
                f"--resume with other settings than the run in '{path.parent}' was started with: "
                f"{'; '.join(differences)}; resume with the same settings, or start again with --overwrite"
            )
    write_json_atomic(path, current)
