"""Plain supervised training (no teacher): to make a teacher, or a from-scratch baseline student."""

from __future__ import annotations

from ktrain.losses import cross_entropy
from ktrain.methods.base import Method, register


@register
class Supervised(Method):
    name = "supervised"
    display_name = "Supervised"
    aliases = ("scratch",)
    uses_teacher = False

    def losses(self, batch):
        return {"ce": cross_entropy(batch.labels, batch.student_logits)}
