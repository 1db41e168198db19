"""From specs to views: the student model, and the teacher as one view or an ensemble of specialists.

Call these inside ``strategy.scope()``. The teacher view taps the union of what the methods ask of
the teacher, so one forward pass (or one cache) serves every method of a comparison.
"""

from __future__ import annotations

import logging
import warnings

import keras

from ktrain import evaluation, models
from ktrain.data import DataSplits
from ktrain.errors import KtrainError, counted, first_line
from ktrain.methods.selection import MethodSpec, for_teacher
from ktrain.precision import FIDELITY_WARNING, fidelity, policy_copy
from ktrain.scaling import carry_input_scale
from ktrain.specialists import SpecialistEnsemble, load_ensemble, split_spec
from ktrain.specs import ModelsSpec, is_object, label
from ktrain.taps import NetworkView, method_view

log = logging.getLogger("ktrain")


def load_student(
    spec: ModelsSpec, data: DataSplits, *, copy: bool = False, quiet: bool = False, role: str = "student"
) -> keras.Model:
    """The student model from its file or zoo name, with ``--reinit`` and ``-w`` applied.

    A model object is used as it is (its ``trainable`` flags are the caller's), or, with ``copy``,
    copied in the current scope; a file's or zoo model is made trainable (one saved with every
    layer frozen is refused by ``models.check_model``). ``quiet``: loaded again, it does not repeat
    what its loading says about its pixel range. ``role``: how messages name it (``model`` for
    ``train``)."""
    model = models.load_for(spec.student, role=role, data=data, input_scale=spec.student_scale, quiet=quiet)
    if is_object(spec.student):
        if copy:
            model = models.copy_model(model, role)
    else:
        model.trainable = True
    policy = keras.mixed_precision.global_policy().name  # --precision, set for the whole job
    if policy != "float32" and any(
        layer.dtype_policy.name != policy for layer in model._flatten_layers(include_self=False) if layer.weights
    ):
        # A file's (or object's) layers keep the policy they were saved with: run a copy under --precision.
        model = policy_copy(model, policy)
        model.trainable = True
        log.info("The %s runs in %s (a copy of its float32 layers)", role, policy)
    if spec.reinit:
        model = carry_input_scale(model, keras.models.clone_model(model))  # clone_model draws fresh weights
    if spec.start_weights:
        try:
            with warnings.catch_warnings():  # Keras warns per layer it skips; the one line below says it all
                warnings.simplefilter("ignore")
                model.load_weights(spec.start_weights)
        except Exception as exc:
            raise KtrainError(
                f"could not load start weights '{spec.start_weights}' into the {role} ({first_line(exc)}): "
                "give a weights file saved from the same architecture"
            ) from exc
    return model


def is_ensemble(spec: ModelsSpec, model: keras.Model, methods: tuple[MethodSpec, ...]) -> bool:
    """The teacher is an ensemble when it has several outputs, names its classes (``FILE:0-4``), comes
    with ``--specialist`` members, or a method asks for one."""
    return (
        any(method.cls.uses_ensemble for method in methods)
        or bool(spec.specialists)
        or split_spec(spec.teacher)[1] is not None
        or len(model.outputs) > 1
    )


def load_teacher(
    spec: ModelsSpec,
    data: DataSplits,
    methods: tuple[MethodSpec, ...],
    *,
    explicit: bool = True,
    model: keras.Model | None = None,
    copy: bool = False,
    student: keras.Model | None = None,
    failures: list | None = None,
    precision: str = "float32",
) -> tuple[NetworkView | SpecialistEnsemble, tuple[MethodSpec, ...]]:
    """The frozen teacher, and the methods that run with it (ensemble variants for an ensemble),
    resolved against the ``student`` model and the teacher (``Method.resolve``: AT's layer pairs).

    ``model``, if given, is the teacher already loaded (or just trained). A model object is frozen
    in place (the caller restores its flags: :func:`ktrain.models.unchanged_trainable`) or, with
    ``copy``, copied in the current scope first. With ``failures`` (a list), a method that cannot be
    resolved is dropped and ``(spec, message)`` appended there; without it, the KtrainError rises.
    ``precision`` (``--teacher-precision``): a single teacher's forward pass runs in a copy under
    that dtype policy; the view then records ``precision`` and its ``fidelity`` to float32."""
    path = split_spec(spec.teacher)[0]
    if model is None:
        model = models.load_for(path, role="teacher", data=data, input_scale=spec.teacher_scale)
        if is_object(path) and copy:
            model = models.copy_model(model, "teacher")
    if is_ensemble(spec, model, methods):
        if precision != "float32":
            raise KtrainError(
                f"--teacher-precision {precision} with an ensemble teacher: ensembles run in float32, "
                "drop --teacher-precision"
            )
        methods = for_teacher(methods, True, explicit)
        teacher = load_ensemble([spec.teacher, *spec.specialists], data, first=model, input_scale=spec.teacher_scale)
        log.info("Teacher ensemble: %s", teacher.source)
    else:
        methods = resolve_methods(methods, student, model, failures)
        taps = [tap for method in methods for tap in method.build().teacher_taps().values()]
        name = f"teacher '{label(spec.teacher)}'"
        if precision == "float32":
            teacher = NetworkView(model, data.x_val, name=name, taps=taps)
        else:
            teacher = reduced_teacher(model, precision, data, name, taps)
        teacher.precision = precision
        model.trainable = False
    return teacher, methods


def reduced_teacher(model: keras.Model, precision: str, data: DataSplits, name: str, taps) -> NetworkView:
    """The teacher's view in a ``precision`` copy, with its fidelity to float32 on the validation
    split (``view.fidelity``); a warning names a top-1 agreement below 99 %."""
    reference = NetworkView(model, data.x_val, name=name)
    reduced_model = policy_copy(model, precision)
    reduced_model.trainable = False
    teacher = NetworkView(reduced_model, data.x_val, name=name, taps=taps)
    teacher.params = reference.params
    reference_logits = evaluation.predict_logits(reference, data.x_val)
    reduced_logits = evaluation.predict_logits(teacher, data.x_val)
    teacher.fidelity = fidelity(reference_logits, reduced_logits)
    agreement = teacher.fidelity["top1_agreement"]
    log.info(
        "Teacher in %s: top-1 agreement %.4f and mean KL %.3g with float32 on the validation split",
        precision,
        agreement,
        teacher.fidelity["mean_kl"],
    )
    if agreement < FIDELITY_WARNING:
        log.warning(
            "the %s teacher agrees with float32 on only %.1f %% of validation images: use "
            "--teacher-precision float32 (or bfloat16 rather than float16)",
            precision,
            100 * agreement,
        )
    return teacher


def resolve_methods(methods: tuple[MethodSpec, ...], student, teacher, failures: list | None) -> tuple[MethodSpec, ...]:
    """Each method resolved against the models (see :func:`load_teacher` for ``failures``)."""
    if student is None:
        return methods
    resolved = []
    for spec in methods:
        try:
            resolved.append(spec.resolved(student, teacher))
        except KtrainError as exc:
            if failures is None:
                raise
            failures.append((spec, str(exc)))
    if not resolved and methods:
        raise KtrainError(failures[0][1] if failures else "no method could run with these models")
    return tuple(resolved)


def student_view(model: keras.Model, data: DataSplits, spec: ModelsSpec, method, role: str = "student") -> NetworkView:
    """The student as the method taps it (``role``: how messages name it)."""
    return method_view(model, method, "student", data.x_val, name=f"{role} '{label(spec.student)}'")


def check_classes(student: NetworkView, teacher, spec: ModelsSpec, data: DataSplits, role: str = "student") -> None:
    """Teacher, student (named ``role`` in messages) and dataset agree on the number of classes."""
    if teacher is not None and teacher.num_classes != student.num_classes:
        raise KtrainError(
            f"teacher '{label(spec.teacher)}' outputs {counted(teacher.num_classes, 'class')} but student "
            f"'{label(spec.student)}' outputs "
            f"{student.num_classes}: give a teacher and a student with the same classes"
        )
    for who, name, view in (("teacher", label(spec.teacher), teacher), (role, label(spec.student), student)):
        if view is not None and view.num_classes != data.num_classes:
            raise KtrainError(
                f"{who} '{name}' outputs {counted(view.num_classes, 'class')} but dataset '{data.name}' has "
                f"{data.num_classes}: give a model with {data.num_classes} outputs"
            )
