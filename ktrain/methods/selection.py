"""Which methods a command runs, with which options: the only place that knows method names by heart.

An option given explicitly applies to every chosen method that has it; an unset one takes each
method's own default; an option none of the chosen methods has is an error. With an ensemble
teacher, a method is replaced by its ensemble variant (kd -> ensemble-kd).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from ktrain.errors import KtrainError
from ktrain.methods.base import Method, Options, get_method, option_specs, registered
from ktrain.options import plain

# What each command runs when no method is named.
DEFAULTS: dict[str, tuple[str, ...]] = {
    "train": ("supervised",),
    "distill": ("kd",),
    "pkt": ("pkt",),
    "compare": ("kd", "pkt", "pkt+kd"),
    "sweep": ("kd",),
}
# Commands that take one method (a switch replaces it) and commands that take several (a switch adds one).
SINGLE = ("train", "distill", "pkt")
BASELINE = "supervised"
# The offline demo: the seed's three methods, at their defaults.
DEMOS: dict[str, tuple[tuple[str, ...], dict[str, Any]]] = {
    "seed": (("kd", "pkt", "pkt+kd"), {}),
    "pyramid": (("kd", "selective-kd"), {}),
}


@dataclass(frozen=True)
class MethodSpec:
    """A method class and its resolved options; ``given`` keeps what the user set explicitly, and
    ``point`` a sweep's grid values for this run (they are in ``options`` too)."""

    cls: type[Method]
    options: Options
    given: Mapping[str, Any] = field(default_factory=dict)
    point: tuple[tuple[str, Any], ...] = ()

    @classmethod
    def of(cls, name: str, given: Mapping[str, Any] | None = None) -> MethodSpec:
        method = get_method(name)
        own = {key: value for key, value in (given or {}).items() if key in method.Options.specs()}
        return cls(method, method.Options.from_values(own, method.name), dict(own))

    @property
    def name(self) -> str:
        return self.cls.name

    @property
    def display_name(self) -> str:
        """How tables name the run: the method's name, plus its grid values in a sweep."""
        return " ".join([self.cls.display_name, *(f"{key}={plain(value)}" for key, value in self.point)])

    @property
    def key(self) -> str:
        """A file-name-safe name of the run (its checkpoint folder): the method's, plus its grid values."""
        parts = [self.name, *(f"{key}-{plain(value)}" for key, value in self.point)]
        return "_".join(parts).replace("/", "-").replace(" ", "")

    def build(self) -> Method:
        """A fresh method object (with no state yet): one per training run."""
        return self.cls(self.options)

    def resolved(self, student, teacher) -> MethodSpec:
        """This spec with the choices its method makes from the models (``Method.resolve``)."""
        return replace(self, options=self.cls.resolve(self.options, student, teacher))

    def for_ensemble(self) -> MethodSpec:
        """The spec that runs with an ensemble teacher, or a KtrainError when the method needs one model."""
        if self.cls.uses_ensemble:
            return self
        if self.cls.ensemble_variant is None:
            usable = sorted({cls.name for cls in registered() if cls.uses_ensemble or cls.ensemble_variant})
            raise KtrainError(
                f"method '{self.name}' needs one teacher model, but the teacher is an ensemble: use one of "
                f"{', '.join(usable)}"
            )
        return replace(MethodSpec.of(self.cls.ensemble_variant, self.given), point=self.point)

    def check_epochs(self, epochs: int) -> None:
        """Refuse, in one line, options that leave no epoch for what the method is for."""
        refusal = self.cls.epochs_refusal(self.options, epochs)
        if refusal:
            raise KtrainError(f"method '{self.name}': {refusal}")

    def check_samples(self, mixing: str | None, topk: int | None) -> None:
        """Refuse, in one line, a mixing augmentation or top-N targets the method cannot learn from."""
        refusal = self.cls.mixing_refusal(self.options) if mixing else None
        if refusal:
            raise KtrainError(
                f"method '{self.name}' cannot learn from {mixing} samples: {refusal}; "
                f"drop {mixing} from --augment or choose another method"
            )
        refusal = self.cls.topk_refusal(self.options) if topk is not None and self.cls.uses_teacher else None
        if refusal:
            usable = ", ".join(cls.name for cls in registered() if cls.topk_targets)
            raise KtrainError(
                f"--cache-topk {topk} with method '{self.name}': {refusal}; top-N targets serve {usable} "
                "(without logit standardization), drop --cache-topk"
            )

    def record(self) -> dict[str, Any]:
        return {"name": self.name, "options": self.options.to_dict()}


def ensemble_sources() -> set[str]:
    """Methods that have an ensemble variant (kd)."""
    return {cls.name for cls in registered() if cls.ensemble_variant}


def choose(
    command: str,
    names: Iterable[str] | None = None,
    switches: Iterable[str] = (),
    options: Mapping[str, Any] | None = None,
) -> tuple[tuple[MethodSpec, ...], bool]:
    """The methods ``command`` runs and whether they were named explicitly.

    ``names``: methods named by the user (None: the command's default). ``switches``: names of the
    methods whose switch was given (``-sl``). ``options``: the explicitly given options only.
    """
    explicit = names is not None
    chosen = [get_method(name).name for name in (names if explicit else DEFAULTS[command])]
    for name in switches:
        cls = get_method(name)
        if command in SINGLE:
            chosen = [cls.name]
        elif cls.name not in chosen:
            chosen.append(cls.name)
    refuse_repeats(chosen)
    options = dict(options or {})
    check_options_apply(options, chosen)
    return tuple(MethodSpec.of(name, options) for name in chosen), explicit


def check_options_apply(options: Mapping[str, Any], chosen: list[str]) -> None:
    """An option that no chosen method has would be silently ignored: refuse it."""
    specs = option_specs()
    for key in options:
        if key not in specs:
            raise KtrainError(f"unknown method option '{key}': use one of {', '.join(specs)}")
        if not any(key in get_method(name).Options.specs() for name in chosen):
            flag = specs[key].flags[0]
            users = [cls.name for cls in registered() if key in cls.Options.specs()]
            raise KtrainError(
                f"{flag} has no effect on {', '.join(chosen)}: it is an option of {', '.join(users)}; drop it or "
                "choose such a method"
            )


def refuse_repeats(names: list[str]) -> None:
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise KtrainError(
            f"method '{repeated[0]}' was given twice (seed names are aliases, and with an ensemble teacher "
            f"{' and '.join(sorted(ensemble_sources()))} take their ensemble variant): give each method once"
        )


def for_teacher(specs: tuple[MethodSpec, ...], ensemble: bool, explicit: bool) -> tuple[MethodSpec, ...]:
    """The specs that run with this teacher: with an ensemble, each method's ensemble variant; a default
    method that cannot use an ensemble is dropped, an explicit one is an error."""
    if not ensemble:
        return specs
    usable = specs if explicit else [s for s in specs if s.cls.uses_ensemble or s.cls.ensemble_variant]
    resolved = tuple(spec.for_ensemble() for spec in usable)
    refuse_repeats([spec.display_name for spec in resolved])  # a sweep's points differ by their grid values
    return resolved


def baseline() -> MethodSpec:
    return MethodSpec.of(BASELINE)


# Commands that name their methods with -m (any teacher method); the others offer their default and switches.
CHOOSABLE = ("distill", "compare", "sweep")


def offered(command: str) -> list[type[Method]]:
    """The methods ``command`` can run: what its options and switches are generated from."""
    if command in CHOOSABLE:
        return [cls for cls in registered() if cls.uses_teacher]
    switched = [cls for cls in registered() if cls.switch is not None and command in cls.switch.commands]
    return [get_method(name) for name in DEFAULTS.get(command, ())] + switched
