"""LR-on-plateau, early stopping and best-weights tracking as small state machines.

The seed used Keras callbacks with ``mode='max'`` hard-coded for early stopping, even on losses.
Here the mode always follows the monitored quantity.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


def mode_for(monitor: str) -> str:
    """``max`` for accuracies, ``min`` for everything else (losses, cross-entropy)."""
    return "max" if "acc" in monitor else "min"


def improved(mode: str, current: float, best: float, min_delta: float = 0.0) -> bool:
    if mode == "max":
        return current > best + min_delta
    return current < best - min_delta


def _worst(mode: str) -> float:
    return -math.inf if mode == "max" else math.inf


@dataclass
class Plateau:
    """Keras ``ReduceLROnPlateau`` semantics (min_delta 1e-4, cooldown 0); ``factor`` 0 disables it."""

    mode: str
    patience: int
    factor: float
    min_lr: float
    min_delta: float = 1e-4
    best: float | None = None
    wait: int = 0

    def step(self, value: float, lr: float) -> float | None:
        """Feed one epoch's monitored value; returns the new LR when it should drop, else None."""
        if self.factor <= 0:
            return None
        if improved(self.mode, value, _worst(self.mode) if self.best is None else self.best, self.min_delta):
            self.best, self.wait = value, 0
            return None
        self.wait += 1
        if self.wait >= self.patience and lr > self.min_lr:
            self.wait = 0
            return max(lr * self.factor, self.min_lr)
        return None


@dataclass
class EarlyStopping:
    """Stops after ``patience`` epochs without an improvement of ``min_delta`` (the seed's 2e-4); 0 disables."""

    mode: str
    patience: int
    min_delta: float = 2e-4
    best: float | None = None
    wait: int = 0

    def step(self, value: float) -> bool:
        """Feed one epoch's monitored value; returns True when training should stop."""
        if self.patience <= 0:
            return False
        if improved(self.mode, value, _worst(self.mode) if self.best is None else self.best, self.min_delta):
            self.best, self.wait = value, 0
            return False
        self.wait += 1
        return self.wait >= self.patience


@dataclass
class BestTracker:
    """Remembers the epoch with the best monitored validation value (any improvement counts)."""

    mode: str
    best: float | None = None
    epoch: int | None = None

    def step(self, value: float, epoch: int) -> bool:
        if self.best is None or improved(self.mode, value, self.best):
            self.best, self.epoch = value, epoch
            return True
        return False
