"""How the engine reports progress; the CLI renders it, the library itself stays silent."""


class Listener:
    """No-op base: override the hooks you need."""

    def on_train_begin(self, title: str, epochs: int, steps_per_epoch: int) -> None: ...

    def on_steps(self, epoch: int, steps_done: int, logs: dict[str, float]) -> None: ...

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None: ...

    def on_train_end(self) -> None: ...

    def on_task_begin(self, title: str, total: int) -> None:
        """A phase other than training starts (the teacher's soft targets, say): ``total`` steps."""

    def on_task_advance(self, done: int) -> None: ...

    def on_task_end(self) -> None: ...


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
