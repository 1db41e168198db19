"""How the engine reports progress; the CLI renders it, the library itself stays silent.

Training reports through the listener a run is given. Other long phases (loading a dataset,
scoring a model, kNN and mAP, checking an export) run deep inside helpers that take no listener:
they say so with :func:`phase`, which reports to the listener the current call runs under
(:func:`listening`, set by every entry point of the API) as a task without a known length.
"""

import contextlib
from contextvars import ContextVar


class Listener:
    """No-op base: override the hooks you need."""

    def on_train_begin(self, title: str, epochs: int, steps_per_epoch: int) -> None: ...

    def on_steps(self, epoch: int, steps_done: int, logs: dict[str, float]) -> None: ...

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None: ...

    def on_train_end(self) -> None: ...

    def on_task_begin(self, title: str, total: int) -> None:
        """A phase other than training starts (the teacher's soft targets, say): ``total`` steps, or
        0 for a phase of unknown length (see :func:`phase`)."""

    def on_task_advance(self, done: int) -> None: ...

    def on_task_end(self) -> None: ...

    def on_task_failed(self) -> None:
        """The phase ended by an exception (which follows): by default as :meth:`on_task_end`."""
        self.on_task_end()


class Listeners(Listener):
    """Forwards every hook to several listeners (the Rich display and TensorBoard, say)."""

    def __init__(self, *listeners: Listener | None):
        self.listeners = [listener for listener in listeners if listener is not None]

    def on_train_begin(self, title, epochs, steps_per_epoch):
        for listener in self.listeners:
            listener.on_train_begin(title, epochs, steps_per_epoch)

    def on_steps(self, epoch, steps_done, logs):
        for listener in self.listeners:
            listener.on_steps(epoch, steps_done, logs)

    def on_epoch_end(self, epoch, logs):
        for listener in self.listeners:
            listener.on_epoch_end(epoch, logs)

    def on_train_end(self):
        for listener in self.listeners:
            listener.on_train_end()

    def on_task_begin(self, title, total):
        for listener in self.listeners:
            listener.on_task_begin(title, total)

    def on_task_advance(self, done):
        for listener in self.listeners:
            listener.on_task_advance(done)

    def on_task_end(self):
        for listener in self.listeners:
            listener.on_task_end()

    def on_task_failed(self):
        for listener in self.listeners:
            listener.on_task_failed()


_LISTENER: ContextVar[Listener | None] = ContextVar("ktrain_listener", default=None)
_IN_PHASE: ContextVar[bool] = ContextVar("ktrain_in_phase", default=False)


@contextlib.contextmanager
def listening(listener: Listener | None):
    """Within the block, :func:`phase` reports to ``listener`` (None: nothing is reported)."""
    token = _LISTENER.set(listener)
    try:
        yield
    finally:
        _LISTENER.reset(token)


@contextlib.contextmanager
def phase(title: str):
    """A long phase of unknown length named ``title``, reported to the current listener. A phase
    inside another is part of the outer one."""
    listener = _LISTENER.get()
    if listener is None or _IN_PHASE.get():
        yield
        return
    token = _IN_PHASE.set(True)
    listener.on_task_begin(title, 0)
    try:
        yield
    except BaseException:
        listener.on_task_failed()
        raise
    else:
        listener.on_task_end()
    finally:
        _IN_PHASE.reset(token)
