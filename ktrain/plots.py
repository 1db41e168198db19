"""Comparison plots from a results dictionary (results.json); matplotlib only, no TensorFlow.

``KT_Methods_Comparison_{accuracy,crossentropy}_vs_epoch.png`` keep the seed's names: one line per
method (mean over seeds), the baseline student, and the teacher's validation value as a flat line.
A method that does not train the class head (PKT) is drawn by the kNN accuracy of its features on
the validation split, measured each epoch; it has no cross-entropy line (the legend says so).
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from ktrain.io import atomic_write  # noqa: E402

LINESTYLES = ("--", "-.", ":", (0, (5, 1)), (0, (3, 1, 1, 1)))
COMPARISON = "KT_Methods_Comparison_{metric}_vs_epoch.png"


def _mean_curve(histories: list[dict], key: str) -> np.ndarray | None:
    curves = [history[key] for history in histories if key in history]
    if not curves:
        return None
    length = min(len(curve) for curve in curves)  # seeds may stop early at different epochs
    return np.mean([curve[:length] for curve in curves], axis=0)


def _students(results: dict) -> dict[str, list[dict]]:
    grouped = defaultdict(list)
    for entry in results["results"]:
        # A trained ensemble has no history of its own (its members have one each).
        if entry["role"] == "student" and "failed" not in entry and entry.get("history"):
            grouped[entry["name"]].append(entry)
    return grouped


def save_figure(figure, path: Path) -> Path:
    """Write a PNG through a temporary file, then rename; always close the figure."""
    try:
        with atomic_write(path) as temporary:
            figure.savefig(temporary, dpi=100)
    finally:
        plt.close(figure)
    return Path(path)


def comparison_plots(results: dict, folder: Path, prefix: str = "") -> list[Path]:
    """The two comparison figures and one validation-curves figure per method; returns the paths."""
    folder = Path(folder)
    teacher = next((entry for entry in results["results"] if entry["role"] == "teacher"), None)
    students = _students(results)
    if not students:
        return []  # nothing was trained with a history to draw (a trained ensemble, every run failed)
    written = []
    for metric in ("accuracy", "crossentropy"):
        figure, axes = plt.subplots(figsize=(9, 6))
        longest = 1
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
            epochs = np.arange(1, len(curve) + 1)
            longest = max(longest, len(curve))
            axes.plot(epochs, curve, linestyle=LINESTYLES[index % len(LINESTYLES)], label=label)
        if teacher is not None and f"val_{metric}" in teacher.get("validation", {}):
            axes.axhline(
                teacher["validation"][f"val_{metric}"], color="black", linewidth=1.5, label="Teacher (validation)"
            )
        axes.set_title("KT Methods Comparison", fontsize="x-large")
        axes.set_xlabel("epoch", fontsize="large")
        axes.set_ylabel(f"validation {metric}", fontsize="large")
        axes.legend(loc="best")
        written.append(save_figure(figure, folder / f"{prefix}{COMPARISON.format(metric=metric)}"))
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
        grid[0][0].legend(loc="best")
        figure.suptitle(f"{name}: validation curves")
        figure.tight_layout()
        written.append(save_figure(figure, folder / f"{prefix}{name}_validation_curves.png"))
    return written
