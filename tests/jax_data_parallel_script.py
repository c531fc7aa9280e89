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


def _train_augmented(images, y):
    """Consistent augmentation: one step over the global batch draws one
    transformation per example, wherever the example is placed."""

    def cnn(filters, seed):
        keras.utils.set_random_seed(seed)
        return keras.Sequential([
            keras.Input((8, 8, 1)), keras.layers.Conv2D(filters, 3, activation="relu"),
            keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(4),
        ])

    augmentation = keras.Sequential([
        keras.layers.RandomTranslation(0.25, 0.25, seed=3), keras.layers.RandomFlip("horizontal", seed=4),
    ])
    student = cnn(4, 2)
    distiller = keras_kd.Distiller(cnn(8, 1), student, alpha=0.3, augmentation=augmentation)
    distiller.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    history = distiller.fit(images, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    return {"history": history.history, "weights": [np.asarray(w).tolist() for w in student.get_weights()]}


rng = np.random.default_rng(0)
x = rng.normal(size=(64, 6)).astype("float32")
y = rng.integers(0, 4, 64).astype("int32")
weights = rng.uniform(0, 2, 64).astype("float32")
images = rng.random((64, 8, 8, 1)).astype("float32")
one, one_augmented = _train(x, y, weights), _train_augmented(images, y)
keras.distribution.set_distribution(keras.distribution.DataParallel(devices=jax.devices()))
two, two_augmented = _train(x, y, weights), _train_augmented(images, y)
print(json.dumps({
    "devices": len(jax.devices()), "one": one, "two": two,
    "one_augmented": one_augmented, "two_augmented": two_augmented,
}))
