"""``ktrain demo``: offline jobs on the built-in digits, each a ``compare`` run with its zoo teacher
trained first, and the settings it uses said before it runs.

- ``seed`` (the default): the seed's job, KD, PKT and PKT+KD at their defaults beside the same
  student trained alone. On digits none of them beats that student (README, "Sweeps").
- ``pyramid``: a pyramid of specialists, ensemble KD and selective KD (``-sl``).

No TensorFlow here: the command line reads the jobs before it imports anything heavy.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ktrain.errors import counted


@dataclass(frozen=True)
class Job:
    """One demo: its models, methods (a key of ``ktrain.methods.selection.DEMOS``), lengths, and why."""

    name: str
    teacher: str
    student: str
    teacher_epochs: int
    epochs: int
    seeds: int
    folder: str
    why: str

    @property
    def methods(self) -> tuple[tuple[str, ...], dict[str, Any]]:
        """The method names and options (ktrain.methods.selection, which imports TensorFlow)."""
        from ktrain.methods.selection import DEMOS

        return DEMOS[self.name]

    def teacher_epochs_for(self, epochs: int) -> int:
        """The teacher's epochs when the students train ``epochs``: a shortened demo, shortened throughout."""
        return self.teacher_epochs if epochs == self.epochs else min(self.teacher_epochs, epochs)

    def describe(self, epochs: int, seeds: int) -> list[str]:
        """Which settings the job runs with (``epochs``, ``seeds`` as given), and why."""
        names, options = self.methods
        chosen = ", ".join(f"{key}={value}" for key, value in options.items())
        teacher_epochs = self.teacher_epochs_for(epochs)
        return [
            f"demo '{self.name}': teacher {self.teacher} trained for {teacher_epochs} epochs, then the student "
            f"{self.student} for {epochs} epochs by {', '.join(names)} ({chosen or 'default options'}) and alone, "
            f"{counted(seeds, 'seed')}",
            f"why: {self.why}",
        ]


JOBS = {
    "seed": Job(
        "seed",
        "zoo:digits_teacher",
        "zoo:digits_student",
        60,
        60,
        seeds=1,
        folder="out/demo",
        why="the seed's main job, as it was (its methods at their defaults trail the student alone on digits)",
    ),
    "pyramid": Job(
        "pyramid",
        "zoo:pyramid_ensemble",
        "zoo:digits_student",
        60,
        60,
        seeds=1,
        folder="out/demo_selective",
        why="selective KD from specialists, beside KD from their averaged ensemble",
    ),
}
