"""Options declared once and added to the commands that take them.

``training_command`` appends to a command's signature (Typer reads ``__signature__``) the engine
options every training command shares, the options of the methods the command can run (generated
from each method's Options, with "unset" as the CLI default, so each method keeps its own default),
and the switches methods declare for it. The signature is computed each time Typer builds the
command, so a method registered later (a plug-in, a test's toy method) brings its options along.
"""

import inspect
import os
import re
import sys
from typing import Annotated

import typer
from typer.core import TyperGroup

# -v means the same on every command that has it.
Verbosity = Annotated[
    int,
    typer.Option(
        "-v",
        "--verbosity",
        help="0: final table only; 1: progress bars (without a terminal, a line per epoch and phase); 2: also a "
        "line per epoch.",
        rich_help_panel="Outputs",
        min=0,
        max=2,
    ),
]
VERBOSITY = ("verbosity", Verbosity, 1)


def setting_annotation(setting):
    """The Typer annotation of a library setting (ktrain.settings): its type, flags, help and panel."""
    option = setting.option
    kind = {tuple: list[str]}.get(option.kind, option.kind)
    optional = option.optional or option.kind is tuple
    from ktrain.settings import CHOICES

    # A single choice shows its values (the help lists them) and completes them; the setting checks
    # the value, in any case. An on/off flag shows as a flag, not as taking a <bool>.
    choices = CHOICES.get(setting.name, ())
    declared = typer.Option(
        *option.flags,
        help=option.help,
        rich_help_panel=setting.panel,
        metavar=choice_metavar(choices) if choices else "" if option.kind is bool else None,
        autocompletion=completer(choices) if choices else None,
    )
    return Annotated[kind | None if optional else kind, declared]


def choice_metavar(choices) -> str:
    """``[a|b|c]``: how an option of a single choice shows its values (cli.helptext reads them back)."""
    return f"[{'|'.join(choices)}]"


def completer(choices):
    """Shell completion of a single choice: the values that start with what is typed."""
    return lambda incomplete: [choice for choice in choices if choice.startswith(incomplete)]


def setting_parameters(command: str) -> list[inspect.Parameter]:
    """Parameters for the settings ``command`` takes, with the library's defaults."""
    from ktrain.settings import SETTINGS, settings_for

    parameters = []
    for name, setting in settings_for(command).items():
        if name not in SETTINGS:  # set through a flag of the command's own (-or)
            continue
        default = setting.cli_default
        parameters.append(
            inspect.Parameter(
                name,
                inspect.Parameter.KEYWORD_ONLY,
                default=None if default == () else default,
                annotation=setting_annotation(setting),
            )
        )
    return parameters


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


METHOD_PANEL = "Method"


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
        kind = {float: float, int: int, bool: bool}.get(spec.kind, str)
        flags = spec.flags
        if spec.kind is bool:  # --x/--no-x: unset (None) when neither is given, so each method keeps its default
            long = next(flag for flag in flags if flag.startswith("--"))
            flags = (f"{long}/--no-{long[2:]}", *(flag for flag in flags if flag != long))
        option = typer.Option(
            *flags, help=f"{spec.help}{_defaults(defaults)}", rich_help_panel=METHOD_PANEL, show_default=False
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
    """A command function with the library's settings for it, and its methods' options, appended.

    The function receives ``command`` (its name), ``options`` (the settings, by name), ``given`` (the method options set
    explicitly), ``switches`` (names of the methods whose switch was given) and ``verbosity``."""

    HIDDEN = ("command", "options", "given", "switches", "verbosity")

    def __init__(self, function, command: str):
        self.function = function
        self.command = command
        self.__name__ = function.__name__
        self.__doc__ = function.__doc__
        self.__module__ = function.__module__

    def _own(self) -> list[inspect.Parameter]:
        return [p for p in inspect.signature(self.function).parameters.values() if p.name not in self.HIDDEN]

    def _built(self) -> bool:
        return _active["command"] in (None, self.command)

    def _methods(self) -> tuple[list[inspect.Parameter], dict[str, str]]:
        return _method_parameters(self.command) if self._built() else ([], {})

    @property
    def __signature__(self) -> inspect.Signature:
        if not self._built():  # another command runs: its options only
            return inspect.Signature(self._own())
        methods, _ = self._methods()
        name, annotation, default = VERBOSITY
        verbosity = inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=annotation)
        return inspect.Signature(self._own() + methods + setting_parameters(self.command) + [verbosity])

    @property
    def __annotations__(self) -> dict:
        return {p.name: p.annotation for p in self.__signature__.parameters.values()}

    def __call__(self, **kwargs):
        from ktrain.settings import settings_for

        _, switch_names = self._methods()
        options = {name: kwargs.pop(name) for name in settings_for(self.command) if name in kwargs}
        verbosity = kwargs.pop("verbosity")
        switches = [method for key, method in switch_names.items() if kwargs.pop(key)]
        own = {p.name for p in self._own()}
        given = {name: value for name, value in kwargs.items() if name not in own and value is not None}
        rest = {name: value for name, value in kwargs.items() if name in own}
        return self.function(
            **rest, command=self.command, options=options, given=given, switches=switches, verbosity=verbosity
        )


def training_command(function):
    """Decorator: see :class:`TrainingCommand`; the command is named after the function."""
    return TrainingCommand(function, function.__name__)


# -- flags a command lacks ----------------------------------------------------------------------
SEED_FLAG = re.compile(r"(-[A-Za-z][A-Za-z0-9]*)(?:=.*)?")  # -s, -or, -kdl, -lrp: one dash, letters


def flags_of(command: str) -> set[str]:
    """Every flag ``command`` takes from the settings and from its methods' options and switches."""
    from ktrain.settings import settings_for

    flags = {flag for setting in settings_for(command).values() for flag in setting.option.flags}
    quiet_tensorflow_import()  # the methods import TensorFlow
    from ktrain.methods.selection import offered

    for method in offered(command):
        flags |= {flag for spec in method.Options.specs().values() for flag in spec.flags}
        if method.switch is not None and command in method.switch.commands:
            flags |= set(method.switch.flags)
    return flags


class KtrainGroup(TyperGroup):
    """Refuses a seed-style short flag (``-or``) on a command that lacks it, in one line naming the
    commands that have it, before Click reads it as a shorter flag with its value attached (``-or``
    on ``train`` was ``-o r``, "unknown optimizer 'r'")."""

    def format_help(self, ctx, formatter) -> None:
        from ktrain.cli.helptext import render_group

        render_group(self, ctx)

    def resolve_command(self, ctx, args):
        name, command, rest = super().resolve_command(ctx, args)
        if command is None:
            return name, command, rest
        own = _declared(command)
        for token in rest[: rest.index("--")] if "--" in rest else rest:
            match = SEED_FLAG.fullmatch(token)
            if match is None or match.group(1) in own:
                continue
            flag = match.group(1)
            owners = [
                other
                for other, built in self.commands.items()
                if other != name and (flag in _declared(built) or flag in flags_of(other))
            ]
            if owners:  # failed in the command's own context, so the hint names its --help
                ctx.__class__(command, parent=ctx, info_name=name).fail(
                    f"{name} has no option {flag}: it is an option of {', '.join(owners)}"
                )
        return name, command, rest


def _declared(command) -> set[str]:
    """The flags a built Click command declares (another command's: its own options only)."""
    return {flag for parameter in command.params for flag in (*parameter.opts, *parameter.secondary_opts)}
