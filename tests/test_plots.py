"""The comparison figures: whole-number epoch ticks, mean ± std bands over seeds, the teacher's
line labelled with its value."""

import numpy as np
import pytest

from ktrain import plots


def entry(name, seed, accuracy):
    history = {"val_accuracy": accuracy, "val_crossentropy": [1.0 - a for a in accuracy]}
    return {"name": name, "key": name.lower(), "role": "student", "seed": seed, "history": history}


@pytest.fixture
def figures(monkeypatch, tmp_path):
    kept = []

    def keep(figure, path):
        kept.append((path.name, figure))
        return path

    monkeypatch.setattr(plots, "save_figure", keep)
    results = {
        "results": [
            entry("KD", 0, [0.5, 0.6, 0.7, 0.8]),
            entry("KD", 1, [0.7, 0.8, 0.9, 1.0]),
            entry("Scratch", 0, [0.4, 0.5, 0.6, 0.65]),
            {"name": "Teacher", "role": "teacher", "validation": {"val_accuracy": 0.95, "val_crossentropy": 0.2}},
        ]
    }
    plots.comparison_plots(results, lambda name: tmp_path / name)
    return dict(kept)


def test_epoch_ticks_are_whole_numbers(figures):
    for name, figure in figures.items():
        for axes in figure.axes:
            ticks = axes.get_xticks()
            assert np.allclose(ticks, np.round(ticks)), (name, ticks)


def test_several_seeds_get_a_mean_line_and_a_std_band(figures):
    axes = figures["KT_Methods_Comparison_accuracy_vs_epoch.png"].axes[0]
    kd = next(line for line in axes.get_lines() if line.get_label().startswith("KD"))
    assert kd.get_label() == "KD (mean ± std, 2 seeds)"
    np.testing.assert_allclose(kd.get_ydata(), [0.6, 0.7, 0.8, 0.9])
    (band,) = axes.collections  # one band: Scratch ran with one seed
    upper = band.get_paths()[0].vertices[:, 1].max()
    np.testing.assert_allclose(upper, 0.9 + np.std([0.8, 1.0], ddof=1))  # sample std, as the tables


def test_the_teacher_line_names_its_value(figures):
    axes = figures["KT_Methods_Comparison_accuracy_vs_epoch.png"].axes[0]
    assert "Teacher (validation: 0.9500)" in [line.get_label() for line in axes.get_lines()]


def test_each_plot_is_listed_in_the_manifest_before_it_is_written(monkeypatch, tmp_path):
    # --overwrite removes what the manifest lists: a plot the run dies writing must be listed.
    from ktrain.outfolder import OutFolder, manifest_names

    listed_when_written = []

    def check(figure, path):
        listed_when_written.append(path.name in manifest_names(tmp_path, "run_"))
        return path

    monkeypatch.setattr(plots, "save_figure", check)
    results = {"results": [entry("KD", 0, [0.5, 0.6]), entry("Scratch", 0, [0.4, 0.5])]}
    written = plots.comparison_plots(results, OutFolder(tmp_path, "run").output)
    assert [path.name for path in written][-1] == "run_scratch_validation_curves.png"
    assert len(listed_when_written) == 4 and all(listed_when_written)
