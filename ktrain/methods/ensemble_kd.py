"""KD from the averaged ensemble of a specialist teacher (the baseline selective KD is measured against).

    L = T² · KL(softmax(log q / T) ‖ softmax(z_s / T)) + λ · CE(y, softmax(z_s))

where q is the averaged ensemble of ktrain.specialists.ensemble_log_probs: the generalists' mean,
with each specialist refining it inside its classes. With a single generalist this is plain KD.
"""

from __future__ import annotations

from ktrain.errors import KtrainError
from ktrain.losses import cross_entropy
from ktrain.methods.base import Method, register
from ktrain.methods.kd import KnowledgeDistillation, kd_per_example
from ktrain.specialists import ensemble_log_probs


@register
class EnsembleKD(Method):
    name = "ensemble-kd"
    display_name = "Ensemble KD"
    aliases = ("ensemble",)
    uses_ensemble = True

    def __init__(self, temperature: float = 2.0, kd_lambda: float = 0.1, layout=None, num_classes: int | None = None):
        KnowledgeDistillation(temperature, kd_lambda)  # the same checks of -t and -kdl
        self.temperature = float(temperature)
        self.kd_lambda = float(kd_lambda)
        self.layout = layout
        self.num_classes = num_classes

    def losses(self, batch):
        if self.layout is None:
            raise KtrainError("ensemble KD was built without its teacher's layout")
        teacher = ensemble_log_probs(batch.teacher_logits, self.layout, self.num_classes)
        parts = {"kd": kd_per_example(batch.student_logits, teacher, self.temperature)}
        if self.kd_lambda:
            parts["ce"] = self.kd_lambda * cross_entropy(batch.labels, batch.student_logits)
        return parts

    def options(self):
        return {"temperature": self.temperature, "kd_lambda": self.kd_lambda}
