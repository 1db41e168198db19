"""A command's ``--help``: usage with its arguments in capitals, the description, then the options in
panels that come in one order on every command (``PANEL_ORDER``).

Typer's own layout spreads each option over four name columns and a value column sized to the
widest choice list, so at 100 columns it cut names (``--no-logit-standardiza…``) and split choices.
Here an option's names share one column, its value is one word (``INT``, ``CHOICE``), and a
choice list the help does not already spell out is added to the help as words, which wrap whole.
"""

from __future__ import annotations

import inspect

from rich.console import Console, Group
from rich.panel import Panel
from rich.table import Table
from rich.text import Text
from typer.core import TyperArgument, TyperCommand

from ktrain.settings import PANEL_ORDER

OTHER_PANEL = "Options"  # an option declared without a panel, and --help, come last
KINDS = {"int": "INT", "float": "FLOAT", "str": "TEXT", "bool": ""}


def choices_of(parameter) -> tuple[str, ...]:
    """The values a single-choice option takes (its ``[a|b|c]`` metavar, see
    cli.options.choice_metavar), else ()."""
    metavar = getattr(parameter, "metavar", None) or ""
    if metavar.startswith("[") and metavar.endswith("]") and "|" in metavar:
        return tuple(metavar[1:-1].split("|"))
    return ()


def names(parameter) -> Text:
    """The option's flags, short first (``-t, --temperature``); an on/off pair's ``--no-`` form on a
    line of its own."""
    if isinstance(parameter, TyperArgument):
        return Text(parameter.name.upper(), style="bold cyan")
    flags = sorted(parameter.opts, key=lambda flag: (flag.startswith("--"), len(flag)))
    text = Text(", ".join(flags), style="bold cyan")
    for flag in parameter.secondary_opts:
        text.append(f"\n{flag}", style="bold magenta")
    return text


def value(parameter) -> str:
    """What the option takes, in one word: ``INT``, ``FLOAT``, ``TEXT``, ``CHOICE``, ``LIST`` (a
    comma list or a repeatable option); nothing for an on/off flag or an argument."""
    if getattr(parameter, "is_flag", False) or isinstance(parameter, TyperArgument):
        return ""
    if choices_of(parameter):
        return "CHOICE"
    descriptor = parameter.type_descriptor
    if descriptor.is_list:
        return "LIST"
    bare = parameter.bare_type()
    return KINDS.get(bare, bare.upper())


def help_of(parameter, ctx) -> Text:
    """The option's help, its choices when the help does not name each, and its default."""
    text = (getattr(parameter, "help", None) or "").strip()
    choices = choices_of(parameter)
    words = {word.strip(".,;:()") for word in text.split()}
    if choices and not set(choices) <= words:
        text += f" Choices: {', '.join(choices)}."
    default = default_of(parameter, ctx)
    if default is not None:
        text += f" [default: {default}]"
    if getattr(parameter, "required", False):
        text += " [required]"
    return Text(text.strip())


def default_of(parameter, ctx) -> str | None:
    """The default as the help shows it; None when there is nothing worth showing (unset, off)."""
    if isinstance(parameter, TyperArgument) or not parameter.show_default:
        return None
    default = parameter.get_default(ctx, call=False)
    if default is None or default is False or default in ((), [], "") or callable(default):
        return None
    if default is True and parameter.secondary_opts:
        return parameter.opts[0]
    text = ", ".join(str(item) for item in default) if isinstance(default, list | tuple) else str(default)
    return text or None  # an empty value (no augmentation) says nothing


def usage_pieces(command, ctx) -> list[str]:
    """``[OPTIONS] TEACHER STUDENT DATASET``: the arguments in capitals, as help texts name them."""
    words = ["[OPTIONS]"]
    for parameter in command.get_params(ctx):
        if isinstance(parameter, TyperArgument):
            word = parameter.name.upper() + ("..." if parameter.nargs != 1 else "")
            words.append(word if parameter.required else f"[{word}]")
    return words


def usage(command, ctx) -> Text:
    """``Usage: ktrain distill [OPTIONS] TEACHER STUDENT DATASET``."""
    return Text.assemble(("Usage: ", "bold"), " ".join([ctx.command_path, *usage_pieces(command, ctx)]))


def panels(command, ctx) -> list[tuple[str, list]]:
    """The visible parameters grouped by panel: arguments first, then ``PANEL_ORDER``, then any
    other panel in the order met, then options without a panel (and ``--help``)."""
    grouped: dict[str, list] = {}
    for parameter in command.get_params(ctx):
        if getattr(parameter, "hidden", False):
            continue
        if isinstance(parameter, TyperArgument):
            panel = "Arguments"
        else:
            panel = getattr(parameter, "rich_help_panel", None) or setting_panel(parameter.opts) or OTHER_PANEL
        grouped.setdefault(panel, []).append(parameter)
    order = ["Arguments", *PANEL_ORDER]
    rank = {name: index for index, name in enumerate(order)}
    ranked = sorted(grouped, key=lambda name: (rank.get(name, len(order) + (name == OTHER_PANEL)),))
    return [(name, grouped[name]) for name in ranked]


def setting_panel(flags) -> str | None:
    """The panel of the library setting with one of ``flags`` (a command's own ``--data-dir`` is
    listed where the settings' is), else None."""
    from ktrain.settings import SETTINGS

    for setting in SETTINGS.values():
        if set(flags) & set(setting.option.flags):
            return setting.panel
    return None


def render(command, ctx) -> None:
    """Print ``command``'s help to stdout."""
    console = Console(highlight=False)
    parts = [usage(command, ctx), Text()]
    for paragraph in inspect.cleandoc(command.help or "").split("\n\n"):
        if paragraph.strip():
            parts += [Text(" ".join(paragraph.split())), Text()]
    console.print(Group(*parts), soft_wrap=False)
    for name, parameters in panels(command, ctx):
        table = Table.grid(padding=(0, 2), expand=True)
        table.add_column(no_wrap=True)
        table.add_column(no_wrap=True, style="yellow")
        table.add_column(ratio=1)
        for parameter in parameters:
            table.add_row(names(parameter), value(parameter), help_of(parameter, ctx))
        console.print(Panel(table, title=name, title_align="left", border_style="dim"))


def render_group(group, ctx) -> None:
    """Print the top-level help: usage, description, options, then each command with the first
    paragraph of its description, whole."""
    console = Console(highlight=False)
    console.print(Text.assemble(("Usage: ", "bold"), f"{ctx.command_path} [OPTIONS] COMMAND [ARGS]..."))
    console.print()
    console.print(" ".join((group.help or "").split()))
    console.print()
    table = Table.grid(padding=(0, 2), expand=True)
    table.add_column(no_wrap=True)
    table.add_column(ratio=1)
    for parameter in group.get_params(ctx):
        if not getattr(parameter, "hidden", False):
            table.add_row(names(parameter), help_of(parameter, ctx))
    console.print(Panel(table, title=OTHER_PANEL, title_align="left", border_style="dim"))
    table = Table.grid(padding=(0, 2), expand=True)
    table.add_column(no_wrap=True, style="bold cyan")
    table.add_column(ratio=1)
    for name in group.list_commands(ctx):
        command = group.get_command(ctx, name)
        if command is not None and not command.hidden:
            table.add_row(name, " ".join(inspect.cleandoc(command.help or "").split("\n\n")[0].split()))
    console.print(Panel(table, title="Commands", title_align="left", border_style="dim"))


class KtrainCommand(TyperCommand):
    """A Typer command whose ``--help`` is :func:`render`'s, and whose messages name its arguments
    in capitals, as its usage does (``Missing argument 'TEACHER'``)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        for parameter in self.params:
            if isinstance(parameter, TyperArgument) and parameter.metavar is None:
                parameter.metavar = parameter.name.upper()

    def format_help(self, ctx, formatter) -> None:
        render(self, ctx)

    def collect_usage_pieces(self, ctx) -> list[str]:
        return usage_pieces(self, ctx)
