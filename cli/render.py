"""Rich rendering of engine progress and of the final results table."""

import time

from rich import box
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from ktrain.listener import Listener
from ktrain.options import plain

LIVE_KEYS = (("loss", "loss"), ("accuracy", "acc"), ("val_accuracy", "val_acc"))


class RichProgress(Listener):
    """A progress bar over the epochs with the live loss and accuracy; ``verbosity`` 0 shows nothing.

    Without a terminal (a log file, CI, nohup) a bar would be drawn once, at the end, cut to 80
    columns: there each epoch and each phase is one plain, complete line instead."""

    def __init__(self, console: Console, verbosity: int = 1):
        self.console = console
        self.verbosity = verbosity
        self.progress: Progress | None = None
        self.plain = not console.is_terminal
        self.started = 0.0

    def _line(self, text: str) -> None:
        self.console.print(text, highlight=False, soft_wrap=True, markup=False)

    def on_train_begin(self, title, epochs, steps_per_epoch):
        self.on_train_end()  # one display at a time: any other still live ends here
        if self.verbosity <= 0:
            return
        self.title, self.epochs = title, epochs
        if self.plain:
            return
        self.steps_per_epoch = steps_per_epoch
        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("{task.fields[metrics]}"),
            TimeElapsedColumn(),
            TimeRemainingColumn(),
            console=self.console,
        )
        self.progress.start()
        self.task = self.progress.add_task(title, total=epochs, metrics="")

    def on_steps(self, epoch, steps_done, logs):
        if self.progress is None:
            return
        # Completed counts epochs (shown as M/N), with the fraction of the current one.
        completed = epoch - 1 + steps_done / self.steps_per_epoch
        self.progress.update(self.task, completed=completed, metrics=_metrics(logs))

    def on_epoch_end(self, epoch, logs):
        if self.plain and self.verbosity > 0:
            seconds = logs.get("epoch_seconds")
            timing = f"  {seconds:.1f} s" if seconds is not None else ""
            self._line(f"{self.title}  epoch {epoch}/{self.epochs}  {_metrics(logs)}  lr {logs['lr']:.3g}{timing}")
            return
        if self.progress is None:
            return
        self.progress.update(self.task, metrics=_metrics(logs))
        if self.verbosity >= 2:
            self.progress.console.print(f"epoch {epoch:>4}  {_metrics(logs)}  lr {logs['lr']:.3g}")

    def on_train_end(self):
        if self.progress is not None:
            self.progress.stop()
            self.progress = None

    def on_task_begin(self, title, total):
        """A bar over ``total`` batches, or for a phase of unknown length (0) a spinner; both with
        the elapsed time."""
        self.on_train_end()  # one display at a time
        if self.verbosity <= 0:
            return
        if self.plain:  # one line, when it ends
            self.title, self.started, self.total = title, time.perf_counter(), total
            return
        if total:
            columns = (
                BarColumn(),
                MofNCompleteColumn(),
                TextColumn("batches"),
                TimeElapsedColumn(),
                TimeRemainingColumn(),
            )
        else:
            columns = (SpinnerColumn(), TimeElapsedColumn())
        self.progress = Progress(
            TextColumn("[bold]{task.description}"), *columns, console=self.console, transient=not total
        )
        self.progress.start()
        self.task = self.progress.add_task(title, total=total or None)  # None: a spinner, elapsed time running

    def on_task_advance(self, done):
        if self.progress is not None:
            self.progress.update(self.task, completed=done)

    def on_task_failed(self):
        self.on_train_end()  # the error that follows says what happened; no timing line

    def on_task_end(self):
        if self.plain and self.verbosity > 0:
            batches = f" ({self.total} batches)" if self.total else ""
            self._line(f"{self.title}{batches}: {time.perf_counter() - self.started:.1f} s")
        self.on_train_end()


def _metrics(logs: dict) -> str:
    return "  ".join(f"{label} {logs[key]:.4g}" for key, label in LIVE_KEYS if key in logs)


def _value(row: dict, key: str, digits: int = 4) -> str:
    if key not in row:
        return ""
    if row["runs"] > 1:
        return f"{row[key]:.3f}±" + f"{row[f'{key}_std']:.3f}".removeprefix("0")  # 0.306±.004
    return f"{row[key]:.{digits}f}"


def results_table(results: dict) -> Table:
    """Teacher and students side by side: test accuracy, cross-entropy (CE), kNN accuracy and mAP of the
    features (PKT runs), epochs run, training time (mean±std over seeds); parameters and the T/S
    ratio in the caption."""
    from ktrain.report import summarize

    rows = summarize(results)
    seeds = max(max(row["runs"] for row in rows), 1)
    title = f"Test split of {results['dataset']['name']} ({results['dataset']['sizes']['test']} images)"
    if seeds > 1:
        title += f", mean±std over {seeds} seeds"
    teacher = next((row for row in rows if row["role"] == "teacher"), None)
    student = next((row for row in rows if row["role"] == "student"), None)
    caption = None
    if student is not None:
        role = "model" if results.get("command") == "train" else "student"
        caption = f"parameters: {role} {student['params']:,}"
        if teacher is not None:
            caption += f", teacher {teacher['params']:,}, T/S {teacher['params'] / student['params']:.1f}"
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, title=title, caption=caption)
    table.add_column("model", no_wrap=True)
    with_features = any("knn_accuracy" in row for row in rows)
    columns = ["acc", "CE"] + (["kNN", "mAP"] if with_features else []) + ["epochs", "time"]
    for column in columns:
        table.add_column(column, justify="right", no_wrap=True)
    for row in rows:
        label = row["name"] if len(row["name"]) <= 16 else row["method"].upper()  # e.g. KD, PKT, PKT+KD
        if row["runs"] == 0:
            table.add_row(label, "failed", *[""] * (len(columns) - 1))
            continue
        cells = [label, _value(row, "accuracy"), _value(row, "crossentropy")]
        if with_features:
            cells += [_value(row, "knn_accuracy"), _value(row, "map")]
        cells += [
            f"{row['epochs']:.0f}" if "epochs" in row else "",
            f"{row['seconds']:.0f} s" if "seconds" in row else "",
        ]
        table.add_row(*cells)
        if "untrained_knn_accuracy" in row:
            table.add_row(
                "  untrained", "", "", _value(row, "untrained_knn_accuracy"), _value(row, "untrained_map"), "", ""
            )
    return table


def failures(results: dict) -> list[str]:
    """One line per model whose training failed (a non-finite loss), for under the table."""
    from ktrain.report import summarize

    return [
        f"{row['name']}: {row['failures']} run(s) failed: {row['failed']}"
        for row in summarize(results)
        if "failed" in row
    ]


def export_table(reports: list[dict]) -> Table:
    """TFLite exports: file size, Keras and TFLite test accuracy, agreement, median latency; without
    a dataset (nothing was checked) the size alone."""
    checked = any("tflite_accuracy" in report for report in reports)
    table = Table(box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, title="TFLite export")
    columns = ("mode", "size", "Keras acc", "TFLite acc", "agreement", "latency") if checked else ("mode", "size")
    for column in columns:
        table.add_column(column, justify="left" if column == "mode" else "right", no_wrap=True)
    for report in reports:
        cells = [report["mode"], f"{report['bytes'] / 1024:.1f} KiB"]
        if "tflite_accuracy" in report:
            cells += [
                f"{report['keras_accuracy']:.4f}",
                f"{report['tflite_accuracy']:.4f}",
                f"{report['agreement']:.4f}",
                f"{report['median_latency_ms']:.3f} ms",
            ]
        elif checked:
            cells += ["", "", "", ""]
        table.add_row(*cells)
    return table


def member_lines(results: dict) -> list[str]:
    """One line per member of an ensemble (teacher or trained model): its accuracy on its own classes."""
    from ktrain.classes import format_classes

    lines = []
    for entry in results["results"]:
        for member in entry.get("members") or []:
            lines.append(
                f"  {entry['name']} member {member['name']} [{format_classes(member['classes'])}]: "
                f"acc {member['test']['accuracy']:.4f} on its {member['test_images']} test images"
            )
    return lines


def sweep_table(results: dict) -> Table:
    """One row per point of a sweep (and the scratch student): its grid values, validation and test
    accuracy (mean±std over seeds); the point best on validation is marked. The test column is
    shown, never used to choose."""
    sweep = results["sweep"]
    keys = list(sweep["grid"])
    title = f"Sweep on {results['dataset']['name']}: accuracy, mean±std over seeds"
    table = Table(
        box=box.SIMPLE_HEAD,
        pad_edge=False,
        collapse_padding=True,
        title=title,
        caption="* best on validation (the test split never chooses)",
    )
    table.add_column("method", no_wrap=True)
    for key in keys:
        table.add_column(key, justify="right", no_wrap=True)
    for column in ("validation", "test", "seeds", ""):
        table.add_column(column, justify="right", no_wrap=True)
    for row in sweep["points"]:
        label = row["method"] if row["point"] else row["name"]  # the scratch student has no grid values
        values = [plain(row["point"][key]) if key in row["point"] else "—" for key in keys]
        seeds = str(row["seeds"]) + (f" ({row['failed']} failed)" if row["failed"] else "")
        if row["seeds"] == 0:
            table.add_row(label, *values, "failed" if row["failed"] else "no head", "", seeds, "")
            continue
        scores = [_spread(row, "val_accuracy"), _spread(row, "test_accuracy")]
        mark = "*" if row["best"] else ""
        table.add_row(label, *values, *scores, seeds, mark, style="bold" if row["best"] else None)
    return table


def _spread(row: dict, key: str) -> str:
    if row["seeds"] > 1:
        return f"{row[key]:.3f}±" + f"{row[f'{key}_std']:.3f}".removeprefix("0")
    return f"{row[key]:.4f}"


def zoo_table(rows: list[dict], dataset: str, image_shape: tuple[int, ...], num_classes: int) -> Table:
    """``ktrain zoo``: name, suggested role, parameters and input as built for ``dataset``'s images
    and classes, and what it is."""
    shape = "×".join(map(str, image_shape))
    table = Table(
        box=box.SIMPLE_HEAD, pad_edge=False, title=f"Built for {dataset} ({shape} images, {num_classes} classes)"
    )
    table.add_column("model", no_wrap=True)
    table.add_column("role")
    table.add_column("parameters", justify="right")
    table.add_column("about")
    for row in rows:
        params = f"{row['params']:,}" if row["params"] is not None else "—"
        about = row["about"] if row["params"] is not None else f"{row['about']} Does not fit: {row['unfit']}"
        table.add_row(row["name"], row["role"], params, about)
    return table
