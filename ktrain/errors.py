"""The one exception type the command line turns into a one-line message."""

import errno
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


_PATH_FIXES = {
    errno.ENAMETOOLONG: "use a shorter name (a file or folder name holds at most 255 bytes)",
    errno.ENOTDIR: "a part of the path is a file, not a folder: check the path",
    errno.EISDIR: "it is a folder: give a file",
    errno.EACCES: "check its permissions, or choose another path",
    errno.EPERM: "check its permissions, or choose another path",
    errno.ELOOP: "it goes through a loop of symbolic links: check the path",
    errno.EROFS: "it is on a read-only file system: choose another path",
    errno.ENOSPC: "free some space on its disk (TensorFlow also writes to TMPDIR)",
    errno.EDQUOT: "free some space within the disk quota (TensorFlow also writes to TMPDIR)",
}


def path_error(exc: OSError) -> KtrainError:
    """The one line for a path the operating system would not use (a name too long, a file where
    a folder should be, no permission): the path as given, the reason and the fix."""
    name = None if exc.filename is None else str(exc.filename)
    if name is not None and len(name) > 120:  # the name the system refused is often the long one
        name = f"{name[:50]}…{name[-50:]}"
    where = f" '{name}'" if name is not None else ""
    fix = _PATH_FIXES.get(exc.errno, "check the path")
    return KtrainError(f"cannot use{where} ({exc.strerror or exc}): {fix}")
