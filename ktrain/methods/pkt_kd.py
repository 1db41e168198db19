"""PKT plus KD: ``w_kd · (KD + λ · CE) + w_pkt · PKT`` (the seed's "PKT plus Distillation").

The seed bolted a 2C-unit head onto the student and applied PKT to its softmax
(seed-behaviour.md §5.3); here PKT acts on the penultimate features of both networks, as the
paper does, and KD on the logits, from one forward pass of each.
"""

from __future__ import annotations

from ktrain.errors import KtrainError
from ktrain.methods.base import Method, register
from ktrain.methods.kd import KnowledgeDistillation
from ktrain.methods.pkt import pkt_loss


@register
class PktPlusKd(Method):
    name = "pkt+kd"
    display_name = "PKT plus Distillation"
    aliases = ("pkt+distillation",)
    uses_features = True
    gathers_features = True

    def __init__(self, temperature: float = 2.0, kd_lambda: float = 0.1, kd_weight: float = 1.0,
                 pkt_weight: float = 1.0):
        for label, value in (("KD importance weight (-kdw)", kd_weight), ("PKT importance weight (-pktw)", pkt_weight)):
            if value < 0:
                raise KtrainError(f"{label} is {value}: give a weight of 0 or more")
        self.kd = KnowledgeDistillation(temperature, kd_lambda)
        self.kd_weight = float(kd_weight)
        self.pkt_weight = float(pkt_weight)

    def losses(self, batch):
        parts = {name: self.kd_weight * value for name, value in self.kd.losses(batch).items()}
        parts["pkt"] = self.pkt_weight * pkt_loss(batch.student_features, batch.teacher_features)
        return parts

    def options(self):
        return {**self.kd.options(), "kd_weight": self.kd_weight, "pkt_weight": self.pkt_weight}
