"""How a setting is declared: one :class:`Option` (name, flags, help, kind, check), shared by the
methods' options (ktrain.methods) and the engine's settings (ktrain.settings).

No TensorFlow here: the command line reads these declarations before it imports anything heavy.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

from ktrain.errors import KtrainError

_OPTION = "ktrain.option"
CHECKS = ("positive", "non_negative", "any")
KINDS = (float, int, str, bool, tuple)


@dataclass(frozen=True)
class Option:
    """One setting, spelled the same everywhere it is declared.

    ``kind`` is float, int, str, bool or tuple (of str, a repeatable flag); ``check`` is "positive",
    "non_negative" or "any" (numbers), and ``choices`` lists the values a str option takes.
    ``optional`` lets it be None. A method declares a field with ``SPEC(default)``.
    """

    name: str
    flags: tuple[str, ...]
    help: str
    kind: type = float
    check: str = "non_negative"
    choices: tuple[str, ...] = ()
    optional: bool = False

    def __post_init__(self):
        if self.check not in CHECKS:
            raise ValueError(f"option {self.name}: check must be one of {CHECKS}")
        if self.kind not in KINDS:
            raise ValueError(f"option {self.name}: kind must be one of {KINDS}")

    def __call__(self, default: Any) -> Any:
        return dataclasses.field(default=default, metadata={_OPTION: self})

    @property
    def label(self) -> str:
        """How messages name it: ``--gate``, or ``temperature (-t)`` where the flag is short."""
        words = self.name.replace("_", " ")
        return self.flags[0] if self.flags[0] == "--" + words.replace(" ", "-") else f"{words} ({self.flags[0]})"

    def convert(self, value: Any) -> Any:
        """``value`` as this option's kind, checked; a KtrainError names the value and the fix."""
        if value is None and self.optional:
            return None
        if self.kind is bool:
            if not isinstance(value, bool):
                raise KtrainError(f"{self.label} is {value!r}: give True or False")
            return value
        if self.kind is tuple:
            items = [value] if isinstance(value, str) else list(value or ())
            return tuple(str(item) for item in items)
        if self.kind is str:
            value = str(value)
            if self.choices and value not in self.choices:
                raise KtrainError(f"{self.label} is '{value}': use {', '.join(self.choices)}")
            return value
        return self._number(value)

    def _number(self, value: Any) -> float | int:
        try:
            if isinstance(value, bool):
                raise ValueError
            number = self.kind(value)
            if self.kind is int and number != float(value):
                raise ValueError
        except (TypeError, ValueError):
            raise KtrainError(
                f"{self.label} is '{value}': give {'a whole' if self.kind is int else 'a'} number"
            ) from None
        if not math.isfinite(number):
            raise KtrainError(f"{self.label} is {value}: give a finite number")
        if self.check == "positive" and not number > 0:
            raise KtrainError(f"{self.label} is {value}: give a value greater than 0")
        if self.check == "non_negative" and number < 0:
            raise KtrainError(f"{self.label} is {value}: give a value of 0 or more")
        return number


def plain(value: Any) -> str:
    """An option's value as names, tables and plots show it: 4 for 4.0, 0.5, True; a float that
    ``:g`` would round is shown whole, so two values never show alike."""
    if isinstance(value, float):
        short = f"{value:g}"
        return short if float(short) == value else repr(value)
    return str(value)
