"""One worker of a 2-worker MultiWorkerMirroredStrategy run (or the 1-process twin).

Run by tests/test_multi_worker.py:

    python -m tests.multi_worker_script --mode MODE --out DIR
        [--index I --ports P0 P1]

Modes:
    keras_kd      fit a Distiller (annealing, chief-only export and checkpoint)
                  under MultiWorkerMirroredStrategy; save weights and history.
    single        the same fit in one process without a strategy, same
                  global batches.
    plain         fit a plain keras.Sequential under the strategy; record the
                  error Keras raises (upstream failure 1).
    plain_built   the same with failure 1 worked around; record the next
                  error (upstream failure 2).
"""

import argparse
import json
import os
import sys
import time

GLOBAL_BATCH = 32
EXAMPLES = 256
EPOCHS = 2


def _configure(index, ports):
    os.environ["TF_CONFIG"] = json.dumps(
        {
            "cluster": {"worker": [f"127.0.0.1:{port}" for port in ports]},
            "task": {"type": "worker", "index": index},
        }
    )


def _data(tf, np):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(EXAMPLES, 12)).astype("float32")
    y = rng.integers(0, 5, EXAMPLES)
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH)
    options = tf.data.Options()
    # Each global batch is split between the workers, so the run sees the
    # same global batches as one process.
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


def _mlp(keras, hidden, seed, name):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((12,)), keras.layers.Dense(hidden, activation="relu"), keras.layers.Dense(5)],
        name=name,
    )


def main(argv):
    parser = argparse.ArgumentParser()
    parser.add_argument("--mode", required=True)
    parser.add_argument("--out", required=True)
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--ports", type=int, nargs=2)
    args = parser.parse_args(argv)
    if args.mode != "single":
        _configure(args.index, args.ports)

    os.environ.setdefault("KERAS_BACKEND", "tensorflow")
    import keras
    import numpy as np
    import tensorflow as tf

    import keras_kd

    out = os.path.join(args.out, f"worker{args.index}")
    os.makedirs(out, exist_ok=True)
    if args.mode == "single":
        strategy = tf.distribute.get_strategy()
    else:
        strategy = tf.distribute.MultiWorkerMirroredStrategy(
            communication_options=tf.distribute.experimental.CommunicationOptions(
                implementation=tf.distribute.experimental.CommunicationImplementation.RING
            )
        )
    sparse = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    if args.mode in ("plain", "plain_built"):
        base = keras.Sequential
        if args.mode == "plain_built":

            class base(keras.Sequential):  # noqa: N801 - works around failure 1 only.
                def _maybe_symbolic_build(self, iterator=None, data_batch=None):
                    for _, _, batches in iterator:
                        data_batch = keras_kd._step.distribution.local_share(next(batches), strategy)
                        break
                    return super()._maybe_symbolic_build(data_batch=data_batch)

        with strategy.scope():
            model = base([keras.Input((12,)), keras.layers.Dense(5)])
            model.compile(optimizer="sgd", loss=sparse)
        try:
            model.fit(_data(tf, np), epochs=1, verbose=0)
            error = "no error"
        except Exception as exception:  # Recorded for the test to check.
            error = f"{type(exception).__name__}: {exception}"
        with open(os.path.join(out, "error.txt"), "w") as f:
            f.write(error)
        return

    with strategy.scope():
        distiller = keras_kd.Distiller(
            _mlp(keras, 32, 1, "teacher"), _mlp(keras, 8, 2, "student"), temperature=4.0, alpha=0.3
        )
        distiller.compile(optimizer=keras.optimizers.SGD(0.1), loss=sparse, metrics=["accuracy"])
    callbacks = [
        keras_kd.callbacks.LiveValueScheduler(
            keras_kd.schedules.Linear(4.0, 1.0, duration=1.0, fractions=True), per="batch"
        ),
        keras_kd.callbacks.TFLiteExport(os.path.join(out, "student.tflite"), verbose=0),
        keras_kd.callbacks.OnChief(
            keras.callbacks.ModelCheckpoint(os.path.join(out, "ckpt.weights.h5"), save_weights_only=True)
        ),
    ]
    start = time.perf_counter()
    history = distiller.fit(
        _data(tf, np), epochs=EPOCHS, steps_per_epoch=EXAMPLES // GLOBAL_BATCH,
        callbacks=callbacks, verbose=0,
    )
    seconds = time.perf_counter() - start
    np.savez(
        os.path.join(args.out, f"result{args.index}.npz"),
        seconds=seconds,
        temperature=distiller.temperature.numpy(),
        history=json.dumps(history.history),
        **{f"student_{i}": w.numpy() for i, w in enumerate(distiller.student.weights)},
    )


if __name__ == "__main__":
    main(sys.argv[1:])
