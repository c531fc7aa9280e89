"""Exports two different models to one path, over and over, until killed.

Run by tests/test_interruption.py: `python -m tests.export_kill_script DIR`.
It writes both models' outputs on fixed inputs to DIR/expected.npz, exports
model A to DIR/student.tflite, prints `READY`, then alternates B, A, B, ...
"""

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_kd  # noqa: E402


def _model(seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((12,)), keras.layers.Dense(64, activation="relu"), keras.layers.Dense(5)]
    )


def main(folder):
    models = [_model(1), _model(2)]
    inputs = np.random.default_rng(0).normal(size=(8, 12)).astype("float32")
    np.savez(
        os.path.join(folder, "expected.npz"),
        inputs=inputs,
        a=np.asarray(models[0](inputs)),
        b=np.asarray(models[1](inputs)),
    )
    path = os.path.join(folder, "student.tflite")
    keras_kd.export_tflite(models[0], path, sample=inputs)
    print("READY", flush=True)
    index = 1
    while True:
        keras_kd.export_tflite(models[index], path, sample=inputs)
        index = 1 - index


if __name__ == "__main__":
    main(sys.argv[1])
