"""Share of the PKT term in PKT plus KD's loss at the start of training, for a range of -pktw.

From the initial student weights, over the first training batches (64 images each):

    share = w · PKT / (w · PKT + KD + λ · CE)      (-kdw 1, the method's other defaults)

It prints one JSON line per weight, then the smallest weight of the list at which PKT carries at
least 10 % of the loss.

    python benchmarks/pkt_share.py --pair digits --teacher out/teacher/model.keras   # a trained teacher file
    python benchmarks/pkt_share.py --pair digits32   # digits upsampled to 32×32×3, the CIFAR-10 zoo pair

Without --teacher, the pair's zoo teacher is first trained with labels (``ktrain.train``) for
--teacher-epochs epochs: an untrained teacher's features say nothing about the start of a real run.
"""

import argparse
import json
import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np
import tensorflow as tf

import ktrain
from ktrain import models
from ktrain.data import model_input
from ktrain.datasets import load_digits
from ktrain.methods import MethodSpec
from ktrain.methods.base import Batch
from ktrain.seeding import seed_everything
from ktrain.taps import method_view

PAIRS = {
    "digits": ("zoo:digits_teacher", "zoo:digits_student", (8, 8, 1)),
    # The seed's CIFAR-10 tower and strong student, on the digits upsampled 4× to 32×32 RGB.
    "digits32": ("zoo:cifar10_model1", "zoo:cifar10_student_strong", (32, 32, 3)),
}
WEIGHTS = (1.0, 10.0, 100.0, 300.0, 1000.0, 3000.0, 10000.0, 30000.0)


def arrays_for(pair: str):
    """(x_train, y_train, x_test, y_test) of the pair's images."""
    (x_train, y_train), (x_test, y_test) = load_digits()
    if pair == "digits32":
        x_train, x_test = (
            np.repeat(np.kron(x, np.ones((1, 4, 4), np.uint8))[..., None], 3, axis=-1) for x in (x_train, x_test)
        )
    return x_train, y_train, x_test, y_test


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pair", choices=list(PAIRS), default="digits")
    parser.add_argument("--teacher", help="Teacher file (default: the pair's zoo teacher, trained first).")
    parser.add_argument("--teacher-epochs", type=int, default=20)
    parser.add_argument("--batches", type=int, default=8)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--weights", type=float, nargs="+", default=list(WEIGHTS))
    args = parser.parse_args()
    seed_everything(0)
    zoo_teacher, zoo_student, shape = PAIRS[args.pair]
    arrays = arrays_for(args.pair)
    count = args.batches * args.batch_size
    images, labels = arrays[0][:count], arrays[1][:count]
    teacher_model = models.load_model(args.teacher or zoo_teacher, role="teacher", input_shape=shape, num_classes=10)
    if args.teacher is None:
        trained = ktrain.train(teacher_model, arrays, epochs=args.teacher_epochs)
        print(json.dumps({"teacher": zoo_teacher, "epochs": args.teacher_epochs, "test": trained.test}))
    student_model = models.load_model(zoo_student, role="student", input_shape=shape, num_classes=10)
    shares = {}
    for weight in args.weights:
        method = MethodSpec.of("pkt+kd", {"pkt_weight": weight}).build()
        student = method_view(student_model, method, "student")
        teacher = method_view(teacher_model, method, "teacher")
        totals: dict[str, float] = {}
        for start in range(0, len(labels), args.batch_size):
            x = model_input(tf.constant(images[start : start + args.batch_size]))
            y = tf.constant(labels[start : start + args.batch_size])
            s, t = student.tap(x), teacher.tap(x)
            s = {name: s[tap.key] for name, tap in method.student_taps().items()}  # by the method's tap names
            t = {name: t[tap.key] for name, tap in method.teacher_taps().items()}
            parts = method.losses(Batch.local(y, s["logits"], t["logits"], student=s, teacher=t))
            for name, value in parts.items():
                totals[name] = totals.get(name, 0.0) + float(tf.reduce_mean(value)) / args.batches
        share = totals["pkt"] / sum(totals.values())
        shares[weight] = share
        print(
            json.dumps(
                {
                    "pair": args.pair,
                    "teacher": args.teacher or f"{zoo_teacher} (trained {args.teacher_epochs} epochs)",
                    "pkt_weight": weight,
                    "parts": totals,
                    "pkt_share": share,
                }
            )
        )
    enough = [weight for weight, share in shares.items() if share >= 0.1]
    smallest = min(enough) if enough else "none listed"
    print(f"smallest -pktw with PKT >= 10 % of the initial loss on {args.pair}: {smallest}")


if __name__ == "__main__":
    main()
