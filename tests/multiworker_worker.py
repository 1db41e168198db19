"""One worker of the two-process MultiWorkerMirroredStrategy test (run by tests/test_multiworker.py).

Usage: python tests/multiworker_worker.py WEIGHTS_OUT.npz   (with TF_CONFIG set)
Trains the digits student with KD for two epochs and saves its final weights.
"""

import os
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np

from ktrain import zoo
from ktrain.config import OptimizerConfig, ScheduleConfig, TrainConfig
from ktrain.data import DataSplits, load_dataset
from ktrain.engine import Trainer
from ktrain.methods import get_method
from ktrain.seeding import seed_everything
from ktrain.strategy import build_strategy, is_chief
from ktrain.taps import NetworkView

strategy = build_strategy("multiworker")  # before any other TensorFlow work
seed_everything(0)
digits = load_dataset("digits")
data = DataSplits(
    "digits",
    digits.x_train[:256],
    digits.y_train[:256],
    digits.x_val[:128],
    digits.y_val[:128],
    digits.x_test[:64],
    digits.y_test[:64],
    10,
)
with strategy.scope():
    teacher = zoo.build("digits_teacher", data.image_shape, 10)
    student = zoo.build("digits_student", data.image_shape, 10)
config = TrainConfig(
    epochs=2, optimizer=OptimizerConfig(decay=0.0), schedule=ScheduleConfig(lr_decay=0.0, early_stopping_patience=0)
).validate()
result = Trainer(
    student=NetworkView(student),
    teacher=NetworkView(teacher),
    method=get_method("kd")(),
    config=config,
    strategy=strategy,
).fit(data)
np.savez(
    sys.argv[1],
    *student.get_weights(),
    loss=np.array(result.columns()["loss"]),
    replicas=strategy.num_replicas_in_sync,
    chief=is_chief(strategy),
)
