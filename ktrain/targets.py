"""Teacher soft targets: computed online each step, or once and cached (in memory or on disk).

A cache holds every tap of the teacher view (its logits, and the features or layers the methods
asked for), by tap key, for every sample of the train and validation splits, in inference mode;
the step looks them up **by sample index**, so no shuffle can pair an image with another image's
targets.

With ``--views K`` the train split holds the teacher's logits for views 0..K−1 of every sample
(``[N, K, classes]``), looked up by (sample, view); validation stays un-augmented. Only logits are
cached per view: a method that needs teacher features under augmentation runs the teacher online.
With ``--cache-topk N`` the train split keeps each view's N largest logits, their classes, and the
log of the rest's total probability; the other classes share that probability evenly (FKD's
storage, Shen & Xing 2022), which is exact at T = 1 for the N kept classes.

On disk (``--cache-dir``) a cache is an ``.npz`` plus a manifest keyed by the teacher's weights,
the dataset fingerprint, the preprocessing, the taps, and the views, top-N and TensorFlow version
when views are cached (stateless ops are stable only within a version); the manifest also records
the SHA-256 of the arrays, so a stale, mismatched or corrupt cache is detected and rebuilt.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import tensorflow as tf

from ktrain.augment import Views
from ktrain.config import TrainConfig
from ktrain.data import DataSplits, eval_pipeline
from ktrain.errors import KtrainError
from ktrain.io import atomic_write, write_json_atomic
from ktrain.listener import Listener
from ktrain.scaling import input_affine

log = logging.getLogger("ktrain")

MODES = ("auto", "online", "cache")
PREPROCESSING = "uint8 / 255"
DEFAULT_MEMORY_BUDGET = 1 << 30  # bytes of cached targets "auto" accepts
# The array names of top-N logits under a tap key (``logits.top_values`` ...).
TOP_PARTS = ("top_values", "top_classes", "rest")


@dataclass
class SoftTargets:
    """Cached teacher taps per split: ``arrays[split][tap key]`` (``logits``, ``penultimate``,
    ``layer:NAME``; top-N logits as ``logits.top_values/top_classes/rest``). ``views``: the train
    split holds ``views.count`` views per sample, rendered as ``views`` says."""

    arrays: dict[str, dict[str, np.ndarray]]
    source: str
    views: Views | None = None

    def nbytes(self) -> int:
        return sum(array.nbytes for split in self.arrays.values() for array in split.values())

    def keys(self, split: str = "train") -> set[str]:
        """The tap keys held (top-N parts count as their tap's key)."""
        suffixes = tuple(f".{part}" for part in TOP_PARTS)
        return {
            next((name[: -len(s)] for s in suffixes if name.endswith(s)), name) for name in self.arrays.get(split, {})
        }


def use_cache(
    mode: str,
    views: Views,
    data: DataSplits,
    teacher,
    topk: int | None = None,
    budget: int = DEFAULT_MEMORY_BUDGET,
) -> bool:
    """Decide between cached and online targets for ``--targets``; refuse what cannot be right."""
    if mode not in MODES:
        raise KtrainError(f"--targets is '{mode}': use auto, online or cache")
    if mode == "online":
        return False
    augment = views.augment
    if augment and views.count is None:
        if mode == "cache":
            raise KtrainError(
                f"--targets cache with --augment {augment}: a cache needs a fixed set of views per sample; "
                "add --views K (8, say), or use --targets online"
            )
        log.info("Soft targets: teacher runs online (a fresh view every epoch; --views K would cache K views)")
        return False
    if augment and set(teacher.keys) != {"logits"}:
        if mode == "cache":
            raise KtrainError(
                "--targets cache with a method that needs teacher features under --augment: only logits are "
                "cached per view (K feature maps per image do not fit in memory); use --targets online or auto"
            )
        log.info(
            "Soft targets: teacher runs online: the method needs teacher features, and only logits are "
            "cached per view (K feature maps per image do not fit in memory)"
        )
        return False
    size = cache_bytes(teacher, data, views.count if augment else None, topk)
    if mode == "auto" and size > budget:
        log.info(
            "Soft targets would need %.0f MiB, over the %.0f MiB budget: teacher runs online",
            size / 2**20,
            budget / 2**20,
        )
        return False
    return True


def cache_bytes(teacher, data: DataSplits, views: int | None, topk: int | None) -> int:
    """Bytes the cache would hold: float32 taps (top-N: values, int32 classes and the rest)."""
    width = sum(int(np.prod(shape[1:])) for shape in teacher.shapes.values())
    train_width = width if topk is None else 2 * topk + 1
    return (len(data.y_train) * (views or 1) * train_width + len(data.y_val) * width) * 4


def prepare(config, views: Views, teacher, data: DataSplits, listener: Listener | None = None) -> SoftTargets | None:
    """``--targets``: cached targets (from ``--cache-dir`` or computed now), or None to run the
    teacher online. ``config`` is the run's TrainConfig."""
    if config.cache_topk is not None:
        check_topk(config.cache_topk, teacher, data)
    if not use_cache(config.targets, views, data, teacher, config.cache_topk):
        log.info("Soft targets: teacher runs online")
        return None
    plan = CachePlan(views if views.augment else None, config.cache_topk)
    targets = load_or_build(teacher, data, config.eval_batch_size, config.cache_dir, plan, listener)
    log.info("Soft targets: cached (%.1f MiB, %s)", targets.nbytes() / 2**20, targets.source)
    return targets


@dataclass(frozen=True)
class CachePlan:
    """What a cache holds beyond plain taps: the views of the train split, and top-N logits."""

    views: Views | None = None
    topk: int | None = None

    def record(self) -> dict:
        if self.views is None and self.topk is None:
            return {}
        record = {"topk": self.topk}
        if self.views is not None:
            record.update(self.views.record(), tensorflow=tf.__version__)
        return record


def compute(
    teacher, data: DataSplits, batch_size: int, plan: CachePlan | None = None, listener: Listener | None = None
) -> SoftTargets:
    """Run the teacher once, batched, in inference mode, over the train split (each of its views,
    under ``plan.views``) and the validation split; reports progress to ``listener``."""
    plan = plan or CachePlan()
    listener = listener or Listener()
    count = plan.views.count if plan.views is not None else None
    batches = math.ceil(len(data.y_train) / batch_size) * (count or 1) + math.ceil(len(data.y_val) / batch_size)
    listener.on_task_begin("Teacher's soft targets", batches)
    done = [0]

    def predict(dataset, topk=None) -> dict[str, np.ndarray]:
        outputs: dict[str, list[np.ndarray]] = {key: [] for key in teacher.keys}
        for images in dataset:
            for key, value in teacher.predict(images).items():
                outputs[key].append(value.numpy())
            done[0] += 1
            listener.on_task_advance(done[0])
        arrays = {key: np.concatenate(values) for key, values in outputs.items()}
        if topk is not None:  # reduced a split or a view at a time: full logits never pile up
            arrays = {**{k: v for k, v in arrays.items() if k != "logits"}, **top_logits(arrays.pop("logits"), topk)}
        return arrays

    if count is None:
        train = predict((x for x, _, _ in eval_pipeline(data.x_train, data.y_train, batch_size)), plan.topk)
    else:
        from ktrain.views import TrainingSamples

        samples = TrainingSamples(data.x_train, data.y_train, plan.views)
        per_view = [
            predict((batch["images"] for batch in samples.view_batches(view, batch_size)), plan.topk)
            for view in range(count)
        ]
        train = {key: np.stack([view[key] for view in per_view], axis=1) for key in per_view[0]}
    val = predict(x for x, _, _ in eval_pipeline(data.x_val, data.y_val, batch_size))
    listener.on_task_end()
    return SoftTargets({"train": train, "val": val}, "memory", plan.views)


def check_topk(topk: int, teacher, data: DataSplits) -> None:
    """Top-N storage needs one teacher with more than N classes."""
    from ktrain.specialists import SpecialistEnsemble

    if isinstance(teacher, SpecialistEnsemble):
        raise KtrainError(
            f"--cache-topk {topk} with an ensemble teacher: its members' logits sit side by side, which "
            "top-N storage would mix; drop --cache-topk"
        )
    check_topk_classes(topk, data)


def check_topk_classes(topk: int | None, data: DataSplits) -> None:
    """Top-N storage needs more than N classes (checked as soon as the data is loaded)."""
    if topk is not None and topk >= data.num_classes:
        raise KtrainError(
            f"--cache-topk is {topk} but {data.name} has {data.num_classes} classes: "
            "give fewer than the classes, or drop --cache-topk"
        )


def top_logits(logits: np.ndarray, n: int) -> dict[str, np.ndarray]:
    """The ``n`` largest logits of each row (``logits.top_values``), their classes
    (``logits.top_classes``, int32) and ``logits.rest``, the log of the other classes' summed
    ``exp(logit)`` (so their total probability at T = 1 is kept exactly)."""
    logits = np.asarray(logits, np.float32)
    top = np.argpartition(-logits, n - 1, axis=-1)[..., :n]
    order = np.argsort(-np.take_along_axis(logits, top, axis=-1), axis=-1, kind="stable")
    classes = np.take_along_axis(top, order, axis=-1).astype(np.int32)
    values = np.take_along_axis(logits, classes, axis=-1)
    others = logits.astype(np.float64)
    np.put_along_axis(others, classes.astype(np.int64), -np.inf, axis=-1)
    peak = others.max(axis=-1, keepdims=True)
    rest = (peak[..., 0] + np.log(np.exp(others - peak).sum(axis=-1))).astype(np.float32)
    return {"logits.top_values": values, "logits.top_classes": classes, "logits.rest": rest}


def filled_logits(values, classes, rest, num_classes: int) -> tf.Tensor:
    """Full logits from top-N storage: the N kept logits in place, and ``rest − log(C − N)`` for every
    other class, so they share the rest's probability evenly (at T = 1 exactly)."""
    n = values.shape[-1]
    fill = tf.cast(rest, tf.float32) - math.log(num_classes - n)
    placed = tf.one_hot(classes, num_classes, dtype=tf.float32)  # [..., N, C]
    covered = tf.reduce_sum(placed, axis=-2)
    kept = tf.reduce_sum(tf.cast(values, tf.float32)[..., None] * placed, axis=-2)
    return fill[..., None] * (1.0 - covered) + kept


class Table:
    """One cached tap of one split as device variables, looked up by sample (and view)."""

    def __init__(self, arrays: dict[str, np.ndarray], key: str, split: str, per_view: bool, num_classes: int):
        name = f"cached_{split}_{key.replace(':', '_')}"
        self.per_view = per_view
        self.num_classes = num_classes
        self.parts = {
            part: tf.Variable(array, trainable=False, name=f"{name}_{part.replace('.', '_')}")
            for part, array in arrays.items()
        }

    def gather(self, indices, views=None) -> tf.Tensor:
        if self.per_view:
            where = tf.stack([tf.cast(indices, tf.int32), tf.cast(views, tf.int32)], axis=-1)
            rows = {part: tf.gather_nd(variable, where) for part, variable in self.parts.items()}
        else:
            rows = {part: tf.gather(variable, indices) for part, variable in self.parts.items()}
        if "value" in rows:
            return rows["value"]
        return filled_logits(rows["top_values"], rows["top_classes"], rows["rest"], self.num_classes)


def tables(targets: SoftTargets, keys: set[str], num_classes: int) -> dict[str, dict[str, Table]]:
    """The taps ``keys`` of every cached split, as :class:`Table` s (built in the strategy's scope)."""
    built: dict[str, dict[str, Table]] = {}
    for split, arrays in targets.arrays.items():
        per_view = split == "train" and targets.views is not None
        built[split] = {}
        for key in keys:
            if key in arrays:
                parts = {"value": arrays[key]}
            else:
                parts = {part: arrays[f"{key}.{part}"] for part in TOP_PARTS}
            built[split][key] = Table(parts, key, split, per_view, num_classes)
    return built


def manifest(teacher, data: DataSplits, plan: CachePlan | None = None) -> dict:
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
        "teacher_precision": getattr(teacher, "precision", "float32"),
        "teacher_input": list(input_affine(teacher.model)),
        **(plan or CachePlan()).record(),
    }


def _array_digest(arrays: dict) -> str:
    digest = hashlib.sha256()
    for split in sorted(arrays):
        for tap in sorted(arrays[split]):
            digest.update(f"{split}/{tap}{arrays[split][tap].shape}".encode())
            digest.update(np.ascontiguousarray(arrays[split][tap]).tobytes())
    return digest.hexdigest()


def load_or_build(
    teacher,
    data: DataSplits,
    batch_size: int,
    cache_dir: str | None,
    plan: CachePlan | None = None,
    listener: Listener | None = None,
) -> SoftTargets:
    """Targets from ``cache_dir`` when a matching, intact cache is there; else computed (and stored)."""
    plan = plan or CachePlan()
    if cache_dir is None:
        log.info("Getting teacher's predictions...")
        return compute(teacher, data, batch_size, plan, listener)
    folder = Path(cache_dir)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise KtrainError(
            f"cache folder '{folder}' cannot be created ({exc.strerror}): choose another --cache-dir"
        ) from exc
    key = manifest(teacher, data, plan)
    name = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    manifest_path, arrays_path = folder / f"{name}.json", folder / f"{name}.npz"
    cached = _read(manifest_path, arrays_path, key, data)
    if cached is not None:
        log.info("Soft targets read from %s", arrays_path)
        cached.views = plan.views
        return cached
    log.info("Getting teacher's predictions (cache %s)...", arrays_path)
    targets = compute(teacher, data, batch_size, plan, listener)
    with atomic_write(arrays_path, "choose another --cache-dir") as temporary:
        np.savez(
            temporary,
            **{f"{split}/{tap}": array for split, taps in targets.arrays.items() for tap, array in taps.items()},
        )
    write_json_atomic(
        manifest_path, {**key, "arrays_sha256": _array_digest(targets.arrays)}, "choose another --cache-dir"
    )
    targets.source = str(arrays_path)
    return targets


def _read(manifest_path: Path, arrays_path: Path, key: dict, data: DataSplits) -> SoftTargets | None:
    if not manifest_path.is_file() or not arrays_path.is_file():
        return None
    try:
        stored = json.loads(manifest_path.read_text(encoding="utf-8"))
        with np.load(arrays_path, allow_pickle=False) as archive:
            arrays: dict[str, dict[str, np.ndarray]] = {}
            for entry in archive.files:
                split, tap = entry.split("/", 1)
                arrays.setdefault(split, {})[tap] = archive[entry]
        if not isinstance(stored, dict):
            raise ValueError("the manifest is not a JSON object")
    except Exception as exc:  # a damaged .npz raises zipfile, OS and value errors alike
        log.warning("Soft-target cache %s is unreadable (%s): rebuilding it", arrays_path, exc)
        return None
    if {k: stored.get(k) for k in key} != key:
        log.warning("Soft-target cache %s was made for another teacher or dataset: rebuilding it", arrays_path)
        return None
    if stored.get("arrays_sha256") != _array_digest(arrays):
        log.warning("Soft-target cache %s is corrupt (checksum mismatch): rebuilding it", arrays_path)
        return None
    rows = {"train": len(data.y_train), "val": len(data.y_val)}
    if set(arrays) != set(rows) or any(len(a) != rows[split] for split in rows for a in arrays[split].values()):
        log.warning("Soft-target cache %s does not match the data's sample counts: rebuilding it", arrays_path)
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
    views: Views | None = None,
    topk: int | None = None,
    listener: Listener | None = None,
    teacher_precision: str = "float32",
) -> dict:
    """``ktrain cache``: compute (or verify) the on-disk soft targets a later run with the same
    teacher (and specialists), dataset, ``--val-split`` and ``--seed`` (and augmentation, views,
    view seed and top-N) will read. ``features`` also caches the features at ``teacher_layer``
    (default: the classifier's input)."""
    import keras

    from ktrain.data import load_dataset
    from ktrain.loading import load_teacher
    from ktrain.methods.base import Tap
    from ktrain.specialists import SpecialistEnsemble
    from ktrain.taps import NetworkView

    # The runs' own checks of -ebs, --cache-topk and --teacher-precision.
    TrainConfig(eval_batch_size=batch_size, cache_topk=topk, teacher_precision=teacher_precision).validate()
    views = (views or Views()).validate()
    if views.augment and views.count is None:
        raise KtrainError(
            f"--augment {views.augment} without --views: a cache holds a fixed set of views, give --views K (8, say)"
        )
    if features and views.augment:
        raise KtrainError("--features with --augment: only logits are cached per view; drop one of them")
    models_spec.validate(needs_teacher=True)
    keras.utils.set_random_seed(seed)  # a zoo: teacher is built the same way every time
    data = load_dataset(dataset, data_dir=data_dir, val_split=val_split, seed=seed)
    teacher, _ = load_teacher(models_spec, data, (), precision=teacher_precision)
    if topk is not None:
        check_topk(topk, teacher, data)
    if features:
        if isinstance(teacher, SpecialistEnsemble):
            raise KtrainError("--features: an ensemble teacher has no single feature layer; cache its logits only")
        precision = teacher.precision
        teacher = NetworkView(teacher.model, data.x_val, name=teacher.name, taps=[Tap.features(teacher_layer)])
        teacher.precision = precision
    plan = CachePlan(views if views.augment else None, topk)
    targets = load_or_build(teacher, data, batch_size, cache_dir, plan, listener)
    return {
        "path": targets.source,
        "megabytes": targets.nbytes() / 2**20,
        "arrays": {
            f"{split}/{key}": list(array.shape) for split, taps in targets.arrays.items() for key, array in taps.items()
        },
    }
