"""The one exception type the command line turns into a one-line message."""

import re


class KtrainError(ValueError):
    """A problem with the user's input: the message names the bad value and the fix.

    The CLI prints ``error: <message>`` and exits with status 2, without a traceback. It is a
    ValueError, so Python callers of the API may catch either.
    """


class RunFault(KtrainError):
    """A failure of a run already under way (a non-finite loss, a failed write), not of its input:
    the run's log is kept, whatever it has written."""


def counted(number: int, noun: str) -> str:
    """``1 class``, ``2 classes``, ``3 seeds``: a number and its noun, agreeing."""
    if number == 1:
        return f"1 {noun}"
    return f"{number} {noun}{'es' if noun.endswith(('s', 'x', 'ch', 'sh')) else 's'}"


def model_called(role: str) -> str:
    """How messages name a model of ``role``: ``student model``, but ``model`` (train's), not
    ``model model``."""
    return role if role == "model" else f"{role} model"


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message (at most 240 characters), for one-line errors;
    for an OSError its reason, and for a TensorFlow error its message without the op's names."""
    text = getattr(exc, "strerror", None) or getattr(exc, "message", None) or str(exc)
    text = re.sub(r"\{\{[^}]*\}\}\s*|\s*\[Op:\w+\]( name: \S*)?", "", text)
    lines = text.strip().splitlines()
    if not lines:
        return type(exc).__name__
    line = lines[0]
    return line if len(line) <= 240 else f"{line[:100]}…{line[-130:]}"  # the reason is often at the end
