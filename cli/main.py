"""The ``ktrain`` command line: parses options, renders with Rich, and calls the library.

A thin layer over the Python API (``ktrain.api``): every command passes its arguments to the API
function that does the work and renders what it returns. No training logic and no defaults live
here: the settings, their flags, help and defaults come from ``ktrain.settings`` and the API's
signatures, and the method options and switches from the methods' own declarations
(cli/options.py). No method is named here.
"""

import functools
import os
import shlex
import sys
from typing import Annotated

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")  # silence TensorFlow's C++ start-up chatter

import typer
from rich.console import Console

from ktrain import api  # no TensorFlow until a command runs
from ktrain.cli import REPORTED, interrupted
from ktrain.cli.helptext import KtrainCommand
from ktrain.cli.options import (
    KtrainGroup,
    Verbosity,
    choice_metavar,
    completer,
    set_active_command,
    training_command,
)
from ktrain.cli.options import quiet_tensorflow_import as _quiet_tensorflow_import
from ktrain.cli.render import (
    RichProgress,
    export_table,
    failures,
    member_lines,
    results_table,
    sweep_table,
    zoo_table,
)
from ktrain.errors import KtrainError, first_line, path_error
from ktrain.settings import CHOICES

app = typer.Typer(
    cls=KtrainGroup,
    help="Transfer knowledge from a trained teacher network to a small student.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
console = Console()
errors = Console(stderr=True, markup=False, emoji=False)  # messages quote user values as they are


# Arguments and options shared by several commands, declared once.
Teacher = Annotated[str, typer.Argument(help="Trained teacher: a .keras/.h5 file or zoo:NAME.")]
Student = Annotated[str, typer.Argument(help="Student: a .keras/.h5 file or zoo:NAME.")]
Dataset = Annotated[str, typer.Argument(help="digits, a TFDS name (mnist, cifar10, ...) or an .npz file.")]
Methods = Annotated[
    list[str] | None,
    typer.Option(
        "-m",
        "--method",
        help="Method to run, repeatable or comma-separated (see 'ktrain methods').",
        rich_help_panel="Method",
    ),
]


def _specialists():
    from ktrain.cli.options import setting_annotation
    from ktrain.settings import SETTINGS

    return setting_annotation(SETTINGS["specialists"])


Specialists = _specialists()


def _version(value: bool) -> None:
    if value:
        from ktrain import version_line

        console.print(version_line(), highlight=False)
        raise typer.Exit()


@app.callback()
def _options(
    version: Annotated[
        bool,
        typer.Option("--version", help="Print the distribution name and version, then exit.", callback=_version),
    ] = False,
):
    """Transfer knowledge from a trained teacher network to a small student."""


def user_errors(command):
    """Turn a KtrainError, or an OSError for a path, into ``error: <message>`` on one line and exit
    status 2."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except (KtrainError, OSError) as exc:  # an OSError no writer turned into a line: a path's fault
            message = exc if isinstance(exc, KtrainError) else path_error(exc)
            errors.print(f"error: {message}", highlight=False, soft_wrap=True, markup=False)
            raise typer.Exit(2) from None
        except Exception as exc:
            if not _is_a(exc, "ResourceExhaustedError"):  # TensorFlow's out of memory; no TF import here
                raise
            errors.print(
                f"error: out of memory ({first_line(exc)}): lower the batch size (-bs), the views (--views) or "
                "the image size; checkpoints written before are intact",
                highlight=False,
                soft_wrap=True,
                markup=False,
            )
            raise typer.Exit(2) from None

    return wrapper


def _split(items: list[str] | None) -> tuple[str, ...] | None:
    """``-m a -m b,c`` as ``(a, b, c)``; None when the option was not given."""
    if items is None:
        return None
    return tuple(part.strip() for item in items for part in item.split(",") if part.strip())


def _execute(command: str, options: dict, given: dict, switches: list, verbosity: int, **arguments):
    """Run a training command through the Python API, with Rich progress; returns its result."""
    _quiet_tensorflow_import()
    listener = RichProgress(console, verbosity)
    return _interruptible(
        lambda: api.run_command(
            command, switches=switches, listener=listener, options={**options, **given}, **arguments
        )
    )


def _interruptible(run):
    """Ctrl-C during training: the engine checkpoints the epoch so far; say how to go on, exit 130."""
    from ktrain.engine import Interrupted

    try:
        return run()
    except Interrupted as exc:
        if exc.epoch is None and exc.checkpoint_dir is None:
            interrupted()
        if exc.epoch is None:
            where = f"interrupted outside a training epoch; the checkpoints so far are in {exc.checkpoint_dir}"
            errors.print(f"{where}. To continue: {_again()}", highlight=False, soft_wrap=True, markup=False)
            REPORTED[0] = True
            raise typer.Exit(130) from None
        where = f"checkpoint saved in {exc.checkpoint_dir}" if exc.checkpoint_dir else "no checkpoint (compare)"
        errors.print(
            f"interrupted at epoch {exc.epoch}, step {exc.step}; {where}. To continue: {_again()}",
            highlight=False,
            soft_wrap=True,
            markup=False,
        )
        REPORTED[0] = True
        raise typer.Exit(130) from None


def _again() -> str:
    """The command that continues an interrupted run."""
    again = "--resume" in sys.argv or sys.argv[1:2] == ["demo"]  # a demo starts again
    words = [word for word in sys.argv[1:] if again or word != "--overwrite"]  # what it overwrote is gone
    return shlex.join(["ktrain", *words, *([] if again else ["--resume"])])  # pasted into a shell as it is


def _show_single(result) -> None:
    results = result.record
    _print_results(results)
    saved = result.entry.get("saved_to")
    if saved:
        role = "model" if results.get("command") == "train" else "student"
        console.print(f"{role} saved to {saved}", highlight=False)
    if results.get("export"):
        console.print(export_table([results["export"]]))


@app.command(cls=KtrainCommand)
@training_command
@user_errors
def train(
    model: Annotated[str, typer.Argument(help="Model to train: a .keras/.h5 file or zoo:NAME.")],
    dataset: Dataset,
    command: str = None,
    options: dict = None,
    given: dict = None,
    switches: list = None,
    verbosity: int = 1,
):
    """Train MODEL on DATASET with labels only (to make a teacher, a specialist, or a from-scratch baseline).

    A model with several outputs (zoo:pyramid_ensemble) is an ensemble: each output is trained on its own classes."""
    _show_single(_execute(command, options, given, switches, verbosity, student=model, data=dataset))


@app.command(cls=KtrainCommand)
@training_command
@user_errors
def distill(
    teacher: Teacher,
    student: Student,
    dataset: Dataset,
    method: Methods = None,
    command: str = None,
    options: dict = None,
    given: dict = None,
    switches: list = None,
    verbosity: int = 1,
):
    """Distill TEACHER into STUDENT on DATASET (default: KD, T²·KL(teacher ‖ student) + λ·CE).

    With an ensemble teacher (several outputs, or --specialist members) KD learns from the averaged
    ensemble."""
    names = _split(method)
    if names is not None and len(names) != 1:
        raise KtrainError(f"distill runs one method, not {len(names)} ({', '.join(names)}): use compare for several")
    result = _execute(
        command, options, given, switches, verbosity, student=student, data=dataset, teacher=teacher, methods=names
    )
    _show_single(result)


@app.command(cls=KtrainCommand)
@training_command
@user_errors
def pkt(
    teacher: Teacher,
    student: Student,
    dataset: Dataset,
    command: str = None,
    options: dict = None,
    given: dict = None,
    switches: list = None,
    verbosity: int = 1,
):
    """Transfer the geometry of TEACHER's features into STUDENT with PKT (optionally plus KD)."""
    _show_single(_execute(command, options, given, switches, verbosity, student=student, data=dataset, teacher=teacher))


@app.command(cls=KtrainCommand)
@training_command
@user_errors
def compare(
    teacher: Teacher,
    student: Student,
    dataset: Dataset,
    method: Methods = None,
    omit_results: Annotated[
        bool,
        typer.Option(
            "-or",
            "--omit-results",
            help="Write no results.json, results.pkl, log or plots.",
            rich_help_panel="Outputs",
        ),
    ] = False,
    command: str = None,
    options: dict = None,
    given: dict = None,
    switches: list = None,
    verbosity: int = 1,
):
    """Compare transfer methods on one TEACHER/STUDENT pair: table, results.json/.pkl, log and plots.

    With an ensemble teacher (--specialist) the methods that need one teacher model are left out of the
    default set, and KD learns from the averaged ensemble."""
    options = {**options, "write_results": not omit_results}
    result = _execute(
        command,
        options,
        given,
        switches,
        verbosity,
        student=student,
        data=dataset,
        teacher=teacher,
        methods=_split(method),
    )
    _show_comparison(result.record, options["out_folder"], omit_results)


@app.command(cls=KtrainCommand)
@training_command
@user_errors
def sweep(
    teacher: Teacher,
    student: Student,
    dataset: Dataset,
    method: Methods = None,
    grid: Annotated[
        list[str] | None,
        typer.Option(
            "--grid",
            help="KEY=V1,V2,...: a method option and its values, repeatable (see 'ktrain methods').",
            rich_help_panel="Method",
        ),
    ] = None,
    max_points: Annotated[
        int,
        typer.Option("--max-points", help="Refuse a larger grid.", rich_help_panel="Method"),
    ] = api.default(api.sweep, "max_points"),
    command: str = None,
    options: dict = None,
    given: dict = None,
    switches: list = None,
    verbosity: int = 1,
):
    """Run METHODS at every point of a grid of their options on one TEACHER/STUDENT pair, beside a scratch student.

    The point best on validation is marked (the test split is shown, never used to choose). Writes
    results.json, sweep.csv and, for two keys, sweep_heatmap.png; --resume skips finished points."""
    _quiet_tensorflow_import()
    listener = RichProgress(console, verbosity)
    result = _interruptible(
        lambda: api.sweep(
            teacher,
            student,
            dataset,
            _split(method),
            grid or (),
            max_points=max_points,
            listener=listener,
            **{**options, **given},
        )
    )
    console.print(sweep_table(result.record))
    best = result.best_point
    if best is not None:
        console.print(f"best on validation: {best['name']}", highlight=False)
    console.print(f"outputs in {options['out_folder']}", highlight=False)


def _untrained_teacher_note(results: dict) -> None:
    """A zoo: teacher is freshly initialised: say so under the table, with the way to train it."""
    teacher = next((entry for entry in results["results"] if entry["role"] == "teacher"), None)
    if teacher is None or not str(teacher.get("source", "")).startswith("zoo:") or teacher.get("epochs_run"):
        return
    console.print(
        f"note: the teacher {teacher['source']} was untrained (freshly initialised): train it first with "
        f"'ktrain train {teacher['source']} DATASET', or add --teacher-epochs N to compare",
        style="yellow",
        highlight=False,
    )


def _print_results(results: dict) -> None:
    """The results table and what belongs under it: ensemble members, failed runs, an untrained-teacher note."""
    console.print(results_table(results))
    for line in member_lines(results):
        console.print(line, highlight=False)
    for line in failures(results):
        console.print(line, highlight=False, style="red")
    _untrained_teacher_note(results)


def _show_comparison(results: dict, out_folder: str, omitted: bool) -> None:
    _print_results(results)
    if results.get("export"):
        console.print(export_table([results["export"]]))
    if results.get("best_student"):
        console.print(f"best student on validation: {results['best_student']}")
    console.print("no result files written (-or)" if omitted else f"outputs in {out_folder}")


@app.command(cls=KtrainCommand)
@user_errors
def demo(
    out_folder: Annotated[
        str | None,
        typer.Option(
            "-out",
            "--out-folder",
            help=f"Folder for the outputs (default {api.demo_folder()}, with -sl {api.demo_folder('pyramid')}).",
            show_default=False,
        ),
    ] = None,
    epochs: Annotated[
        int | None,
        typer.Option(
            "-e",
            "--epochs",
            help=f"Epochs of each student (default {api.demo_epochs()}); the teacher trains at most as many.",
            show_default=False,
        ),
    ] = None,
    seeds: Annotated[
        int | None, typer.Option("--seeds", help="Seeds per student (default: the job's).", show_default=False)
    ] = None,
    seed: Annotated[int, typer.Option("-seed", "--seed", help="First random seed.")] = api.default(api.demo, "seed"),
    verbosity: Verbosity = 1,
    overwrite: Annotated[
        bool, typer.Option("--overwrite", help="Start again in a folder holding another command's run.")
    ] = False,
    selective: Annotated[
        bool,
        typer.Option(
            "-sl",
            "--selective-learning",
            help="Train zoo:pyramid_ensemble (a generalist and two specialists); compare ensemble and selective KD.",
            rich_help_panel="Method",
        ),
    ] = False,
):
    """The seed's job, offline on the built-in digits: train a teacher, then compare the seed's three methods and a
    scratch student. It prints its settings first, and why."""
    job = "pyramid" if selective else "seed"
    out_folder = out_folder or api.demo_folder(job)
    _quiet_tensorflow_import()
    for line in api.demo_settings(job, epochs, seeds):
        console.print(line, highlight=False)
    listener = RichProgress(console, verbosity)
    result = _interruptible(
        lambda: api.demo(
            out_folder, job=job, epochs=epochs, seed=seed, seeds=seeds, overwrite=overwrite, listener=listener
        )
    )
    _show_comparison(result.record, out_folder, False)


@app.command(cls=KtrainCommand)
@user_errors
def report(
    run_dir: Annotated[str, typer.Argument(help="An out folder holding results.json.")],
    prefix: Annotated[str, typer.Option("-res", "--results-name-prefix", help="The run's file-name prefix.")] = "",
    plots: Annotated[
        bool,
        typer.Option("--plots/--no-plots", help="Redraw the comparison plots into RUN_DIR.", rich_help_panel="Outputs"),
    ] = True,
):
    """Re-render the results table (and plots) of a finished run from its results.json, without TensorFlow."""
    import json
    from pathlib import Path

    name = f"{prefix}_results.json" if prefix else "results.json"
    path = Path(run_dir) / name
    if Path(run_dir).is_file():
        raise KtrainError(f"'{run_dir}' is a file: give the out folder of a run, the folder that holds its {name}")
    try:
        results = json.loads(path.read_text(encoding="utf-8"))
        results["results"]
    except FileNotFoundError:
        raise KtrainError(f"no {name} in '{run_dir}': give the out folder of a run (and its -res prefix)") from None
    except IsADirectoryError:
        raise KtrainError(f"'{path}' is a folder, not a run's {name}: give the out folder of a run") from None
    except (ValueError, KeyError, TypeError, RecursionError) as exc:
        reason = "nested too deeply" if isinstance(exc, RecursionError) else exc
        raise KtrainError(f"'{path}' is not a ktrain results.json ({reason}): give the file a run wrote") from None
    try:
        if results.get("sweep"):
            from ktrain.grid import run_rows, summarize

            sweep = results["sweep"]
            sweep["points"] = summarize(run_rows(results["results"]), sweep.get("baseline"))  # from the runs
            console.print(sweep_table(results))
        else:
            _print_results(results)
            if plots:
                from ktrain.outfolder import OutFolder
                from ktrain.plots import comparison_plots

                written = comparison_plots(results, OutFolder(run_dir, prefix).output)
                for path in written:
                    console.print(f"wrote {path}", highlight=False)
    except KtrainError:  # a write that failed (a full disk), said as it is
        raise
    except (KeyError, TypeError, ValueError, AttributeError, IndexError, RecursionError) as exc:
        raise KtrainError(f"'{path}' is not a ktrain results.json (at {exc!r}): give the file a run wrote") from None


@app.command(cls=KtrainCommand)
@user_errors
def evaluate(
    model: Annotated[str, typer.Argument(help="A .keras/.h5 model file or zoo:NAME.")],
    dataset: Annotated[str, typer.Argument(help="digits, a TFDS name or an .npz file.")],
    neighbors: Annotated[
        int, typer.Option("-k", "--neighbors", help="Also report kNN accuracy with this k (0: no).")
    ] = api.default(api.evaluate, "neighbors"),
    layer: Annotated[
        str | None,
        typer.Option(
            "--layer", help="Feature layer for kNN (default: input of the classifier).", rich_help_panel="Models"
        ),
    ] = None,
    data_dir: Annotated[str | None, typer.Option("--data-dir", help="Local TFDS data directory.")] = None,
    eval_batch_size: Annotated[
        int, typer.Option("-ebs", "--evaluation-batch-size", help="Evaluation batch size.")
    ] = api.default(api.evaluate, "batch_size"),
    input_scale: Annotated[
        str | None, typer.Option("--input-scale", help="What the model takes for pixels 0-255 (as in train).")
    ] = None,
    verbosity: Verbosity = 1,
):
    """Test accuracy, cross-entropy and (with -k) kNN accuracy of MODEL on DATASET's test split."""
    if neighbors < 0 or eval_batch_size <= 0:
        raise KtrainError(f"-k is {neighbors} and -ebs is {eval_batch_size}: give k >= 0 and a batch size > 0")
    _quiet_tensorflow_import()
    scores = api.evaluate(
        model,
        dataset,
        neighbors=neighbors,
        layer=layer,
        data_dir=data_dir,
        batch_size=eval_batch_size,
        input_scale=input_scale,
        listener=RichProgress(errors, verbosity),  # stdout holds the scores alone, for scripts
    )
    for key, value in scores.items():
        console.print(f"{key:>22}: {value:.4f}" if isinstance(value, float) else f"{key:>22}: {value}", highlight=False)


@app.command(cls=KtrainCommand)
@user_errors
def cache(
    teacher: Teacher,
    dataset: Annotated[str, typer.Argument(help="digits, a TFDS name or an .npz file.")],
    cache_dir: Annotated[str, typer.Option("--cache-dir", help="Folder for the cached soft targets.")] = api.default(
        api.cache, "cache_dir"
    ),
    features: Annotated[
        bool,
        typer.Option(
            "--features", help="Also cache the teacher's features (for pkt and pkt+kd).", rich_help_panel="Method"
        ),
    ] = False,
    teacher_layer: Annotated[
        str | None,
        typer.Option(
            "--teacher-layer", help="Feature layer (default: input of the classifier).", rich_help_panel="Models"
        ),
    ] = None,
    val_split: Annotated[float, typer.Option("--val-split", help="As the training run will use.")] = api.default(
        api.cache, "val_split"
    ),
    seed: Annotated[
        int, typer.Option("-seed", "--seed", help="As the training run will use (it picks the validation split).")
    ] = api.default(api.cache, "seed"),
    data_dir: Annotated[str | None, typer.Option("--data-dir", help="Local TFDS data directory.")] = None,
    eval_batch_size: Annotated[
        int, typer.Option("-ebs", "--evaluation-batch-size", help="Teacher batch size.")
    ] = api.default(api.cache, "batch_size"),
    specialist: Specialists = None,
    augment: Annotated[
        str | None, typer.Option("--augment", help="As the training run will use (with --views).")
    ] = None,
    views: Annotated[
        int | None, typer.Option("--views", help="Cache the logits of K views of every training sample.")
    ] = None,
    view_seed: Annotated[int, typer.Option("--view-seed", help="As the training run will use.")] = api.default(
        api.cache, "view_seed"
    ),
    cache_topk: Annotated[
        int | None, typer.Option("--cache-topk", help="Keep each view's N largest logits only.")
    ] = None,
    teacher_precision: Annotated[
        str,
        typer.Option(
            "--teacher-precision",
            help="As the training run will use.",
            metavar=choice_metavar(CHOICES["teacher_precision"]),
            autocompletion=completer(CHOICES["teacher_precision"]),
        ),
    ] = api.default(api.cache, "teacher_precision"),
    teacher_input_scale: Annotated[
        str | None, typer.Option("--teacher-input-scale", help="As the training run will use.")
    ] = None,
    verbosity: Verbosity = 1,
):
    """Precompute TEACHER's soft targets on DATASET's train and validation splits into --cache-dir."""
    _quiet_tensorflow_import()
    summary = api.cache(
        teacher,
        dataset,
        cache_dir,
        features=features,
        teacher_layer=teacher_layer,
        specialists=specialist or (),
        data_dir=data_dir,
        val_split=val_split,
        seed=seed,
        batch_size=eval_batch_size,
        augment=augment,
        views=views,
        view_seed=view_seed,
        cache_topk=cache_topk,
        teacher_precision=teacher_precision.lower(),
        teacher_input_scale=teacher_input_scale,
        listener=RichProgress(console, verbosity),
    )
    console.print(
        f"soft targets in {summary['path']} ({summary['megabytes']:.1f} MiB): "
        + ", ".join(f"{name} {shape}" for name, shape in summary["arrays"].items()),
        highlight=False,
    )


@app.command("export", cls=KtrainCommand)
@user_errors
def export_command(
    student: Annotated[
        str, typer.Argument(help="A trained student: .keras/.h5 file, or a run's -out folder (its best student).")
    ],
    out: Annotated[str, typer.Argument(help="The .tflite file to write.")],
    quantize: Annotated[
        str,
        typer.Option(
            "--quantize",
            help="float32 (also none), float16, or int8 (full-integer; needs --dataset).",
            rich_help_panel="Outputs",
            metavar=choice_metavar(CHOICES["export"]),
            autocompletion=completer(CHOICES["export"]),
        ),
    ] = api.default(api.export, "quantize"),
    dataset: Annotated[
        str | None,
        typer.Option(
            "--dataset",
            help="Dataset whose test split checks the export (and whose train split calibrates int8).",
            rich_help_panel="Data",
        ),
    ] = None,
    data_dir: Annotated[str | None, typer.Option("--data-dir", help="Local TFDS data directory.")] = None,
    max_accuracy_drop: Annotated[
        float, typer.Option("--max-accuracy-drop", help="Largest test-accuracy loss allowed; more exits with an error.")
    ] = api.default(api.export, "max_accuracy_drop"),
    verbosity: Verbosity = 1,
):
    """Export STUDENT to TFLite and check size, accuracy, agreement with Keras and latency."""
    _quiet_tensorflow_import()
    from ktrain.tflite import check

    report = api.export(
        student,
        out,
        quantize=quantize.lower(),
        data=dataset,
        data_dir=data_dir,
        max_accuracy_drop=max_accuracy_drop,
        check=False,
        listener=RichProgress(errors, verbosity),  # stdout holds the report alone
    )
    console.print(export_table([report]))
    if "tflite_accuracy" not in report:
        console.print("not checked: give --dataset D for test accuracy, agreement with Keras and latency")
    check(report)


@app.command(cls=KtrainCommand)
def methods():
    """List the transfer methods (use them with -m NAME) with their options and defaults."""
    _quiet_tensorflow_import()
    from ktrain.methods import registered

    for method in registered():
        aliases = f" (also {', '.join(method.aliases)})" if method.aliases else ""
        options = ", ".join(
            f"{spec.flags[0]} {method.Options.defaults()[name]}" for name, spec in method.Options.specs().items()
        )
        console.print(f"{method.name}{aliases}: {method.display_name}; {options or 'no options'}", highlight=False)


@app.command(cls=KtrainCommand)
@user_errors
def zoo(
    dataset: Annotated[
        str,
        typer.Option(
            "--dataset", help="Build each model for this dataset's images and classes.", rich_help_panel="Data"
        ),
    ] = "digits",
    data_dir: Annotated[str | None, typer.Option("--data-dir", help="Local TFDS data directory.")] = None,
):
    """List the built-in architectures (use them as zoo:NAME), built for DATASET's images."""
    _quiet_tensorflow_import()
    from ktrain.data import dataset_shape
    from ktrain.zoo import describe

    image_shape, num_classes = dataset_shape(dataset, data_dir=data_dir)
    console.print(zoo_table(describe(image_shape, num_classes), dataset, image_shape, num_classes))


def _is_a(exc: BaseException, name: str) -> bool:
    # typer >= 0.23 vendors its own click, so match the class by name through the MRO.
    return any(cls.__name__ == name for cls in type(exc).__mro__)


def main() -> None:
    """Console entry point: usage errors become one line too."""
    set_active_command(_completing() or sys.argv[1:])
    try:
        _main()
    finally:
        set_active_command(None)


def _completing() -> list[str] | None:
    """The words after ``ktrain`` a shell asks completions for (Click's and Typer's completion
    variables), so the command being completed gets its method options; None when not completing."""
    if not os.environ.get("_KTRAIN_COMPLETE"):
        return None
    if not os.environ.get("COMP_CWORD", "0").isdigit():  # not a shell's own call: nothing to complete
        sys.exit(1)
    words = os.environ.get("COMP_WORDS") or os.environ.get("_TYPER_COMPLETE_ARGS") or ""
    return words.split()[1:]


def _main() -> None:
    try:
        code = app(standalone_mode=False)
    except Exception as exc:
        if _is_a(exc, "NoArgsIsHelpError"):
            exc.show()
            sys.exit(0)
        if _is_a(exc, "Abort"):  # click's form of a KeyboardInterrupt
            interrupted()
        if not _is_a(exc, "UsageError"):
            raise
        command = exc.ctx.command_path if getattr(exc, "ctx", None) else "ktrain"
        message = exc.format_message().replace("Value error, ", "")  # Typer's wording for a bad choice
        errors.print(f"error: {message} (see '{command} --help')", highlight=False, soft_wrap=True, markup=False)
        sys.exit(2)
    if code == 130 and not REPORTED[0]:  # Typer's own form of a KeyboardInterrupt, printed by nobody
        interrupted()
    sys.exit(code if isinstance(code, int) else 0)


if __name__ == "__main__":
    from ktrain.cli import main as entry

    entry()
