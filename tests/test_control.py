"""Plateau, early stopping and best tracking, with the mode derived from the monitor."""

import pytest

from ktrain.control import BestTracker, EarlyStopping, Plateau, mode_for


def test_mode_follows_the_monitor():
    assert mode_for("val_accuracy") == "max"
    assert mode_for("val_loss") == "min"
    assert mode_for("val_crossentropy") == "min"


def test_plateau_drops_after_patience_epochs_without_improvement():
    plateau = Plateau("max", patience=2, factor=0.5, min_lr=0.01)
    lr, drops = 0.1, []
    for epoch, value in enumerate([0.5, 0.6, 0.6, 0.6, 0.6, 0.6, 0.7], start=1):
        new = plateau.step(value, lr)
        if new is not None:
            lr = new
            drops.append((epoch, lr))
    assert drops == [(4, 0.05), (6, 0.025)]


def test_plateau_respects_the_minimum_and_factor_zero_disables_it():
    plateau = Plateau("min", patience=0, factor=0.1, min_lr=0.05)
    assert plateau.step(1.0, 0.1) is None  # first value is an improvement
    assert plateau.step(1.0, 0.1) == pytest.approx(0.05)
    assert plateau.step(1.0, 0.05) is None
    assert Plateau("min", patience=0, factor=0.0, min_lr=0.0).step(1.0, 0.1) is None


def test_early_stopping_on_a_loss_stops_when_it_stops_falling():
    stopper = EarlyStopping("min", patience=2)
    decisions = [stopper.step(value) for value in [1.0, 0.8, 0.9, 0.85]]
    assert decisions == [False, False, False, True]


def test_early_stopping_requires_min_delta_and_zero_patience_disables():
    stopper = EarlyStopping("max", patience=1, min_delta=0.01)
    assert [stopper.step(v) for v in [0.5, 0.505]] == [False, True]
    assert not any(EarlyStopping("max", patience=0).step(v) for v in [0.5, 0.4, 0.3])


def test_best_tracker_keeps_the_best_epoch():
    tracker = BestTracker("min")
    for epoch, value in enumerate([3.0, 2.0, 2.5, 2.0, 1.0, 1.5], start=1):
        tracker.step(value, epoch)
    assert (tracker.epoch, tracker.best) == (5, 1.0)
