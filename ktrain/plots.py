"""Comparison plots from a results dictionary (results.json); matplotlib only, no TensorFlow.

``KT_Methods_Comparison_{accuracy,crossentropy}_vs_epoch.png`` keep the seed's names: one line per
method (mean over seeds), the baseline student, and the teacher's validation value as a flat line.
A method that does not train the class head (PKT) is drawn by the kNN accuracy of its features on
the validation split, measured each epoch; it has no cross-entropy line (the legend says so).
"""

from __future__ import annotations

import itertools
import re
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
from matplotlib.ticker import MaxNLocator  # noqa: E402

from ktrain.io import atomic_write  # noqa: E402
from ktrain.options import plain  # noqa: E402

LINESTYLES = ("--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1)))
COMPARISON = "KT_Methods_Comparison_{metric}_vs_epoch.png"


def _mean_curve(histories: list[dict], key: str) -> tuple[np.ndarray, np.ndarray] | None:
    """Mean and sample standard deviation over seeds per epoch (std 0 for one seed)."""
    curves = [history[key] for history in histories if key in history]
    if not curves:
        return None
    length = min(len(curve) for curve in curves)  # seeds may stop early at different epochs
    stacked = np.array([curve[:length] for curve in curves], dtype=np.float64)
    spread = stacked.std(axis=0, ddof=1) if len(curves) > 1 else np.zeros(length)
    return stacked.mean(axis=0), spread


def _students(results: dict) -> dict[str, list[dict]]:
    grouped = defaultdict(list)
    for entry in results["results"]:
        # A trained ensemble has no history of its own (its members have one each).
        if entry["role"] == "student" and "failed" not in entry and entry.get("history"):
            grouped[entry["name"]].append(entry)
    return grouped


def file_key(entry: dict) -> str:
    """A run's name in file names: its method key (``kd``, ``kd_temperature-2``), not the display
    name with spaces; results.json files from before the key get their name without spaces."""
    return entry.get("key") or re.sub(r"[^A-Za-z0-9._+=-]+", "_", entry["name"]).strip("_")


def save_figure(figure, path: Path) -> Path:
    """Write a PNG through a temporary file, then rename; always close the figure."""
    try:
        with atomic_write(path) as temporary:
            figure.savefig(temporary, dpi=100)
    finally:
        plt.close(figure)
    return Path(path)


def comparison_plots(results: dict, path_of: Callable[[str], Path]) -> list[Path]:
    """The two comparison figures and one validation-curves figure per method; returns the paths.
    ``path_of`` turns a file name into its path (an out folder's ``output``, which lists it in the
    manifest before it is written)."""
    teacher = next((entry for entry in results["results"] if entry["role"] == "teacher"), None)
    students = _students(results)
    if not students:
        return []  # nothing was trained with a history to draw (a trained ensemble, every run failed)
    written = []
    for metric in ("accuracy", "crossentropy"):
        figure, axes = plt.subplots(figsize=(9, 6))
        for index, (name, entries) in enumerate(students.items()):
            histories = [entry["history"] for entry in entries]
            label = name
            if entries[0].get("trains_head", True):
                curve = _mean_curve(histories, f"val_{metric}")
            elif metric == "accuracy":
                curve = _mean_curve(histories, "val_knn_accuracy")
                label = f"{name} (kNN accuracy of its features)"
            else:
                curve = None
            if curve is None:
                axes.plot(
                    [],
                    [],
                    linestyle=LINESTYLES[index % len(LINESTYLES)],
                    label=f"{name}: not shown (its class head is not trained)",
                )
                continue
            mean, spread = curve
            epochs = np.arange(1, len(mean) + 1)
            if len(entries) > 1:
                label += f" (mean ± std, {len(entries)} seeds)"
            (line,) = axes.plot(epochs, mean, linestyle=LINESTYLES[index % len(LINESTYLES)], label=label)
            if len(entries) > 1:
                axes.fill_between(epochs, mean - spread, mean + spread, color=line.get_color(), alpha=0.2)
        if teacher is not None and f"val_{metric}" in teacher.get("validation", {}):
            value = teacher["validation"][f"val_{metric}"]
            axes.axhline(value, color="black", linewidth=1.5, label=f"Teacher (validation: {value:.4f})")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs are whole numbers
        axes.set_title("KT Methods Comparison", fontsize="x-large")
        axes.set_xlabel("epoch", fontsize="large")
        axes.set_ylabel(f"validation {metric}", fontsize="large")
        axes.legend(loc="best")
        written.append(save_figure(figure, path_of(COMPARISON.format(metric=metric))))
    for name, entries in students.items():
        histories = [entry["history"] for entry in entries]
        keys = [key for key in histories[0] if key.startswith("val_")]
        figure, grid = plt.subplots(1, len(keys), figsize=(4 * len(keys), 3.6), squeeze=False)
        for axes, key in zip(grid[0], keys):
            for seed_index, history in enumerate(histories):
                axes.plot(
                    np.arange(1, len(history[key]) + 1),
                    history[key],
                    alpha=0.8,
                    label=f"seed {entries[seed_index].get('seed', seed_index)}",
                )
            axes.set_title(key)
            axes.set_xlabel("epoch")
            axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        grid[0][0].legend(loc="best")
        figure.suptitle(f"{name}: validation curves")
        figure.tight_layout()
        written.append(save_figure(figure, path_of(f"{file_key(entries[0])}_validation_curves.png")))
    return written


def sweep_heatmap(summary: list[dict], axes: tuple, path: Path) -> Path | None:
    """For a grid of two keys, one panel per method that has both: mean validation accuracy over
    seeds by (first key, second key), each cell labelled, the best point boxed. None (nothing drawn)
    for any other grid."""
    if len(axes) != 2:
        return None
    (row_key, row_values), (column_key, column_values) = axes
    panels: dict[str, dict] = defaultdict(dict)
    for row in summary:
        point = row["point"]
        if row_key in point and column_key in point and row["val_accuracy"] is not None:
            panels[row["method"]][(point[row_key], point[column_key])] = row
    if not panels:
        return None
    figure, grid = plt.subplots(
        1, len(panels), figsize=(1.2 * len(column_values) * len(panels) + 2, 0.8 * len(row_values) + 2), squeeze=False
    )
    for axes_, (method, cells) in zip(grid[0], panels.items()):
        values = np.full((len(row_values), len(column_values)), np.nan)
        for (i, row_value), (j, column_value) in itertools.product(enumerate(row_values), enumerate(column_values)):
            cell = cells.get((row_value, column_value))
            if cell is None:
                continue
            values[i, j] = cell["val_accuracy"]
            axes_.text(j, i, f"{cell['val_accuracy']:.3f}", ha="center", va="center", fontsize="small", color="w")
            if cell["best"]:
                axes_.add_patch(plt.Rectangle((j - 0.5, i - 0.5), 1, 1, fill=False, edgecolor="black", linewidth=2.5))
        image = axes_.imshow(values, cmap="viridis", aspect="auto")
        axes_.set_xticks(range(len(column_values)), [plain(value) for value in column_values])
        axes_.set_yticks(range(len(row_values)), [plain(value) for value in row_values])
        axes_.set_xlabel(column_key)
        axes_.set_ylabel(row_key)
        axes_.set_title(f"{method}: validation accuracy")
        figure.colorbar(image, ax=axes_)
    figure.tight_layout()
    return save_figure(figure, path)
