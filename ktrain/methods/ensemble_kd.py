"""KD from the averaged ensemble of a specialist teacher (the baseline selective KD is measured against).

    L = T² · KL(softmax(log q / T) ‖ softmax(z_s / T)) + λ · CE(y, softmax(z_s))

where q is the averaged ensemble of ktrain.specialists.ensemble_log_probs: the generalists' mean,
with each specialist refining it inside its classes. With a single generalist this is plain KD.
"""

from __future__ import annotations

from ktrain.errors import KtrainError
from ktrain.methods.base import Method, register
from ktrain.methods.kd import KDOptions, kd_per_example, maybe_standardized, with_supervised
from ktrain.specialists import ensemble_log_probs


@register
class EnsembleKD(Method):
    name = "ensemble-kd"
    display_name = "Ensemble KD"
    mixed_samples = True
    aliases = ("ensemble",)
    Options = KDOptions
    uses_ensemble = True

    def attach_teacher(self, teacher) -> None:
        self.layout, self.num_classes = teacher.layout, teacher.num_classes

    def losses(self, batch):
        if not hasattr(self, "layout"):
            raise KtrainError("ensemble KD was built without its teacher's layout")
        options = self.options
        teacher = ensemble_log_probs(batch.teacher_logits, self.layout, self.num_classes)
        # Log-probabilities are logits up to a per-sample shift, which standardization removes.
        student, teacher = maybe_standardized(batch.student_logits, teacher, options.logit_standardization)
        soft = options.kd_weight * kd_per_example(student, teacher, options.temperature)
        return with_supervised({"kd": soft}, batch, options.kd_lambda)
