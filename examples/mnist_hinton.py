"""
Title: Hinton et al.'s MNIST distillation experiment, on a CPU
Description: A 784-1200-1200-10 teacher with dropout and jittered inputs,
distilled at T = 20 into a 784-800-800-10 student; test errors out of 10,000.

Hinton, Vinyals & Dean (2015), section 3, report 67 test errors for the
teacher, 146 for the small net trained on the labels alone and 74 for the same
net distilled at T = 20, after far longer training than a CPU allows. This
script runs the same three models at equal student epochs, with cached teacher
logits for the distilled run, and prints their test errors.

    python examples/mnist_hinton.py --data-dir ../shared/tensorflow_datasets
"""

"""
## Setup
"""

import argparse
import os
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import tensorflow as tf
import tensorflow_datasets as tfds

import keras_kd

TEACHER_EPOCHS = 20
STUDENT_EPOCHS = 20
BATCH_SIZE = 128
TEMPERATURE = 20.0
ALPHA = 0.1
LEARNING_RATE = 1e-3
JITTER_PIXELS = 2
SEED = 0

parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
parser.add_argument("--data-dir", default=os.environ.get("TFDS_DATA_DIR"),
                    help="tfds data directory (default: $TFDS_DATA_DIR, else tfds's, which downloads)")
parser.add_argument("--teacher-epochs", type=int, default=TEACHER_EPOCHS)
parser.add_argument("--student-epochs", type=int, default=STUDENT_EPOCHS)
parser.add_argument("--train-examples", type=int, default=None,
                    help="use only the first N training images (for a quick run)")
parser.add_argument("--output", default="mnist_hinton_output", help="folder for results.md")
args = parser.parse_args()

"""
## The data: MNIST from tfds, pixels scaled to [0, 1]
"""

(train, test), info = tfds.load(
    "mnist", split=["train", "test"], as_supervised=True, with_info=True,
    data_dir=args.data_dir, batch_size=-1,
)
x_train = train[0].numpy().astype("float32") / 255.0
y_train = train[1].numpy()
x_test = test[0].numpy().astype("float32") / 255.0
y_test = test[1].numpy()
if args.train_examples:
    x_train, y_train = x_train[: args.train_examples], y_train[: args.train_examples]
print(f"{len(x_train)} training and {len(x_test)} test images")

"""
## The teacher: 784-1200-1200-10, dropout, inputs jittered by up to 2 pixels

The jitter (a random translation) and dropout are active only in training.
"""


def mlp(hidden, name, dropout=0.0, jitter=0):
    layers = [keras.Input((28, 28, 1))]
    if jitter:
        shift = jitter / 28
        layers.append(keras.layers.RandomTranslation(shift, shift, fill_mode="constant", seed=SEED))
    layers.append(keras.layers.Flatten())
    if dropout:
        layers.append(keras.layers.Dropout(0.2))
    for units in hidden:
        layers.append(keras.layers.Dense(units, activation="relu"))
        if dropout:
            layers.append(keras.layers.Dropout(dropout))
    layers.append(keras.layers.Dense(10))
    return keras.Sequential(layers, name=name)


def compiled(model):
    model.compile(
        optimizer=keras.optimizers.Adam(LEARNING_RATE),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


keras.utils.set_random_seed(SEED)
teacher = compiled(mlp([1200, 1200], "teacher", dropout=0.5, jitter=JITTER_PIXELS))
start = time.perf_counter()
teacher.fit(x_train, y_train, batch_size=BATCH_SIZE, epochs=args.teacher_epochs, verbose=2)
teacher_seconds = time.perf_counter() - start

"""
## The student from scratch: 784-800-800-10, labels only, no regularization
"""

keras.utils.set_random_seed(SEED)
scratch = compiled(mlp([800, 800], "scratch_student"))
start = time.perf_counter()
scratch.fit(x_train, y_train, batch_size=BATCH_SIZE, epochs=args.student_epochs, verbose=2)
scratch_seconds = time.perf_counter() - start

"""
## The same student distilled at T = 20, on cached teacher logits

The teacher runs once over the (unjittered) training images; the student then
trains on its logits softened at T = 20 plus the labels (weight `ALPHA`).
"""

examples = tf.data.Dataset.from_tensor_slices((x_train, y_train))
cache = keras_kd.TeacherCache.compute(teacher, examples)
keras.utils.set_random_seed(SEED)
student = mlp([800, 800], "distilled_student")
distiller = keras_kd.Distiller(teacher, student, temperature=TEMPERATURE, alpha=ALPHA)
compiled(distiller)
start = time.perf_counter()
distiller.fit(
    cache.attach(examples).shuffle(len(x_train), seed=SEED).batch(BATCH_SIZE),
    epochs=args.student_epochs, shuffle=False, verbose=2,
)
distilled_seconds = time.perf_counter() - start

"""
## Test errors out of 10,000
"""

report = keras_kd.evaluate_models(
    {"teacher": teacher, "scratch student": scratch, "distilled student": distiller.student},
    (x_test, y_test),
)
print(report)
print(
    f"\nTest errors: teacher {report['teacher'].errors}, scratch {report['scratch student'].errors}, "
    f"distilled {report['distilled student'].errors} (paper: 67 / 146 / 74). "
    f"Epochs: teacher {args.teacher_epochs}, students {args.student_epochs}. Training time: teacher "
    f"{teacher_seconds:.0f} s, scratch {scratch_seconds:.0f} s, distilled {distilled_seconds:.0f} s."
)
os.makedirs(args.output, exist_ok=True)
with open(os.path.join(args.output, "results.md"), "w") as f:
    f.write(str(report) + "\n")

"""
## What to expect

With 20 teacher and 20 student epochs (well within an hour on 2 CPU cores) the
measured errors are in README's "Results" section, next to the paper's. The
distilled student should make fewer errors than the scratch one; neither
reaches the paper's numbers, which came from much longer training.
"""
