"""A distillation fit that can be paused (to be SIGKILLed) and resumed.

Run by tests/test_interruption.py in subprocesses:

    python -m tests.interruption_script --backup DIR --out FILE.npz
        [--pause-at EPOCH BATCH] [--shuffle] [--augment [--lose-view-states]]

With `--pause-at`, it prints `PAUSED` at the end of that batch (0-based) and
sleeps until killed. Otherwise it trains to the end (resuming from the
BackupAndRestore folder if it holds a backup) and saves the student's
weights, the optimizer's variables and the live values to FILE.npz. With
`--augment`, the inputs are 6×6 images and the Distiller augments them
(random translations and flips) and mixes them (mixup).
"""

import argparse
import os
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_kd  # noqa: E402
from keras_kd import schedules  # noqa: E402

EPOCHS = 4
BATCH_SIZE = 32
EXAMPLES = 256  # 8 steps per epoch.


class _Pause(keras.callbacks.Callback):
    def __init__(self, epoch, batch):
        super().__init__()
        self.at = (epoch, batch)
        self.epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_end(self, batch, logs=None):
        if (self.epoch, batch) == self.at:
            print("PAUSED", flush=True)
            time.sleep(600)


def _models(augment=False):
    keras.utils.set_random_seed(0)
    inputs = [keras.Input((6, 6, 1)), keras.layers.Flatten()] if augment else [keras.Input((20,))]
    teacher = keras.Sequential(
        inputs + [keras.layers.Dense(64, activation="relu"), keras.layers.Dense(5)],
        name="teacher",
    )
    student = keras.Sequential(
        inputs + [
            keras.layers.Dense(16, activation="relu"),
            keras.layers.Dropout(0.3),
            keras.layers.Dense(5),
        ],
        name="student",
    )
    return teacher, student


def _dataset(shuffle, augment=False):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(EXAMPLES, 20)).astype("float32")
    if augment:
        x = rng.normal(size=(EXAMPLES, 6, 6, 1)).astype("float32")
    y = rng.integers(0, 5, EXAMPLES)
    dataset = tf.data.Dataset.from_tensor_slices((x, y))
    if shuffle:
        dataset = dataset.shuffle(EXAMPLES, seed=1, reshuffle_each_iteration=True)
    return dataset.batch(BATCH_SIZE)


def _lose_view_states_on_restore(distiller):
    """The counterfactual: a restore that resets the augmentation's seeds."""
    load = distiller.load_own_variables
    initial = [(v, v.numpy()) for layer in distiller._augmentation.random_layers for v in layer.variables]

    def load_without_view_states(store):
        load(store)
        for variable, value in initial:
            variable.assign(value)

    distiller.load_own_variables = load_without_view_states


def main(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--backup", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--pause-at", type=int, nargs=2)
    parser.add_argument("--shuffle", action="store_true")
    parser.add_argument("--augment", action="store_true")
    parser.add_argument("--lose-view-states", action="store_true")
    args = parser.parse_args(argv)

    tf.config.experimental.enable_op_determinism()
    teacher, student = _models(args.augment)
    views = {}
    if args.augment:
        views = dict(
            augmentation=keras.Sequential([
                keras.layers.RandomTranslation(0.3, 0.3, seed=1),
                keras.layers.RandomFlip("horizontal", seed=2),
            ]),
            mixing="mixup",
        )
    distiller = keras_kd.Distiller(teacher, student, temperature=8.0, alpha=0.5, **views)
    if args.lose_view_states:
        _lose_view_states_on_restore(distiller)
    distiller.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    callbacks = [
        keras.callbacks.BackupAndRestore(args.backup, save_freq="epoch"),
        keras_kd.callbacks.LiveValueScheduler(
            schedules={
                "temperature": schedules.Cosine(8.0, 1.0, duration=1.0, fractions=True),
                "alpha": schedules.Linear(0.5, 0.9, duration=1.0, fractions=True),
            },
            per="batch",
        ),
    ]
    if args.pause_at:
        callbacks.append(_Pause(*args.pause_at))
    history = distiller.fit(
        _dataset(args.shuffle, args.augment), epochs=EPOCHS, callbacks=callbacks, verbose=0
    )
    np.savez(
        args.out,
        epochs_run=len(history.history["loss"]),
        temperature=distiller.temperature.numpy(),
        alpha=distiller.alpha.numpy(),
        iterations=distiller.optimizer.iterations.numpy(),
        **{f"student_{i}": w.numpy() for i, w in enumerate(student.weights)},
        **{f"optimizer_{i}": v.numpy() for i, v in enumerate(distiller.optimizer.variables)},
    )


if __name__ == "__main__":
    main(sys.argv[1:])
