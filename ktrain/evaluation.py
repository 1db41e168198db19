"""Evaluation: accuracy and cross-entropy of any classifier view; kNN accuracy and retrieval
mAP / precision@k of its features, in bounded memory.

The database (the training split) is compared with the queries (the test split) a chunk of
queries at a time, in float32, so a 50,000 × 10,000 comparison never holds more than
``chunk × database`` similarities. No scikit-learn.
"""

from __future__ import annotations

import numpy as np

from ktrain.data import eval_pipeline
from ktrain.errors import KtrainError, counted
from ktrain.listener import phase
from ktrain.losses import classification_counts
from ktrain.methods.base import LOGITS
from ktrain.taps import NetworkView

METRICS = ("cosine", "euclidean")


def evaluate_classifier(view, images: np.ndarray, labels: np.ndarray, batch_size: int = 128) -> dict[str, float]:
    """Accuracy and cross-entropy of any view with a logits tap (a teacher, a saved student, an
    ensemble) on one device."""
    totals = {"correct": 0.0, "crossentropy_sum": 0.0, "count": 0.0}
    for x, y, _ in eval_pipeline(images, labels, batch_size):
        for name, value in classification_counts(y, view.predict(x)[LOGITS.key]).items():
            totals[name] += float(value)
    count = totals["count"]
    return {"accuracy": totals["correct"] / count, "crossentropy": totals["crossentropy_sum"] / count}


def predict_logits(view, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The view's float32 logits for every image, in order, in inference mode."""
    batches = eval_pipeline(images, np.zeros(len(images), np.int32), batch_size)
    return np.concatenate([view.predict(x)[LOGITS.key].numpy() for x, _, _ in batches])


def extract_features(view: NetworkView, images: np.ndarray, batch_size: int = 256) -> np.ndarray:
    """The view's features (its first tap besides the logits) for every image, in order, in
    inference mode, flattened to ``[images, width]`` float32."""
    batches = eval_pipeline(images, np.zeros(len(images), np.int32), batch_size)
    key = view.feature_key
    return np.concatenate([view.predict(x)[key].numpy().reshape(len(x), -1) for x, _, _ in batches])


def _similarity(queries: np.ndarray, database: np.ndarray, metric: str, database_sq: np.ndarray) -> np.ndarray:
    """Higher is closer: cosine similarity, or minus the squared Euclidean distance."""
    if metric == "cosine":
        return queries @ database.T
    return 2.0 * (queries @ database.T) - database_sq[None, :] - np.sum(queries**2, axis=1, keepdims=True)


def _prepare(features: np.ndarray, metric: str) -> np.ndarray:
    features = np.asarray(features, dtype=np.float32)
    if metric == "cosine":
        features = features / (np.linalg.norm(features, axis=1, keepdims=True) + 1e-12)
    return features


def _chunks(count: int, size: int):
    for start in range(0, count, size):
        yield slice(start, min(start + size, count))


def check_neighbors(k: int, database_size: int) -> None:
    """Refuse a k the kNN search cannot serve (checked as soon as the data is loaded, before training)."""
    if not 0 < k <= database_size:
        raise KtrainError(
            f"k (-k) is {k}, but the kNN search has {database_size} training images to vote: give k from 1 to "
            f"{database_size}"
        )


def knn_accuracy(
    database: np.ndarray,
    database_labels: np.ndarray,
    queries: np.ndarray,
    query_labels: np.ndarray,
    k: int = 5,
    metric: str = "cosine",
    chunk: int = 512,
) -> float:
    """Share of queries whose k nearest database items vote for their label.

    Majority vote; a tie between classes goes to the class of the nearest neighbour among them.
    """
    if metric not in METRICS:
        raise ValueError(f"metric must be one of {METRICS}")
    check_neighbors(k, len(database))
    database = _prepare(database, metric)
    queries = _prepare(queries, metric)
    database_sq = np.sum(database**2, axis=1)
    num_classes = int(max(database_labels.max(), query_labels.max())) + 1
    correct = 0
    for rows in _chunks(len(queries), chunk):
        similarity = _similarity(queries[rows], database, metric, database_sq)
        nearest = np.argpartition(-similarity, k - 1, axis=1)[:, :k]
        order = np.argsort(-np.take_along_axis(similarity, nearest, axis=1), axis=1, kind="stable")
        neighbour_labels = database_labels[np.take_along_axis(nearest, order, axis=1)]  # nearest first
        votes = np.zeros((len(neighbour_labels), num_classes), np.int32)
        np.add.at(votes, (np.arange(len(neighbour_labels))[:, None], neighbour_labels), 1)
        tied = votes == votes.max(axis=1, keepdims=True)
        # The first neighbour (nearest first) whose class is among the tied winners.
        first_tied = np.argmax(np.take_along_axis(tied, neighbour_labels, axis=1), axis=1)
        predictions = neighbour_labels[np.arange(len(neighbour_labels)), first_tied]
        correct += int(np.sum(predictions == query_labels[rows]))
    return correct / len(queries)


def retrieval_metrics(
    database: np.ndarray,
    database_labels: np.ndarray,
    queries: np.ndarray,
    query_labels: np.ndarray,
    metric: str = "cosine",
    precision_at: tuple[int, ...] = (10, 50, 100),
    chunk: int = 256,
) -> dict[str, float]:
    """Mean average precision and precision@k of ranking the database for each query.

    Relevant = same label. AP is the mean of precision at the rank of each relevant item (the
    non-interpolated definition); mAP averages AP over queries that have a relevant item.
    """
    database = _prepare(database, metric)
    queries = _prepare(queries, metric)
    database_sq = np.sum(database**2, axis=1)
    average_precisions = []
    hits_at = {k: [] for k in precision_at if k <= len(database)}
    for rows in _chunks(len(queries), chunk):
        similarity = _similarity(queries[rows], database, metric, database_sq)
        ranking = np.argsort(-similarity, axis=1, kind="stable")
        relevant = database_labels[ranking] == query_labels[rows][:, None]
        cumulative = np.cumsum(relevant, axis=1, dtype=np.float32)
        ranks = np.arange(1, relevant.shape[1] + 1, dtype=np.float32)
        counts = relevant.sum(axis=1)
        precision_sum = np.sum((cumulative / ranks) * relevant, axis=1)
        average_precisions.extend((precision_sum[counts > 0] / counts[counts > 0]).tolist())
        for k in hits_at:
            hits_at[k].extend((cumulative[:, k - 1] / k).tolist())
    results = {"map": float(np.mean(average_precisions)) if average_precisions else 0.0}
    results.update({f"precision@{k}": float(np.mean(values)) for k, values in hits_at.items()})
    return results


def representation_report(view: NetworkView, data, k: int = 5, batch_size: int = 256) -> dict[str, float]:
    """kNN accuracy (cosine and Euclidean) and retrieval metrics of the view's features: train
    split as database, test split as queries."""
    database = extract_features(view, data.x_train, batch_size)
    queries = extract_features(view, data.x_test, batch_size)
    report = {
        f"knn_accuracy_{metric}": knn_accuracy(database, data.y_train, queries, data.y_test, k, metric)
        for metric in METRICS
    }
    report.update(retrieval_metrics(database, data.y_train, queries, data.y_test))
    report["neighbors"] = k
    return report


def evaluate_model(
    spec,
    dataset,
    *,
    neighbors: int = 0,
    layer: str | None = None,
    data_dir: str | None = None,
    batch_size: int = 128,
    input_scale: tuple[float, float] | None = None,
) -> dict:
    """``ktrain evaluate``: test accuracy and cross-entropy, and kNN accuracy of the features with ``neighbors``.

    ``spec`` is a model file, ``zoo:NAME`` or a model object; ``dataset`` a name, an .npz path or
    data in memory (:class:`ktrain.memory.InMemoryData`)."""
    from ktrain import models
    from ktrain.data import load_dataset
    from ktrain.methods.base import Tap
    from ktrain.specs import DataSpec, check_model_spec, label

    check_model_spec(spec, "evaluated")
    if isinstance(dataset, str):
        data = load_dataset(dataset, data_dir=data_dir)
    else:
        data = dataset.splits(val_split=DataSpec.val_split, seed=0)
    if neighbors:
        check_neighbors(neighbors, len(data.y_train))  # before anything is computed
    model = models.load_for(spec, role="evaluated", data=data, input_scale=input_scale)
    spec = label(spec)
    if len(model.outputs) > 1:
        return _evaluate_ensemble(model, spec, data, neighbors, batch_size)
    taps = [Tap.features(layer)] if neighbors > 0 or layer else []
    view = NetworkView(model, data.x_val, name=f"model '{spec}'", taps=taps)
    if view.num_classes != data.num_classes:
        raise KtrainError(
            f"model '{spec}' outputs {counted(view.num_classes, 'class')} but dataset '{data.name}' has "
            f"{data.num_classes}: give a model with {data.num_classes} outputs"
        )
    with phase(f"Testing {spec}"):
        test = evaluate_classifier(view, data.x_test, data.y_test, batch_size)
    scores = {"test images": len(data.y_test), "params": view.params, **{f"test {k}": v for k, v in test.items()}}
    if neighbors:
        with phase(f"kNN and mAP of {spec}'s features"):
            report = representation_report(view, data, neighbors, batch_size)
        scores.update({f"test kNN accuracy (k={neighbors})": report["knn_accuracy_cosine"], "test mAP": report["map"]})
    return scores


def _evaluate_ensemble(model, spec: str, data, neighbors: int, batch_size: int) -> dict:
    """An ensemble of specialists: the averaged ensemble, and each member on the images of its classes."""
    from ktrain.specialists import ensemble_from_model

    if neighbors:
        raise KtrainError(
            f"model '{spec}' is an ensemble of {len(model.outputs)} outputs, which has no single "
            "feature layer: drop -k, or evaluate one member saved as its own model"
        )
    ensemble = ensemble_from_model(model, data, spec)
    with phase(f"Testing {spec}"):
        return _ensemble_scores(ensemble, data, batch_size)


def _ensemble_scores(ensemble, data, batch_size: int) -> dict:
    from ktrain.classes import format_classes
    from ktrain.records import member_scores

    scores = {
        "test images": len(data.y_test),
        "params": ensemble.params,
        **{
            f"test {k}": v
            for k, v in evaluate_classifier(ensemble.averaged, data.x_test, data.y_test, batch_size).items()
        },
    }
    for member in member_scores(ensemble, data, batch_size):
        scores[f"{member['name']} [{format_classes(member['classes'])}]"] = member["test"]["accuracy"]
    return scores
