"""DKD, DIST and logit standardization: NumPy references, golden values, saturation, options, CLI.

The golden values were computed once, independently of the TensorFlow code, with a 150-digit
mpmath implementation of the papers' formulas (exact masks, no 1000-shift, explicit sums), on
S = [[1, 2, 0.5], [0, -1, 3]] (student), Z = [[2, 1, 0], [1, 0, 4]] (teacher), labels [1, 2].
"""

import numpy as np
import pytest
import tensorflow as tf
from typer.testing import CliRunner

from ktrain.cli.main import app
from ktrain.errors import KtrainError
from ktrain.methods import get_method
from ktrain.methods.base import Batch
from ktrain.methods.dist import dist_loss
from ktrain.methods.dkd import dkd_loss, dkd_per_example, warmup_factor
from ktrain.methods.kd import kd_loss, standardize_logits

S = np.array([[1.0, 2.0, 0.5], [0.0, -1.0, 3.0]], np.float32)
Z = np.array([[2.0, 1.0, 0.0], [1.0, 0.0, 4.0]], np.float32)
Y = np.array([1, 2], np.int32)


# -- NumPy references (float64, written from the papers' definitions) ----------------------------
def softmax(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def kl(p, q):
    return np.sum(np.where(p > 0, p * (np.log(np.where(p > 0, p, 1)) - np.log(q)), 0.0), axis=-1)


def dkd_reference(zs, zt, y, alpha, beta, t):
    ps, pt = softmax(zs / t), softmax(zt / t)
    rows = np.arange(len(y))
    binary = lambda p: np.stack([p[rows, y], 1 - p[rows, y]], axis=-1)  # noqa: E731
    tckd = kl(binary(pt), binary(ps))
    others = np.ones_like(ps, bool)
    others[rows, y] = False
    ns = np.where(others, ps, 0) / (1 - ps[rows, y])[:, None]
    nt = np.where(others, pt, 0) / (1 - pt[rows, y])[:, None]
    nckd = kl(nt, np.where(others, ns, 1))
    return np.mean(t * t * (alpha * tckd + beta * nckd))


def pearson_reference(a, b, axis):
    a = a - a.mean(axis=axis, keepdims=True)
    b = b - b.mean(axis=axis, keepdims=True)
    return (a * b).sum(axis=axis) / (np.linalg.norm(a, axis=axis) * np.linalg.norm(b, axis=axis) + 1e-8)


def dist_reference(zs, zt, beta, gamma, t):
    ys, yt = softmax(zs / t), softmax(zt / t)
    inter = 1 - pearson_reference(ys, yt, 1).mean()
    intra = 1 - pearson_reference(ys, yt, 0).mean()
    return t * t * (beta * inter + gamma * intra)


def standardize_reference(z):
    return (z - z.mean(axis=-1, keepdims=True)) / (z.std(axis=-1, ddof=1, keepdims=True) + 1e-7)


def random_logits(seed, batch=16, classes=10, scale=3.0):
    rng = np.random.default_rng(seed)
    return (
        (scale * rng.standard_normal((batch, classes))).astype(np.float32),
        (scale * rng.standard_normal((batch, classes))).astype(np.float32),
        rng.integers(0, classes, batch).astype(np.int32),
    )


# -- golden values ---------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("alpha", "beta", "temperature", "golden"),
    [(1.0, 8.0, 4.0, 1.1906965147988134), (1.0, 8.0, 1.0, 0.82593543133629586), (0.5, 2.0, 2.0, 0.3062744620570916)],
)
def test_dkd_golden(alpha, beta, temperature, golden):
    assert float(dkd_loss(S, Z, Y, alpha, beta, temperature)) == pytest.approx(golden, rel=1e-5)


@pytest.mark.parametrize(
    ("beta", "gamma", "temperature", "golden"),
    [(1.0, 1.0, 1.0, 0.54226714416414926), (2.0, 0.5, 4.0, 12.55657727335103)],
)
def test_dist_golden(beta, gamma, temperature, golden):
    assert float(dist_loss(S, Z, beta, gamma, temperature)) == pytest.approx(golden, rel=1e-5)


def test_logit_standardization_golden():
    np.testing.assert_allclose(
        standardize_logits(S)[0].numpy(), [-0.21821786166456755, 1.0910893083228378, -0.8728714466582702], rtol=1e-6
    )
    assert float(kd_loss(standardize_logits(S), standardize_logits(Z), 2.0)) == pytest.approx(
        0.26627144649611498, rel=1e-5
    )


def test_dkd_saturated_teacher_golden_and_finite_gradient():
    """A teacher margin of 200 makes p_target exactly 1 in float32: TCKD must not take log 0."""
    student = tf.Variable([[0.0, 1.0, 2.0]])
    teacher = np.array([[0.0, 200.0, 0.0]], np.float32)
    with tf.GradientTape() as tape:
        loss = dkd_loss(student, teacher, np.array([1]), 1.0, 8.0, 1.0)
    assert float(loss) == pytest.approx(4.8778526083085978, rel=1e-5)
    assert np.all(np.isfinite(tape.gradient(loss, student).numpy()))


# -- NumPy references on random inputs --------------------------------------------------------------
@pytest.mark.parametrize("seed", [0, 1])
def test_dkd_matches_numpy(seed):
    zs, zt, y = random_logits(seed)
    for alpha, beta, t in [(1.0, 8.0, 4.0), (2.0, 0.5, 1.0)]:
        assert float(dkd_loss(zs, zt, y, alpha, beta, t)) == pytest.approx(
            dkd_reference(zs.astype(np.float64), zt.astype(np.float64), y, alpha, beta, t), rel=1e-4
        )


@pytest.mark.parametrize("seed", [0, 1])
def test_dist_and_standardization_match_numpy(seed):
    zs, zt, _ = random_logits(seed)
    for beta, gamma, t in [(1.0, 1.0, 1.0), (2.0, 3.0, 4.0)]:
        assert float(dist_loss(zs, zt, beta, gamma, t)) == pytest.approx(
            dist_reference(zs.astype(np.float64), zt.astype(np.float64), beta, gamma, t), rel=1e-4
        )
    np.testing.assert_allclose(standardize_logits(zs).numpy(), standardize_reference(zs.astype(np.float64)), atol=1e-5)


def test_dkd_on_two_classes_is_alpha_times_kd():
    """With two classes the non-target distribution has one class (NCKD = 0) and b = p: TCKD is KD."""
    zs, zt, y = random_logits(2, classes=2)
    expected = 0.7 * float(kd_loss(zs, zt, 3.0))
    assert float(dkd_loss(zs, zt, y, 0.7, 5.0, 3.0)) == pytest.approx(expected, rel=1e-5)


def test_relations_vanish_when_the_student_copies_the_teacher():
    _, zt, y = random_logits(3)
    assert float(dist_loss(zt, zt)) == pytest.approx(0.0, abs=1e-6)
    assert float(dkd_loss(zt, zt, y)) == pytest.approx(0.0, abs=1e-5)


def test_gradients_stay_finite_on_constant_and_extreme_logits():
    student = tf.Variable(np.zeros((4, 5), np.float32))  # all classes equal: zero std, zero centred norms
    teacher = np.array([[0, 0, 0, 0, 0], [1e4, 0, 0, 0, 0], [-1e4, 0, 0, 0, 0], [3, 1, 4, 1, 5]], np.float32)
    labels = np.array([0, 0, 1, 2])
    with tf.GradientTape() as tape:
        losses = [
            dist_loss(student, teacher),
            dkd_loss(standardize_logits(student), standardize_logits(teacher), labels),
            dkd_loss(student, teacher, labels),
        ]
        total = tf.add_n(losses)
    for loss in losses:
        assert np.isfinite(float(loss))
    assert np.all(np.isfinite(tape.gradient(total, student).numpy()))


def test_standardized_kd_ignores_the_scale_and_shift_of_the_logits():
    zs, zt, y = random_logits(4)
    kd = get_method("kd")(logit_standardization=True, kd_lambda=0.0)
    plain = kd.losses(Batch.local(y, zs, zt))["kd"]
    moved = kd.losses(Batch.local(y, 5.0 * zs + 2.0, 0.5 * zt - 7.0))["kd"]
    np.testing.assert_allclose(moved.numpy(), plain.numpy(), rtol=1e-4)


def test_kd_weight_scales_the_soft_term_only():
    zs, zt, y = random_logits(5)
    one = get_method("kd")(kd_weight=1.0).losses(Batch.local(y, zs, zt))
    nine = get_method("kd")(kd_weight=9.0).losses(Batch.local(y, zs, zt))
    np.testing.assert_allclose(nine["kd"].numpy(), 9.0 * one["kd"].numpy(), rtol=1e-6)
    np.testing.assert_allclose(nine["ce"].numpy(), one["ce"].numpy())


def test_dkd_warms_up_over_its_epochs():
    zs, zt, y = random_logits(6)
    dkd = get_method("dkd")(dkd_warmup=20)
    first = dkd.losses(Batch.local(y, zs, zt, epoch=1))["dkd"]
    later = dkd.losses(Batch.local(y, zs, zt, epoch=25))["dkd"]
    np.testing.assert_allclose(first.numpy(), later.numpy() / 20, rtol=1e-6)
    np.testing.assert_allclose(later.numpy(), dkd_per_example(zs, zt, y).numpy(), rtol=1e-6)
    assert float(warmup_factor(tf.constant(3.0), 0)) == 1.0


@pytest.mark.parametrize(
    ("method", "options", "fragment"),
    [
        ("dkd", {"temperature": 0}, "temperature (-t) is 0: give a value greater than 0"),
        ("dkd", {"dkd_beta": -1}, "--dkd-beta is -1: give a value of 0 or more"),
        ("dkd", {"dkd_warmup": -1}, "--dkd-warmup is -1: give a value of 0 or more"),
        ("dkd", {"dkd_warmup": 2.5}, "give a whole number"),
        ("dist", {"dist_gamma": float("nan")}, "--dist-gamma is nan: give a finite number"),
        ("kd", {"logit_standardization": "yes"}, "give True or False"),
    ],
)
def test_bad_options_are_refused(method, options, fragment):
    with pytest.raises(KtrainError) as error:
        get_method(method)(**options)
    assert fragment in str(error.value)


def test_cli_compares_the_logit_methods_and_refuses_bad_values(tmp_path):
    runner = CliRunner()
    common = ["zoo:digits_teacher", "zoo:digits_student", "digits", "-e", "1", "-v", "0"]
    bad = runner.invoke(app, ["compare", *common, "-m", "dkd", "--dkd-warmup", "-3", "-out", str(tmp_path / "bad")])
    assert bad.exit_code == 2 and "--dkd-warmup is -3" in bad.output
    assert not (tmp_path / "bad").exists()
    outcome = runner.invoke(
        app,
        ["compare", *common, "-m", "kd,dkd,dist", "--logit-standardization", "--no-baseline"]
        + ["-out", str(tmp_path / "run"), "-or"],
    )
    assert outcome.exit_code == 0, outcome.output
    for name in ("KD", "Decoupled KD", "DIST"):
        assert name in outcome.output
