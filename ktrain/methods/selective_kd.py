"""Selective KD: a student taught by specialist teachers, each only about its own classes.

For specialist k covering classes S_k, with logits t_k over S_k, and the student's logits z_s:

    L = Σ_k g_k · T² · KL(softmax(t_k / T) ‖ softmax(z_s[S_k] / T))      (selective part)
      + mean over generalists g of T² · KL(softmax(t_g / T) ‖ softmax(z_s / T))   (if any)
      + λ · CE(y, softmax(z_s))

z_s[S_k] is the student's logits restricted to S_k, so a specialist shapes how the student ranks
the classes inside S_k and nothing else: the gradient of its term on every other logit is zero.
The gate g_k (``--gate``) says which samples teach through specialist k:

* ``label``: the sample's label is in S_k (a specialist only speaks about the classes it knows);
* ``teacher``: the generalists' top class is in S_k (no labels needed; needs a generalist);
* ``none``: every sample, so specialists also speak about images of classes they never saw.

The seed's "selective learning" selected nothing: its per-specialist
student heads shared every weight, its selection callback was a no-op, and each specialist was
zero-padded to all classes and softmaxed again, so it reduced to KD against the mean of padded
distributions. Specialist models over class subsets come from Hinton, Vinyals & Dean (2015, §5),
who combined them with a generalist at inference; here they teach one small student instead. The
seed author's paper is "Improving knowledge distillation using unified ensembles of specialized
teachers" (Pattern Recognition Letters).
"""

from __future__ import annotations

from dataclasses import dataclass

import tensorflow as tf

from ktrain.errors import KtrainError
from ktrain.methods.base import Method, Option, Options, Switch, register
from ktrain.methods.kd import KD_LAMBDA, TEMPERATURE, kd_per_example, with_supervised
from ktrain.specialists import generalist_probabilities, is_generalist, member_columns

GATES = ("label", "teacher", "none")
GATE = Option(
    "gate",
    ("--gate",),
    "Which samples teach through specialist k: label (label in its classes), "
    "teacher (generalist's top class in them) or none (all).",
    kind=str,
    check="any",
    choices=GATES,
)


def selective_kd_parts(
    student_logits, member_logits, labels, layout, num_classes: int, temperature: float, gate: str = "label"
) -> dict[str, tf.Tensor]:
    """Per-example ``selective`` (specialists) and ``kd`` (generalists, if any) parts of the loss."""
    student_logits = tf.cast(student_logits, tf.float32)
    columns = member_columns(member_logits, layout)
    if gate == "teacher":
        route = generalist_probabilities(member_logits, layout, num_classes)
        if route is None:
            raise KtrainError(
                "--gate teacher needs a generalist teacher to pick the top class: add one or use --gate label"
            )
        deciding = tf.argmax(route, axis=-1, output_type=tf.int32)
    elif gate == "label":
        deciding = tf.cast(labels, tf.int32)
    selective = tf.zeros_like(student_logits[:, 0])
    general = []
    for teacher, classes in zip(columns, layout):
        if is_generalist(classes, num_classes):
            general.append(kd_per_example(student_logits, teacher, temperature))
            continue
        restricted = tf.gather(student_logits, list(classes), axis=1)
        term = kd_per_example(restricted, teacher, temperature)
        if gate != "none":
            inside = tf.reduce_any(tf.equal(deciding[:, None], tf.constant(classes, tf.int32)[None, :]), axis=1)
            term = tf.where(inside, term, 0.0)
        selective += term
    parts = {"selective": selective}
    if general:
        parts["kd"] = tf.add_n(general) / len(general)
    return parts


@dataclass(frozen=True)
class SelectiveOptions(Options):
    temperature: float = TEMPERATURE(2.0)
    kd_lambda: float = KD_LAMBDA(0.1)
    gate: str = GATE("label")


@register
class SelectiveKD(Method):
    name = "selective-kd"
    display_name = "Selective KD"
    mixed_samples = True  # with --gate teacher or none; the label gate reads one hard label per sample

    @classmethod
    def mixing_refusal(cls, options):
        return (
            "its label gate reads one hard label per sample (--gate teacher or none do not)"
            if options.gate == "label"
            else None
        )

    aliases = ("selective", "sl")
    Options = SelectiveOptions
    uses_ensemble = True
    switch = Switch(
        ("-sl", "--selective-learning"),
        "Selective KD: each specialist teaches the student only about its own classes (needs an ensemble teacher).",
        ("distill", "compare"),
    )

    def attach_teacher(self, teacher) -> None:
        layout, num_classes = teacher.layout, teacher.num_classes
        if all(is_generalist(classes, num_classes) for classes in layout):
            raise KtrainError(
                "selective KD needs a specialist: give a teacher with narrower outputs or --specialist FILE:CLASSES"
            )
        if self.options.gate == "teacher" and not any(is_generalist(classes, num_classes) for classes in layout):
            raise KtrainError(
                "--gate teacher needs a generalist teacher to pick the top class: add one or use --gate label"
            )
        self.layout, self.num_classes = layout, num_classes

    def losses(self, batch):
        if not hasattr(self, "layout"):
            raise KtrainError("selective KD was built without its teacher's layout")
        options = self.options
        parts = selective_kd_parts(
            batch.student_logits,
            batch.teacher_logits,
            batch.labels,
            self.layout,
            self.num_classes,
            options.temperature,
            options.gate,
        )
        return with_supervised(parts, batch, options.kd_lambda)
