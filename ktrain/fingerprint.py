"""What decides a run's results, recorded in ``run.json`` when it starts, so ``--resume`` continues
only the run that was started.

A fingerprint is flat (setting → value as text). It holds the command; the models (a file by a
checksum of its bytes, wherever it lies; a model object by its class and size); the dataset (an
.npz by checksum), its validation split and augmentation; the seed and every engine setting but
those that change only how fast or how long (``UNDECIDING``: ``-e``, which may grow on resume,
``-ebs``, ``--cache-dir``, ``--targets``, ``--jit``); the methods and their resolved options (a
sweep's grid values aside: a resumed sweep may add points); and the baseline and teacher epochs of
a comparison. Not ``--seeds``, ``-v``, ``--debug`` or the outputs.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

from ktrain.classes import format_classes, parse_classes
from ktrain.errors import KtrainError
from ktrain.io import write_json_atomic
from ktrain.outfolder import FINGERPRINT
from ktrain.scaling import parse_input_scale
from ktrain.specialists import split_spec
from ktrain.specs import Run, is_object, label

NAME = FINGERPRINT
# Settings that change how fast or how long, not the numbers: -e may grow on resume, cached and
# online targets are tested equal, XLA changes speed (and determinism, which resume checks itself).
UNDECIDING = ("epochs", "eval_batch_size", "cache_dir", "targets", "jit")
SCALES = ("models.input_scale", "models.teacher_input_scale")


def fingerprint(run: Run, replicas: int | None = None) -> dict[str, str]:
    """``run``'s deciding settings, flat, as text; with ``replicas``, the number of replicas its
    strategy trains on (the per-replica batch, and so the numbers, depend on it)."""
    flat: dict[str, str] = {"command": run.command}
    if replicas is not None:
        flat["engine.replicas"] = str(replicas)
    models = run.models
    for name in ("teacher", "student", "start_weights"):
        flat[f"models.{name}"] = _model(getattr(models, name))
    flat["models.specialists"] = ", ".join(_model(member) for member in models.specialists)
    flat["models.reinit"] = str(models.reinit)
    flat["models.input_scale"] = _scale(models.input_scale)
    if models.teacher is not None:
        flat["models.teacher_input_scale"] = _scale(models.teacher_input_scale or models.input_scale)
    data = run.data
    flat["data.dataset"] = _model(data.dataset)
    for name in ("val_split", "augment", "views", "view_seed"):
        flat[f"data.{name}"] = str(label(getattr(data, name)))
    flat["data.classes"] = _classes(data.classes)
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


def _scale(text: str | None) -> str:
    """An input scale by its value (``2/255, -1`` and ``2/255,-1`` are one), or ``auto``; a value that
    does not parse (only from a hand-edited run.json) as it is."""
    try:
        scale = parse_input_scale(text)
    except KtrainError:
        return str(text)
    return "auto" if scale is None else f"{scale[0]!r},{scale[1]!r}"


def _classes(text: str | None) -> str:
    """Classes by what they are (``0-4`` and ``0,1,2,3,4`` are one); text that does not parse (it is
    refused later, when the data is known) as it is."""
    if text is None:
        return "None"
    try:
        return format_classes(parse_classes(str(text), 10**6, "--classes"))
    except (KtrainError, ValueError):
        return str(text)


def _model(spec: Any) -> str:
    """A file (a model, FILE:CLASSES, an .npz) by a checksum of its bytes, wherever it is; a model
    object by its class and size (its name depends on the session); a name as it is."""
    if spec is not None and is_object(spec):
        if hasattr(spec, "count_params"):
            return f"{type(spec).__name__} of {spec.count_params()} parameters"
        return str(label(spec))
    path, classes = split_spec(str(spec))  # FILE:CLASSES: the file's bytes, and its classes
    if spec is None or not Path(path).is_file():
        return str(spec)
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return f"file sha256 {digest.hexdigest()[:16]}" + (f":{_classes(classes)}" if classes else "")


def check_and_record(run: Run, path: Path, replicas: int | None = None) -> None:
    """On ``--resume``, refuse a run whose deciding settings differ from those ``path`` recorded
    (naming each, old → new); then record this run's. A folder from before run.json is accepted."""
    current = fingerprint(run, replicas)
    if run.outputs.resume and not path.is_file():
        return  # a folder from before run.json: its checkpoints' own checks apply, nothing is recorded
    if run.outputs.resume:
        try:
            recorded = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(recorded, dict):
                raise ValueError("not a JSON object")
        except (OSError, ValueError) as exc:
            raise KtrainError(f"'{path}' is unreadable ({exc}): start again with --overwrite") from None
        for key in SCALES:  # recorded as written by the version before the scale's value was
            if isinstance(recorded.get(key), str) and recorded[key] != "auto":
                recorded[key] = _scale(recorded[key])
        if isinstance(recorded.get("data.classes"), str):  # recorded as written by earlier versions
            recorded["data.classes"] = _classes(recorded["data.classes"])
        differences = [  # a setting the record lacks (added by a later version) is not a difference
            f"{key} {recorded[key]} → {current.get(key, '(unset)')}"
            for key in sorted(recorded)
            if recorded[key] != current.get(key, recorded[key])
        ]
        if differences:
            raise KtrainError(
                f"--resume with other settings than the run in '{path.parent}' was started with: "
                f"{'; '.join(differences)}; resume with the same settings, or start again with --overwrite"
            )
    write_json_atomic(path, current)
