"""Trains one Distiller on one JAX CPU device, then under
`keras.distribution.DataParallel` over two, and prints both results as JSON.

Run by `tests/test_backends.py` in its own process: the two host devices must
be asked for (XLA_FLAGS) before JAX starts.
"""

import json
import os

os.environ["XLA_FLAGS"] = "--xla_force_host_platform_device_count=2"
os.environ["KERAS_BACKEND"] = "jax"

import jax  # noqa: E402
import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_kd  # noqa: E402


def _mlp(hidden, seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(hidden, activation="relu"), keras.layers.Dense(4)]
    )


def _train(x, y, weights):
    teacher, student = _mlp(16, 1), _mlp(8, 2)
    distiller = keras_kd.Distiller(teacher, student, temperature=3.0, alpha=0.3)
    distiller.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    history = distiller.fit(x, y, sample_weight=weights, batch_size=16, epochs=3, shuffle=False, verbose=0)
    return {"history": history.history, "weights": [np.asarray(w).tolist() for w in student.get_weights()]}


rng = np.random.default_rng(0)
x = rng.normal(size=(64, 6)).astype("float32")
y = rng.integers(0, 4, 64).astype("int32")
weights = rng.uniform(0, 2, 64).astype("float32")
one = _train(x, y, weights)
keras.distribution.set_distribution(keras.distribution.DataParallel(devices=jax.devices()))
two = _train(x, y, weights)
print(json.dumps({"devices": len(jax.devices()), "one": one, "two": two}))
