"""Teacher soft targets: computed online each step, or once and cached (in memory or on disk).

A cache holds every tap of the teacher view (its logits, and the features or layers the methods
asked for), by tap key, for every sample of the train and validation splits, in inference mode;
the step looks them up **by sample index**, so no shuffle can pair an image with another image's
targets.

On disk (``--cache-dir``) a cache is an ``.npz`` plus a manifest keyed by the teacher's weights,
the dataset fingerprint, the preprocessing and the taps; the manifest also records the SHA-256 of
the arrays, so a stale, mismatched or corrupt cache is detected and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ktrain.data import DataSplits, eval_pipeline
from ktrain.errors import KtrainError
from ktrain.io import atomic_write, write_json_atomic

log = logging.getLogger("ktrain")

MODES = ("auto", "online", "cache")
PREPROCESSING = "uint8 / 255"
DEFAULT_MEMORY_BUDGET = 1 << 30  # bytes of cached targets "auto" accepts


@dataclass
class SoftTargets:
    """Cached teacher taps per split: ``arrays[split][tap key]`` (``logits``, ``penultimate``, ``layer:NAME``)."""

    arrays: dict[str, dict[str, np.ndarray]]
    source: str

    def nbytes(self) -> int:
        return sum(array.nbytes for split in self.arrays.values() for array in split.values())

    def keys(self) -> set[str]:
        return set(next(iter(self.arrays.values()), {}))


def use_cache(
    mode: str, augment: tuple[str, ...], data: DataSplits, sample_width: int, budget: int = DEFAULT_MEMORY_BUDGET
) -> bool:
    """Decide between cached and online targets for ``--targets``; refuse what cannot be right."""
    if mode not in MODES:
        raise KtrainError(f"--targets is '{mode}': use auto, online or cache")
    if mode == "online":
        return False
    if augment:
        if mode == "cache":
            raise KtrainError(
                f"--targets cache with --augment {','.join(augment)}: cached teacher targets belong to the "
                "un-augmented images; use --targets online (or auto), or drop --augment"
            )
        return False
    size = (len(data.y_train) + len(data.y_val)) * sample_width * 4
    if mode == "auto" and size > budget:
        log.info(
            "Soft targets would need %.0f MiB, over the %.0f MiB budget: teacher runs online",
            size / 2**20,
            budget / 2**20,
        )
        return False
    return True


def sample_width(teacher) -> int:
    """Float32 values the cache holds per sample: the sum of every tap's size."""
    return sum(int(np.prod(shape[1:])) for shape in teacher.shapes.values())


def prepare(
    mode: str, augment: tuple[str, ...], teacher, data: DataSplits, batch_size: int, cache_dir: str | None
) -> SoftTargets | None:
    """``--targets``: cached targets (from ``cache_dir`` or computed now), or None to run the teacher online."""
    if not use_cache(mode, augment, data, sample_width(teacher)):
        log.info("Soft targets: teacher runs online")
        return None
    targets = load_or_build(teacher, data, batch_size, cache_dir)
    log.info("Soft targets: cached (%.1f MiB, %s)", targets.nbytes() / 2**20, targets.source)
    return targets


def compute(teacher, data: DataSplits, batch_size: int) -> SoftTargets:
    """Run the teacher once, batched, in inference mode, over the train and validation splits."""
    arrays = {}
    for split, (images, labels) in {"train": (data.x_train, data.y_train), "val": (data.x_val, data.y_val)}.items():
        outputs: dict[str, list[np.ndarray]] = {key: [] for key in teacher.keys}
        for x, _, _ in eval_pipeline(images, labels, batch_size):
            for key, value in teacher.predict(x).items():
                outputs[key].append(value.numpy())
        arrays[split] = {key: np.concatenate(values) for key, values in outputs.items()}
    return SoftTargets(arrays, "memory")


def manifest(teacher, data: DataSplits) -> dict:
    digest = hashlib.sha256()
    for weight in teacher.model.get_weights():
        digest.update(np.ascontiguousarray(weight).tobytes())
    return {
        "teacher_weights": digest.hexdigest(),
        "dataset": data.name,
        "dataset_fingerprint": data.fingerprint(),
        "preprocessing": PREPROCESSING,
        "logits_from": teacher.source,
        "taps": {key: teacher.sources[key] for key in teacher.keys},
    }


def _array_digest(arrays: dict) -> str:
    digest = hashlib.sha256()
    for split in sorted(arrays):
        for tap in sorted(arrays[split]):
            digest.update(f"{split}/{tap}{arrays[split][tap].shape}".encode())
            digest.update(np.ascontiguousarray(arrays[split][tap]).tobytes())
    return digest.hexdigest()


def load_or_build(teacher, data: DataSplits, batch_size: int, cache_dir: str | None) -> SoftTargets:
    """Targets from ``cache_dir`` when a matching, intact cache is there; else computed (and stored)."""
    if cache_dir is None:
        log.info("Getting teacher's predictions...")
        return compute(teacher, data, batch_size)
    folder = Path(cache_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KtrainError(
            f"cache folder '{folder}' cannot be created ({exc.strerror}): choose another --cache-dir"
        ) from exc
    key = manifest(teacher, data)
    name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    manifest_path, arrays_path = folder / f"{name}.json", folder / f"{name}.npz"
    cached = _read(manifest_path, arrays_path, key)
    if cached is not None:
        log.info("Soft targets read from %s", arrays_path)
        return cached
    log.info("Getting teacher's predictions (cache %s)...", arrays_path)
    targets = compute(teacher, data, batch_size)
    with atomic_write(arrays_path) as temporary:
        np.savez(
            temporary,
            **{f"{split}/{tap}": array for split, taps in targets.arrays.items() for tap, array in taps.items()},
        )
    write_json_atomic(manifest_path, {**key, "arrays_sha256": _array_digest(targets.arrays)})
    targets.source = str(arrays_path)
    return targets


def _read(manifest_path: Path, arrays_path: Path, key: dict) -> SoftTargets | None:
    if not manifest_path.is_file() or not arrays_path.is_file():
        return None
    try:
        stored = json.loads(manifest_path.read_text(encoding="utf-8"))
        with np.load(arrays_path, allow_pickle=False) as archive:
            arrays: dict[str, dict[str, np.ndarray]] = {}
            for entry in archive.files:
                split, tap = entry.split("/", 1)
                arrays.setdefault(split, {})[tap] = archive[entry]
    except Exception as exc:  # a damaged .npz raises zipfile, OS and value errors alike
        log.warning("Soft-target cache %s is unreadable (%s): rebuilding it", arrays_path, exc)
        return None
    if {k: stored.get(k) for k in key} != key:
        log.warning("Soft-target cache %s was made for another teacher or dataset: rebuilding it", arrays_path)
        return None
    if stored.get("arrays_sha256") != _array_digest(arrays):
        log.warning("Soft-target cache %s is corrupt (checksum mismatch): rebuilding it", arrays_path)
        return None
    return SoftTargets(arrays, str(arrays_path))


def build_cache(
    models_spec,
    dataset: str,
    *,
    cache_dir: str,
    features: bool = False,
    teacher_layer: str | None = None,
    data_dir: str | None = None,
    val_split: float = 0.3,
    seed: int = 0,
    batch_size: int = 128,
) -> dict:
    """``ktrain cache``: compute (or verify) the on-disk soft targets a later run with the same
    teacher (and specialists), dataset, ``--val-split`` and ``--seed`` will read. ``features`` also
    caches the features at ``teacher_layer`` (default: the classifier's input)."""
    import keras

    from ktrain.data import load_dataset
    from ktrain.loading import load_teacher
    from ktrain.methods.base import Tap
    from ktrain.specialists import SpecialistEnsemble
    from ktrain.taps import NetworkView

    if batch_size <= 0:
        raise KtrainError(f"evaluation batch size (-ebs) is {batch_size}: give a value greater than 0")
    models_spec.validate(needs_teacher=True)
    keras.utils.set_random_seed(seed)  # a zoo: teacher is built the same way every time
    data = load_dataset(dataset, data_dir=data_dir, val_split=val_split, seed=seed)
    teacher, _ = load_teacher(models_spec, data, ())
    if features:
        if isinstance(teacher, SpecialistEnsemble):
            raise KtrainError("--features: an ensemble teacher has no single feature layer; cache its logits only")
        teacher = NetworkView(teacher.model, data.x_val, name=teacher.name, taps=[Tap.features(teacher_layer)])
    targets = load_or_build(teacher, data, batch_size, cache_dir)
    return {
        "path": targets.source,
        "megabytes": targets.nbytes() / 2**20,
        "arrays": {
            f"{split}/{key}": list(array.shape) for split, taps in targets.arrays.items() for key, array in taps.items()
        },
    }
