"""``ktrain sweep``: a comparison over a grid of method options, and the point best on validation.

A sweep is a :class:`~ktrain.comparison.Comparison` whose methods are the grid's points: each chosen
method once per combination of the grid values it takes (a key a method does not have leaves that
method's points alone). So every point and seed starts from the same initial student weights as the
scratch baseline, the teacher's targets are computed once for all of them (the K-view cache too),
and ``--resume`` skips the (point, seed) runs already finished.

What a sweep adds: a table by point (validation and test accuracy, mean ± std over seeds), the point
best on **validation** (the test split is shown, never used to choose), a flat CSV with one row per
run and, for a grid of two keys, a heatmap of validation accuracy.

The summary and the CSV import no TensorFlow (``ktrain report`` re-renders a sweep with them); the
grid's parsing imports the methods where it needs them.
"""

from __future__ import annotations

import csv
import io
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ktrain.errors import KtrainError
from ktrain.options import Option, plain
from ktrain.report import mean_std

if TYPE_CHECKING:
    from ktrain.methods.selection import MethodSpec

CSV_NAME = "sweep.csv"
HEATMAP_NAME = "sweep_heatmap.png"
TRUE, FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


@dataclass(frozen=True)
class Grid:
    """The swept options, in the order given: ``((key, (value, ...)), ...)``, values converted."""

    axes: tuple[tuple[str, tuple[Any, ...]], ...]

    @property
    def keys(self) -> tuple[str, ...]:
        return tuple(key for key, _ in self.axes)

    def points(self, method: str) -> list[tuple[tuple[str, Any], ...]]:
        """Every combination of the values of the keys ``method`` has (one empty point if none)."""
        from ktrain.methods.base import get_method

        own = [(key, values) for key, values in self.axes if key in get_method(method).Options.specs()]
        keys = [key for key, _ in own]
        return [tuple(zip(keys, combination)) for combination in itertools.product(*(values for _, values in own))]

    def record(self) -> dict[str, list]:
        return {key: list(values) for key, values in self.axes}


def parse_grid(grid: Iterable[str] | Mapping[str, Iterable], methods: Iterable[str], given: Mapping[str, Any]) -> Grid:
    """``grid`` (``["temperature=1,2,4", ...]``, or ``{"temperature": [1, 2, 4]}`` from Python) as a
    :class:`Grid` for ``methods``; a KtrainError names a key no chosen method has, a value of the
    wrong type or range, an empty grid, and a key also set as a fixed option."""
    from ktrain.methods.base import get_method

    methods = [get_method(name).name for name in methods]
    specs: dict[str, Option] = {}
    for name in methods:
        specs.update(get_method(name).Options.specs())
    if isinstance(grid, str):
        grid = [grid]
    entries = list(grid.items()) if isinstance(grid, Mapping) else [_split_entry(entry) for entry in grid]
    if not entries:
        raise KtrainError("the grid is empty: give at least one --grid KEY=V1,V2 (say --grid temperature=2,4,8)")
    axes: list[tuple[str, tuple[Any, ...]]] = []
    for raw_key, raw_values in entries:
        key = _option_name(str(raw_key), specs, methods)
        if key in dict(axes):
            raise KtrainError(f"--grid {key} is given twice: give each key once, with all its values")
        if key in given:
            raise KtrainError(f"{key} is both swept (--grid) and fixed ({specs[key].flags[0]}): drop one of them")
        values = tuple(_convert(specs[key], value) for value in _values(key, raw_values))
        shown = [plain(value) for value in values]
        repeated = sorted({text for text in shown if shown.count(text) > 1})
        if repeated:
            raise KtrainError(f"--grid {key} lists {repeated[0]} twice: give each value once")
        axes.append((key, values))
    return Grid(tuple(axes))


def _split_entry(entry: str) -> tuple[str, list[str]]:
    key, equals, values = str(entry).partition("=")
    if not equals or not key.strip():
        raise KtrainError(f"--grid '{entry}' is not KEY=V1,V2,...: write it as, say, --grid temperature=2,4,8")
    items = [value.strip() for value in values.split(",")]
    if values.strip() and not all(items):
        raise KtrainError(f"--grid '{entry}' has an empty value: remove the extra comma")
    return key.strip(), [item for item in items if item]


def _values(key: str, values) -> list:
    if values is None:
        values = []
    values = [values] if isinstance(values, str | int | float | bool) else list(values)
    if not values:
        raise KtrainError(f"--grid {key} lists no values: give one or more, say --grid {key}=V1,V2")
    return values


def _option_name(key: str, specs: Mapping[str, Option], methods: list[str]) -> str:
    """The option ``key`` names (its name, with - or _, or one of its flags), among ``specs``."""
    wanted = key.lstrip("-").replace("-", "_")
    for name, spec in specs.items():
        if wanted == name or wanted in (flag.lstrip("-").replace("-", "_") for flag in spec.flags):
            return name
    raise KtrainError(
        f"--grid key '{key}' is not an option of {', '.join(methods)}: use one of {', '.join(specs) or 'none'}"
    )


def _convert(spec: Option, value: Any) -> Any:
    """A grid value by the option's kind (a bool from true/false, yes/no, on/off, 1/0)."""
    if spec.kind is bool and isinstance(value, int) and not isinstance(value, bool) and value in (0, 1):
        value = bool(value)
    if spec.kind is bool and isinstance(value, str):
        lowered = value.lower()
        if lowered not in TRUE + FALSE:
            raise KtrainError(f"--grid {spec.name} value '{value}' is not true or false: give true or false")
        value = lowered in TRUE
    return spec.convert(value)


def sweep_specs(
    methods: Iterable[str], grid: Grid, given: Mapping[str, Any], max_points: int
) -> tuple[MethodSpec, ...]:
    """One method spec per (method, point); every value checked by its method (a KtrainError names a
    value out of range); more than ``max_points`` runs per seed is refused."""
    from ktrain.methods.base import get_method
    from ktrain.methods.selection import MethodSpec

    if not isinstance(max_points, int) or max_points < 1:
        raise KtrainError(f"--max-points is {max_points}: give 1 or more")
    names = [get_method(name).name for name in methods]
    count = sum(len(grid.points(name)) for name in names)
    if count > max_points:
        raise KtrainError(
            f"the grid has {count} points, over --max-points {max_points}: shrink the grid or raise --max-points"
        )
    specs = []
    for name in names:
        own = {key: value for key, value in given.items() if key in get_method(name).Options.specs()}
        for point in grid.points(name):
            spec = MethodSpec.of(name, {**own, **dict(point)})
            specs.append(MethodSpec(spec.cls, spec.options, spec.given, point))
    return tuple(specs)


def refuse_fresh_views(run) -> None:
    """Under ``--augment`` without ``--views`` the teacher would run online for every point and seed:
    a sweep asks for K fixed views instead, so one teacher pass serves them all."""
    views = run.data.sample_views
    if views.augment and views.count is None and run.engine.targets != "online":
        raise KtrainError(
            f"sweep with --augment {views.augment} but no --views: give --views K (8, say) so one teacher pass "
            "serves every point and seed, or --targets online to run the teacher in every run"
        )


# -- the summary ---------------------------------------------------------------------------------------
def kept_val_accuracy(entry: Mapping) -> float | None:
    """The validation accuracy of the weights a run kept: the best epoch's when they were restored,
    else the last epoch's; None for a method that does not train the class head, or a failed run."""
    values = (entry.get("history") or {}).get("val_accuracy")
    if not values or not entry.get("trains_head", True):
        return None
    if entry.get("restored_best") and entry.get("best_epoch"):
        return float(values[entry["best_epoch"] - 1])
    return float(values[-1])


def _spread(values: list[float]) -> tuple[float | None, float | None]:
    """:func:`ktrain.report.mean_std` of ``values``; None and None for no values (every run failed)."""
    return mean_std(values) if values else (None, None)


def run_rows(entries: Iterable[Mapping]) -> list[dict]:
    """One flat row per student run of results.json's entries: name, method, grid point, seed,
    validation accuracy of the kept weights, test accuracy and cross-entropy, epochs, and why it
    failed (what sweep.csv holds, and what the summary is computed from)."""
    rows = []
    for entry in entries:
        if entry.get("role") != "student":
            continue
        test = entry.get("test") or {}
        rows.append(
            {
                "name": entry["name"],
                "method": entry["method"],
                "point": dict(entry.get("point") or {}),
                "seed": entry.get("seed"),
                "val_accuracy": kept_val_accuracy(entry),
                "test_accuracy": test.get("accuracy"),
                "test_crossentropy": test.get("crossentropy"),
                "epochs_run": entry.get("epochs_run"),
                "failed": entry.get("failed"),
            }
        )
    return rows


def summarize(runs: Iterable[Mapping], baseline: str | None) -> list[dict]:
    """One row per point (and the scratch baseline) of ``runs`` (:func:`run_rows`), in run order:
    its method, grid values, seeds, and validation and test accuracy as mean and std over seeds.
    The row with the highest mean validation accuracy among the transfer points (every method but
    ``baseline``, the from-scratch one) has ``best: True``."""
    rows: dict[str, dict] = {}
    for run in runs:
        row = rows.setdefault(
            run["name"],
            {
                "name": run["name"],
                "method": run["method"],
                "point": dict(run["point"]),
                "val": [],
                "test": [],
                "failed": 0,
            },
        )
        if run.get("failed") or run["val_accuracy"] is None:
            row["failed"] += bool(run.get("failed"))
            continue
        row["val"].append(run["val_accuracy"])
        row["test"].append(run["test_accuracy"])
    summary = []
    for row in rows.values():
        val_mean, val_std = _spread(row.pop("val"))
        test_values = row.pop("test")
        test_mean, test_std = _spread(test_values)
        summary.append(
            row
            | {
                "seeds": len(test_values),
                "val_accuracy": val_mean,
                "val_accuracy_std": val_std,
                "test_accuracy": test_mean,
                "test_accuracy_std": test_std,
                "best": False,
            }
        )
    candidates = [row for row in summary if row["method"] != baseline and row["val_accuracy"] is not None]
    if candidates:
        max(candidates, key=lambda row: row["val_accuracy"])["best"] = True  # the first of equals
    return summary


def best_point(summary: Iterable[Mapping]) -> Mapping | None:
    return next((row for row in summary if row["best"]), None)


# -- the files -----------------------------------------------------------------------------------------
CSV_COLUMNS = ("seed", "val_accuracy", "test_accuracy", "test_crossentropy", "epochs_run", "failed")


def csv_text(runs: Iterable[Mapping], keys: Iterable[str]) -> str:
    """``runs`` (:func:`run_rows`) as CSV: name, method, each grid key (empty where the method has
    none), then seed, scores and the reason of a failed run; empty cells for what a run lacks."""
    keys = list(keys)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["name", "method", *keys, *CSV_COLUMNS])
    for run in runs:
        cells = [run.get(column) for column in CSV_COLUMNS]
        point = [run["point"].get(key) for key in keys]
        writer.writerow([run["name"], run["method"], *("" if cell is None else cell for cell in point + cells)])
    return buffer.getvalue()
