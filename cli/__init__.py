"""The ``ktrain`` command line (installed as ``ktrain.cli``).

:func:`main` is the console entry point. It catches Ctrl-C from the first instant, before the
command line's imports (typer, rich, then TensorFlow) have run, so an early Ctrl-C is one line and
exit status 130, never a traceback.
"""

import atexit
import os
import signal
import sys

INTERRUPTED = [False]  # set by Ctrl-C: an exception that follows it is the interruption's
REPORTED = [False]  # set once an interruption's line is printed (a training loop prints its own)
# The terminal's stderr, kept aside: TensorFlow's import runs with fd 2 sent to /dev/null, and a
# Ctrl-C can land while it is.
_STDERR = os.dup(2)


def _on_interrupt(signum, frame):
    INTERRUPTED[0] = True
    raise KeyboardInterrupt


def main() -> None:
    signal.signal(signal.SIGINT, _on_interrupt)
    status = 1  # what Python exits with after a traceback
    try:
        from ktrain.cli.main import main as run

        run()
    except Exception:
        if not INTERRUPTED[0]:
            raise
        interrupted()
    except SystemExit as exc:
        status = 0 if exc.code is None else exc.code if isinstance(exc.code, int) else 1
        raise
    except KeyboardInterrupt:
        interrupted()
    finally:
        # The command is over and its files are written. A Ctrl-C while the interpreter shuts down
        # ended the process with the signal's own status (-2), as if it had been killed: Python puts
        # back the default action of a signal with a Python handler as it finalizes, and most of
        # the shutdown (TensorFlow's teardown) comes after. So a Ctrl-C now ends the process at once
        # with the command's status, and from the exit handlers on it is ignored (Ctrl-\ still
        # stops a teardown that hangs). This is the process's entry point: in-process callers use
        # ktrain.cli.main.main, which leaves the handlers alone.
        signal.signal(signal.SIGINT, lambda signum, frame: os._exit(status))
        atexit.register(signal.signal, signal.SIGINT, signal.SIG_IGN)


def interrupted() -> None:
    """Ctrl-C outside a training loop (importing, loading, scoring, evaluating, exporting): one line,
    exit 130.
    TensorFlow sometimes turns the KeyboardInterrupt raised inside it into another exception."""
    message = (
        "interrupted (Ctrl-C) outside a training epoch: run the command again "
        "(with --resume to continue a run's checkpoints)\n"
    )
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os.write(_STDERR, message.encode())
    # Straight out: an interpreter shutdown after a half-done TensorFlow import can end in the
    # signal's own exit status (-2) or hang; nothing is left to save (the run unwound already).
    os._exit(130)
