"""Plain supervised training (no teacher): to make a teacher, or a from-scratch baseline student."""

from __future__ import annotations

from ktrain.methods.base import Method, register


@register
class Supervised(Method):
    name = "supervised"
    display_name = "Supervised"
    mixed_samples = True
    aliases = ("scratch",)
    uses_teacher = False

    def losses(self, batch):
        return {"ce": batch.label_loss(batch.student_logits)}
