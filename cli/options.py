"""Options declared once and added to the commands that take them.

``training_command`` appends to a command's signature (Typer reads ``__signature__``) the engine
options every training command shares, the options of the methods the command can run (generated
from each method's Options, with "unset" as the CLI default, so each method keeps its own default),
and the switches methods declare for it. The signature is computed each time Typer builds the
command, so a method registered later (a plug-in, a test's toy method) brings its options along.
"""

import inspect
import os
import sys
from typing import Annotated

import typer

PANEL = "Engine options"


def _option(*names: str, help: str, panel: str = PANEL, **kwargs):
    return typer.Option(*names, help=help, rich_help_panel=panel, **kwargs)


ENGINE_OPTIONS: list[tuple[str, object, object]] = [
    ("epochs", Annotated[int, _option("-e", "--epochs", help="Training epochs.")], 125),
    (
        "batch_size",
        Annotated[int, _option("-bs", "--batch-size", help="Global batch size (split across replicas).")],
        64,
    ),
    (
        "eval_batch_size",
        Annotated[
            int, _option("-ebs", "--evaluation-batch-size", help="Batch size for evaluation and teacher predictions.")
        ],
        128,
    ),
    (
        "optimizer",
        Annotated[str, _option("-o", "--optimizer", help="adam, rmsprop, sgd, adagrad, adadelta or adamax.")],
        "adam",
    ),
    ("learning_rate", Annotated[float, _option("-lr", "--learning-rate", help="Initial learning rate.")], 1e-3),
    (
        "lr_patience",
        Annotated[
            int, _option("-lrp", "--learning-rate-patience", help="Epochs without improvement before the LR drops.")
        ],
        8,
    ),
    (
        "lr_decay",
        Annotated[
            float,
            _option(
                "-lrd",
                "--learning-rate-decay",
                help="Factor the LR is multiplied by on a plateau; 0 keeps it constant.",
            ),
        ],
        0.1,
    ),
    ("lr_min", Annotated[float, _option("-lrm", "--learning-rate-min", help="Lowest learning rate.")], 1e-8),
    (
        "early_stopping_patience",
        Annotated[
            int,
            _option(
                "-esp", "--early-stopping-patience", help="Epochs without improvement before stopping; 0 disables."
            ),
        ],
        15,
    ),
    (
        "clip_norm",
        Annotated[float | None, _option("-cn", "--clip-norm", help="Clip each gradient tensor to this norm.")],
        None,
    ),
    (
        "clip_value",
        Annotated[float | None, _option("-cv", "--clip-value", help="Clip each gradient element to ±value.")],
        None,
    ),
    ("beta1", Annotated[float, _option("-b1", "--beta1", help="Adam/Adamax beta 1.")], 0.9),
    ("beta2", Annotated[float, _option("-b2", "--beta2", help="Adam/Adamax beta 2.")], 0.999),
    ("rho", Annotated[float, _option("-rho", "--rho", help="RMSprop/Adadelta rho.")], 0.9),
    ("momentum", Annotated[float, _option("-mm", "--momentum", help="SGD momentum.")], 0.0),
    ("decay", Annotated[float, _option("-d", "--decay", help="Inverse-time decay: lr / (1 + decay · step).")], 1e-6),
    (
        "use_final_model",
        Annotated[
            bool,
            _option(
                "-ufm", "--use-final-model", help="Keep the last epoch's weights instead of the best on validation."
            ),
        ],
        False,
    ),
    (
        "start_weights",
        Annotated[str | None, _option("-w", "--start-weights", help="Weights file to start the student from.")],
        None,
    ),
    (
        "reinit",
        Annotated[bool, _option("--reinit", help="Start the student from fresh random weights instead of its file's.")],
        False,
    ),
    (
        "val_split",
        Annotated[
            float, _option("--val-split", help="Share of the training split held out for validation (stratified).")
        ],
        0.3,
    ),
    ("data_dir", Annotated[str | None, _option("--data-dir", help="Local TFDS data directory.")], None),
    (
        "seed",
        Annotated[int, _option("-seed", "--seed", help="Random seed: the same seed gives the same history on CPU.")],
        0,
    ),
    (
        "targets",
        Annotated[
            str,
            _option(
                "--targets",
                help="Teacher soft targets: auto (cache when no augmentation and they fit 1 GiB), online or cache.",
            ),
        ],
        "auto",
    ),
    (
        "cache_dir",
        Annotated[
            str | None,
            _option("--cache-dir", help="Keep cached soft targets on disk here (keyed by teacher weights and data)."),
        ],
        None,
    ),
    (
        "augment",
        Annotated[
            str,
            _option(
                "--augment", help="Training augmentation, comma-separated: flip, crop (default none, as the seed)."
            ),
        ],
        "",
    ),
    (
        "jit",
        Annotated[str, _option("--jit", help="XLA: auto (on for GPUs, off for CPUs, as measured), on or off.")],
        "auto",
    ),
    (
        "strategy",
        Annotated[str, _option("--strategy", help="auto, one, mirrored or multiworker (from TF_CONFIG).")],
        "auto",
    ),
    (
        "precision",
        Annotated[str, _option("--precision", help="float32, mixed_float16 (with loss scaling) or mixed_bfloat16.")],
        "float32",
    ),
    (
        "resume",
        Annotated[
            bool,
            _option(
                "--resume",
                help="Continue the run in -out from its last checkpoint (same command plus this flag).",
                panel="Outputs",
            ),
        ],
        False,
    ),
    (
        "overwrite",
        Annotated[
            bool,
            _option("--overwrite", help="Start again in an -out folder that already holds a run.", panel="Outputs"),
        ],
        False,
    ),
    (
        "out_folder",
        Annotated[str, _option("-out", "--out-folder", help="Folder for the outputs.", panel="Outputs")],
        "out",
    ),
    (
        "prefix",
        Annotated[
            str, _option("-res", "--results-name-prefix", help="Prefix for every output file name.", panel="Outputs")
        ],
        "",
    ),
    (
        "verbosity",
        Annotated[
            int,
            _option(
                "-v", "--verbosity", help="0: final table only; 1: progress bar; 2: a line per epoch.", panel="Outputs"
            ),
        ],
        1,
    ),
    ("debug", Annotated[bool, _option("--debug", help="Debug-level log file.", panel="Outputs")], False),
]
ENGINE_NAMES = [name for name, _, _ in ENGINE_OPTIONS]


def quiet_tensorflow_import() -> None:
    """Import TensorFlow with its C++ start-up lines (oneDNN, CUDA probing) kept off the terminal."""
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    try:
        with open(os.devnull, "w") as devnull:
            os.dup2(devnull.fileno(), 2)
            import tensorflow
    finally:
        os.dup2(saved, 2)
        os.close(saved)
    # Retracing notices (each method builds its own compiled steps) are not the user's business.
    tensorflow.get_logger().setLevel("ERROR")


METHOD_PANEL = "Method options"


def _method_parameters(command: str) -> tuple[list[inspect.Parameter], dict[str, str]]:
    """Parameters for the options of the methods ``command`` offers, and for their switches; also
    the map from switch parameter to method name."""
    quiet_tensorflow_import()  # the methods import TensorFlow
    from ktrain.methods.selection import offered

    methods = offered(command)
    parameters, specs = [], {}
    for method in methods:
        for name, spec in method.Options.specs().items():
            specs.setdefault(name, (spec, {}))[1][method.name] = method.Options.defaults()[name]
    for name, (spec, defaults) in specs.items():
        kind = {float: float, int: int}.get(spec.kind, str)
        option = typer.Option(
            *spec.flags, help=f"{spec.help}{_defaults(defaults)}", rich_help_panel=METHOD_PANEL, show_default=False
        )
        parameters.append(
            inspect.Parameter(
                name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[kind | None, option]
            )
        )
    switches = {}
    for method in methods:
        if method.switch is not None and command in method.switch.commands:
            key = "switch_" + method.name.replace("-", "_").replace("+", "_")
            switches[key] = method.name
            option = typer.Option(*method.switch.flags, help=method.switch.help, rich_help_panel=METHOD_PANEL)
            parameters.append(
                inspect.Parameter(
                    key, inspect.Parameter.KEYWORD_ONLY, default=False, annotation=Annotated[bool, option]
                )
            )
    return parameters, switches


def _defaults(defaults: dict) -> str:
    """ " Default 2." when every method has the same default, else " Default: kd 2, dkd 4."."""
    values = set(defaults.values())
    if values == {None}:
        return ""
    if len(values) == 1:
        return f" Default {_plain(next(iter(values)))}."
    return " Default: " + ", ".join(f"{name} {_plain(value)}" for name, value in defaults.items()) + "."


def _plain(value) -> str:
    return "unset" if value is None else f"{value:g}" if isinstance(value, float) else str(value)


# The command this process runs, when known (set by cli.main.main from argv). Other commands never
# need the method options, and building them imports TensorFlow (``ktrain report`` must not).
_active: dict[str, str | None] = {"command": None}


def set_active_command(argv: list[str] | None) -> None:
    """Name the command from ``argv`` (None: unknown, build every command whole)."""
    _active["command"] = None if argv is None else next((word for word in argv if not word.startswith("-")), "")


class TrainingCommand:
    """A command function with the shared engine options and its methods' options appended.

    The function receives ``engine`` (dict, with the command's name under "command"), ``given`` (the
    method options set explicitly) and ``switches`` (names of the methods whose switch was given)."""

    def __init__(self, function, command: str):
        self.function = function
        self.command = command
        self.__name__ = function.__name__
        self.__doc__ = function.__doc__
        self.__module__ = function.__module__

    def _own(self) -> list[inspect.Parameter]:
        hidden = ("engine", "given", "switches")
        return [p for p in inspect.signature(self.function).parameters.values() if p.name not in hidden]

    def _methods(self) -> tuple[list[inspect.Parameter], dict[str, str]]:
        active = _active["command"]
        return _method_parameters(self.command) if active in (None, self.command) else ([], {})

    @property
    def __signature__(self) -> inspect.Signature:
        methods, _ = self._methods()
        shared = [
            inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
            for name, annotation, default in ENGINE_OPTIONS
        ]
        return inspect.Signature(self._own() + methods + shared)

    @property
    def __annotations__(self) -> dict:
        return {p.name: p.annotation for p in self.__signature__.parameters.values()}

    def __call__(self, **kwargs):
        _, switch_names = self._methods()
        engine = {name: kwargs.pop(name) for name in ENGINE_NAMES}
        engine["command"] = self.command
        switches = [method for key, method in switch_names.items() if kwargs.pop(key)]
        own = {p.name for p in self._own()}
        given = {name: value for name, value in kwargs.items() if name not in own and value is not None}
        rest = {name: value for name, value in kwargs.items() if name in own}
        return self.function(**rest, engine=engine, given=given, switches=switches)


def training_command(function):
    """Decorator: see :class:`TrainingCommand`; the command is named after the function."""
    return TrainingCommand(function, function.__name__)
