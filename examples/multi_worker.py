"""
Title: Distillation on several workers with MultiWorkerMirroredStrategy
Description: The same Distiller code on N machines: each worker runs this
script with its own TF_CONFIG; here, two workers on one machine are compared
with one process over the same global batches.

On a cluster, train the teacher once (`--single --train-teacher --output
shared_folder`), then run on every machine (worker 0 is the chief; it alone
writes the checkpoint and the TFLite file):

    TF_CONFIG='{"cluster": {"worker": ["host0:2222", "host1:2222"]},
                "task": {"type": "worker", "index": 0}}' \\
        python examples/multi_worker.py --output shared_folder

On one machine, `--local-workers 2` starts two such workers on 127.0.0.1 (free
ports), then the one-process baseline, and compares them:

    python examples/multi_worker.py --local-workers 2 --data-dir ../shared/tensorflow_datasets
"""

"""
## Setup
"""

import argparse
import json
import os
import socket
import subprocess
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

GLOBAL_BATCH = 256
TRAIN_EXAMPLES = 20_480  # 80 global batches per epoch.
EPOCHS = 3
TEMPERATURE = 4.0
ALPHA = 0.3

parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
parser.add_argument("--data-dir", default=os.environ.get("TFDS_DATA_DIR"),
                    help="tfds data directory (default: $TFDS_DATA_DIR, else tfds's, which downloads)")
parser.add_argument("--output", default="multi_worker_output")
parser.add_argument("--epochs", type=int, default=EPOCHS)
parser.add_argument("--local-workers", type=int, default=0,
                    help="start this many workers on 127.0.0.1 and compare with one process")
parser.add_argument("--single", action="store_true", help="run as one process, no strategy")
parser.add_argument("--train-teacher", action="store_true",
                    help="train the teacher once and save it to OUTPUT/teacher.keras (run this first)")
args = parser.parse_args()


"""
## Launching local workers (only with `--local-workers`)

Each worker is this same script with a TF_CONFIG naming every worker's
address and its own index: exactly what a cluster runs.
"""


def free_ports(count):
    sockets = [socket.socket() for _ in range(count)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def launch_local(count):
    script = [sys.executable, os.path.abspath(__file__), "--output", args.output,
              "--epochs", str(args.epochs)] + (["--data-dir", args.data_dir] if args.data_dir else [])
    teacher_path = os.path.join(args.output, "teacher.keras")
    if not os.path.exists(teacher_path):  # One teacher for every run.
        subprocess.run(script + ["--single", "--train-teacher"], check=True)
    workers = [f"127.0.0.1:{port}" for port in free_ports(count)]
    processes = []
    for index in range(count):
        config = {"cluster": {"worker": workers}, "task": {"type": "worker", "index": index}}
        processes.append(subprocess.Popen(script, env=dict(os.environ, TF_CONFIG=json.dumps(config))))
    try:
        for process in processes:
            if process.wait(timeout=3600) != 0:
                raise SystemExit(f"worker failed with exit code {process.returncode}")
    finally:
        for process in processes:
            process.kill()
    subprocess.run(script + ["--single"], check=True)
    report(count)


"""
## The data: MNIST from tfds, the first 20,480 training images
"""


def load_data(tf):
    import tensorflow_datasets as tfds

    (train, test) = tfds.load("mnist", split=["train", "test"], as_supervised=True,
                              data_dir=args.data_dir, batch_size=-1)
    x = tf.reshape(tf.cast(train[0][:TRAIN_EXAMPLES], "float32") / 255.0, (-1, 784))
    y = train[1][:TRAIN_EXAMPLES]
    x_test = tf.reshape(tf.cast(test[0], "float32") / 255.0, (-1, 784))
    return (x, y), (x_test, test[1])


def global_batches(tf, x, y):
    """Global batches of 256; each worker reads its share of every batch."""
    dataset = tf.data.Dataset.from_tensor_slices((x, y)).batch(GLOBAL_BATCH)
    options = tf.data.Options()
    options.experimental_distribute.auto_shard_policy = tf.data.experimental.AutoShardPolicy.DATA
    return dataset.with_options(options)


"""
## Models: a 784-512-512-10 teacher, a 784-64-10 student
"""


def mlp(keras, widths, seed, name):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((784,))]
    layers += [keras.layers.Dense(w, activation="relu") for w in widths]
    return keras.Sequential(layers + [keras.layers.Dense(10)], name=name)


"""
## One worker (or the one-process baseline)
"""


def run():
    import keras
    import numpy as np
    import tensorflow as tf

    import keras_kd

    # The strategy first: it must configure TensorFlow before any op runs.
    if args.single:
        strategy, label = tf.distribute.get_strategy(), "single"
    else:
        strategy = tf.distribute.MultiWorkerMirroredStrategy()
        label = f"worker{strategy.cluster_resolver.task_id}"
    os.makedirs(args.output, exist_ok=True)
    (x, y), (x_test, y_test) = load_data(tf)
    sparse = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    teacher_path = os.path.join(args.output, "teacher.keras")
    if args.train_teacher:
        teacher = mlp(keras, [512, 512], 1, "teacher")
        teacher.compile(optimizer="adam", loss=sparse, metrics=["accuracy"])
        teacher.fit(x, y, batch_size=128, epochs=3, verbose=2)
        teacher.save(teacher_path)
        return

    if not os.path.exists(teacher_path):
        raise SystemExit(f"No teacher at {teacher_path}: run this script with --train-teacher first.")
    with strategy.scope():
        teacher = keras.saving.load_model(teacher_path)
        distiller = keras_kd.Distiller(teacher, mlp(keras, [64], 2, "student"),
                                       temperature=TEMPERATURE, alpha=ALPHA)
        distiller.compile(optimizer=keras.optimizers.Adam(1e-3), loss=sparse, metrics=["accuracy"])
    folder = os.path.join(args.output, label)
    os.makedirs(folder, exist_ok=True)
    callbacks = [
        keras_kd.callbacks.LiveValueScheduler(
            keras_kd.schedules.Cosine(8.0, 2.0, duration=1.0, fractions=True), per="batch"),
        # Written by the chief alone under multi-worker training.
        keras_kd.callbacks.TFLiteExport(os.path.join(folder, "student.tflite"), verbose=0),
        keras_kd.callbacks.OnChief(keras.callbacks.ModelCheckpoint(
            os.path.join(folder, "student.weights.h5"), save_weights_only=True)),
    ]
    train = global_batches(tf, x, y)
    distiller.fit(train.take(2), epochs=1, verbose=0)  # Warm-up: traces, connects.
    start = time.perf_counter()
    history = distiller.fit(train, epochs=args.epochs, steps_per_epoch=TRAIN_EXAMPLES // GLOBAL_BATCH,
                            callbacks=callbacks, verbose=2 if label in ("single", "worker0") else 0)
    seconds = time.perf_counter() - start
    logits = np.concatenate([np.asarray(distiller.student(x_test[i:i + 1000])) for i in range(0, 10_000, 1000)])
    accuracy = float(np.mean(logits.argmax(-1) == y_test.numpy()))
    np.savez(os.path.join(args.output, f"{label}.npz"), seconds=seconds, accuracy=accuracy,
             loss=np.asarray(history.history["loss"]),
             **{f"w{i}": w.numpy() for i, w in enumerate(distiller.student.weights)})


"""
## The comparison
"""


def report(count):
    import numpy as np

    single = np.load(os.path.join(args.output, "single.npz"))
    workers = [np.load(os.path.join(args.output, f"worker{i}.npz")) for i in range(count)]
    examples = TRAIN_EXAMPLES * args.epochs
    weights = [k for k in single.files if k.startswith("w")]
    rows = [("one process", single)] + [(f"worker {i}", w) for i, w in enumerate(workers)]
    print(f"\n{args.epochs} epochs of {TRAIN_EXAMPLES} MNIST images, global batch {GLOBAL_BATCH}:")
    print("| run | seconds | images/s | test accuracy | final loss | max abs weight diff vs one process |")
    print("|---|---|---|---|---|---|")
    for name, run_ in rows:
        diff = max(float(np.abs(run_[k] - single[k]).max()) for k in weights)
        print(f"| {name} | {float(run_['seconds']):.1f} | {examples / float(run_['seconds']):,.0f} | "
              f"{float(run_['accuracy']):.2%} | {float(run_['loss'][-1]):.4f} | {diff:.1e} |")
    files = {name: sorted(os.listdir(os.path.join(args.output, name)))
             for name in [f"worker{i}" for i in range(count)]}
    print(f"Files written per worker: {files}")


if args.local_workers:
    launch_local(args.local_workers)
else:
    run()
