"""
Title: Hinton et al.'s MNIST distillation experiment, on a CPU
Description: The paper's 784-800-800-10 student distilled at T = 20, the
paper's way (the teacher's logits on the unjittered images) and with
consistent augmentation (the teacher's logits on jittered views the student
replays), against the same student trained on the labels, with or without
jitter; settings chosen on a validation split, 3 seeds, test errors out of
10,000.

Hinton, Vinyals & Dean (2015), section 3, report 67 test errors for their
784-1200-1200-10 teacher (dropout, weight constraints, inputs jittered by up
to 2 pixels), 146 for the small net trained on the labels alone and 74 for the
same net distilled at T = 20. That teacher needs far longer training than a
CPU allows: trained here for 60 epochs it made 89 test errors and 46 of 5,000
on validation, while the student trained on jittered labels made 40. A
teacher no better than its student has nothing to teach, so the teacher here
is a small conv net trained with the same jitter (see results/mnist_hinton.md).

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
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

import keras_kd

TEACHER_EPOCHS = 15
STUDENT_EPOCHS = 30
BATCH_SIZE = 128
VALIDATION_EXAMPLES = 5000
TEMPERATURE = 20.0  # The paper's.
ALPHA = 0.1
JITTER_PIXELS = 2  # The paper's teacher saw inputs shifted by up to 2 pixels.
TEACHER_LEARNING_RATE = 2e-3
VIEWS = 10  # Jittered views of each training image in the replay cache.
# The search, the same size for every student: these peak learning rates
# (Adam, cosine decay to 0).
LEARNING_RATES = (1e-3, 3e-3)
SELECTION_SEED = 0
SEEDS = 3
PAPER_ERRORS = {"teacher": 67, "scratch": 146, "distilled": 74}

parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
parser.add_argument("--data-dir", default=os.environ.get("TFDS_DATA_DIR"),
                    help="tfds data directory (default: $TFDS_DATA_DIR, else tfds's, which downloads)")
parser.add_argument("--teacher-epochs", type=int, default=TEACHER_EPOCHS)
parser.add_argument("--student-epochs", type=int, default=STUDENT_EPOCHS)
parser.add_argument("--seeds", type=int, default=SEEDS, help="seeds of the final comparison")
parser.add_argument("--train-examples", type=int, default=None,
                    help="use only the first N training images (for a quick run)")
parser.add_argument("--output", default="mnist_hinton_output",
                    help="folder for the teacher's weights and results.md")
args = parser.parse_args()
os.makedirs(args.output, exist_ok=True)
tf.get_logger().setLevel("ERROR")
started = time.perf_counter()

"""
## The data: MNIST from tfds, pixels scaled to [0, 1]

The last 5,000 training images are the validation split: every choice below
is made on them. The test split is read only for the final comparison.
"""

(train, test) = tfds.load(
    "mnist", split=["train", "test"], as_supervised=True, data_dir=args.data_dir, batch_size=-1,
)
images = train[0].numpy().astype("float32") / 255.0
labels = train[1].numpy()
x_val, y_val = images[-VALIDATION_EXAMPLES:], labels[-VALIDATION_EXAMPLES:]
x_train, y_train = images[:-VALIDATION_EXAMPLES], labels[:-VALIDATION_EXAMPLES]
if args.train_examples:
    x_train, y_train = x_train[: args.train_examples], y_train[: args.train_examples]
x_test = test[0].numpy().astype("float32") / 255.0
y_test = test[1].numpy()
print(f"{len(x_train)} training, {len(x_val)} validation and {len(x_test)} test images")

"""
## The models

The jitter is Keras's `RandomTranslation` by up to 2 pixels. The student is
the paper's MLP, with no dropout; the teacher is a conv net with batch norm.
"""


def mlp(hidden, name):
    """The paper's student: ReLU layers of these widths, no regularization."""
    layers = [keras.Input((28, 28, 1)), keras.layers.Flatten()]
    layers += [keras.layers.Dense(units, activation="relu") for units in hidden]
    layers.append(keras.layers.Dense(10))
    return keras.Sequential(layers, name=name)


def conv_net(name):
    """Four 3x3 convolutions with batch norm, a 256-unit dense layer."""
    layers = [keras.Input((28, 28, 1))]
    for filters in (32, 32, None, 64, 64, None):
        if filters is None:
            layers.append(keras.layers.MaxPooling2D())
            continue
        layers += [
            keras.layers.Conv2D(filters, 3, padding="same", use_bias=False),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
        ]
    layers += [
        keras.layers.Flatten(),
        keras.layers.Dense(256, activation="relu"),
        keras.layers.Dropout(0.4),
        keras.layers.Dense(10),
    ]
    return keras.Sequential(layers, name=name)


def jitter(seed):
    shift = JITTER_PIXELS / 28
    return keras.layers.RandomTranslation(shift, shift, fill_mode="constant", seed=seed)


def batches(x, y, seed, jittered):
    data = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(len(x), seed=seed).batch(BATCH_SIZE)
    if jittered:
        views = jitter(seed)
        data = data.map(lambda images, labels: (views(images, training=True), labels), num_parallel_calls=2)
    return data.prefetch(2)


def compiled(model, learning_rate, epochs):
    steps = epochs * -(-len(x_train) // BATCH_SIZE)
    model.compile(
        optimizer=keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(learning_rate, steps)),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    return model


def errors(model, x, y):
    return np.argmax(model.predict(x, batch_size=1000, verbose=0), axis=-1) != y


"""
## The teacher: a conv net trained once on jittered images, then saved

A second run loads the saved weights instead of training again.
"""

teacher = conv_net("teacher")
teacher_path = os.path.join(
    args.output, f"teacher_{len(x_train)}_images_{args.teacher_epochs}_epochs.weights.h5"
)
if os.path.exists(teacher_path):
    teacher.load_weights(teacher_path)
    print(f"teacher: loaded {teacher_path}")
else:
    keras.utils.set_random_seed(SELECTION_SEED)
    compiled(teacher, TEACHER_LEARNING_RATE, args.teacher_epochs)
    start = time.perf_counter()
    teacher.fit(batches(x_train, y_train, SELECTION_SEED, jittered=True), epochs=args.teacher_epochs,
                shuffle=False, verbose=0)
    # Written under a temporary name, then renamed: no half-written file.
    temporary = teacher_path + ".partial.weights.h5"
    teacher.save_weights(temporary)
    os.replace(temporary, teacher_path)
    print(f"teacher: trained for {args.teacher_epochs} epochs in {time.perf_counter() - start:.0f} s, "
          f"saved to {teacher_path}")
print(f"teacher: {teacher.count_params():,} parameters, {errors(teacher, x_val, y_val).sum()} "
      f"validation errors of {len(x_val)}")

"""
## The teacher's logits, computed once

The paper's transfer set: the unjittered training images (`TeacherCache`).
Consistent augmentation: `VIEWS` jittered views of every image
(`ReplayCache`); training replays a view (the shift drawn for it) together
with the teacher's logits on exactly that view, with no teacher pass.
"""

start = time.perf_counter()
plain_cache = keras_kd.TeacherCache.compute(teacher, x_train, batch_size=1000, verbose=0)
keras.utils.set_random_seed(123)
replay_cache = keras_kd.ReplayCache.compute(
    teacher, tf.data.Dataset.from_tensor_slices((x_train, y_train)), jitter(123),
    views=VIEWS, batch_size=1000, verbose=0,
)
print(f"teacher's logits cached on the images and on {VIEWS} jittered views of each "
      f"({time.perf_counter() - start:.0f} s)")

"""
## The four students

All the same 784-800-800-10 net, optimizer, schedule, epochs and batch size:
- scratch: the labels alone;
- scratch, jittered: the labels alone, on jittered images;
- distilled, the paper's way: T = 20 on the teacher's logits on the training
  images, plus the labels at weight 0.1;
- distilled, consistent views: the same loss on the replayed jittered views.
"""

METHODS = ("scratch", "scratch, jittered", "distilled (paper)", "distilled (consistent views)")


def train(method, learning_rate, seed):
    begun = time.perf_counter()
    keras.utils.set_random_seed(seed)
    student = mlp([800, 800], "student")
    steps_per_epoch = -(-len(x_train) // BATCH_SIZE)
    if method.startswith("scratch"):
        model = compiled(student, learning_rate, args.student_epochs)
        data = batches(x_train, y_train, seed, jittered=method.endswith("jittered"))
        model.fit(data, epochs=args.student_epochs, shuffle=False, verbose=0)
    else:
        consistent = method.endswith("(consistent views)")
        model = compiled(
            keras_kd.Distiller(
                teacher, student, temperature=TEMPERATURE, alpha=ALPHA,
                augmentation=replay_cache.augmentation if consistent else None,
            ),
            learning_rate, args.student_epochs,
        )
        examples = tf.data.Dataset.from_tensor_slices((x_train, y_train))
        if consistent:
            # Every image in each of its views, shuffled across views; an
            # epoch is as many images as the training split.
            data = replay_cache.attach(examples).shuffle(len(x_train) * VIEWS, seed=seed)
            data = data.batch(BATCH_SIZE).repeat()
        else:
            data = plain_cache.attach(examples).shuffle(len(x_train), seed=seed).batch(BATCH_SIZE)
        model.fit(data.prefetch(2), epochs=args.student_epochs, steps_per_epoch=steps_per_epoch,
                  shuffle=False, verbose=0)
    wrong = errors(student, x_val, y_val).sum()
    print(f"  seed {seed}  {method:29s}  lr {learning_rate:<6}  {args.student_epochs} epochs  "
          f"{time.perf_counter() - begun:5.1f} s  {wrong} validation errors")
    return student, wrong


"""
## The search, on validation only

One seed; every student gets the same settings (the learning rates). The
best learning rate of each goes on to the final comparison. The scratch
baseline is the better of "scratch" and "scratch, jittered" on validation.
"""

print(f"Selection on the validation split (seed {SELECTION_SEED}):")
validation_errors = {
    method: {rate: train(method, rate, SELECTION_SEED)[1] for rate in LEARNING_RATES} for method in METHODS
}
chosen = {method: min(scores, key=scores.get) for method, scores in validation_errors.items()}
baseline = min(METHODS[:2], key=lambda method: validation_errors[method][chosen[method]])
selection_table = "\n".join([
    f"| student | validation errors of {len(x_val)} at lr " + " | at lr ".join(map(str, LEARNING_RATES))
    + " | chosen |",
    "|---|" + "---|" * (len(LEARNING_RATES) + 1),
    *(f"| {method} | " + " | ".join(str(scores[rate]) for rate in LEARNING_RATES) + f" | lr {chosen[method]}"
      + (" (the scratch baseline)" if method == baseline else "") + " |"
      for method, scores in validation_errors.items()),
])
print(selection_table)

"""
## The final comparison: new seeds, then the test split

The scratch baseline and both distilled students, each at its chosen
learning rate, are trained again at seeds the search did not use.
"""

seeds = [SELECTION_SEED + 1 + i for i in range(args.seeds)]
finalists = (baseline, "distilled (paper)", "distilled (consistent views)")
print(f"Final comparison (seeds {', '.join(map(str, seeds))}):")
test_errors = {method: [] for method in finalists}
for seed in seeds:
    for method in finalists:
        student, _ = train(method, chosen[method], seed)
        test_errors[method].append(errors(student, x_test, y_test))

"""
## Test errors out of 10,000

Each distilled student is compared with the scratch baseline image by image:
McNemar's exact test on each test image's correctness averaged over the seeds.
"""


def mean_se(values):
    values = np.asarray(values, float)
    se = values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else float("nan")
    return f"{values.mean():.1f} ± {se:.1f}"


teacher_errors = int(errors(teacher, x_test, y_test).sum())
rows = [
    f"| model | test errors of {len(x_test)} (mean ± s.e., {len(seeds)} seeds) | paper | "
    "vs the scratch baseline |",
    "|---|---|---|---|",
    f"| teacher (conv net, {teacher.count_params():,} parameters) | {teacher_errors} | "
    f"{PAPER_ERRORS['teacher']} | — |",
]
for method in finalists:
    counts = [int(wrong.sum()) for wrong in test_errors[method]]
    paper = PAPER_ERRORS["scratch" if method == baseline else "distilled"]
    if method == baseline:
        versus = "—"
    else:
        comparison = keras_kd.mcnemar_test(~np.stack(test_errors[baseline]), ~np.stack(test_errors[method]))
        versus = (f"better on {comparison.only_second} images, worse on {comparison.only_first}, "
                  f"McNemar p = {comparison.p_value:.2g}")
    rows.append(f"| student: {method}, lr {chosen[method]} ({', '.join(map(str, counts))}) | "
                f"{mean_se(counts)} | {paper} | {versus} |")
summary = (
    f"{len(x_train)} training images; teacher {args.teacher_epochs} epochs, students "
    f"{args.student_epochs} epochs; {time.perf_counter() - started:.0f} s in all."
)
results = "\n\n".join([selection_table, "\n".join(rows), summary])
print("\n" + results)
temporary = os.path.join(args.output, "results.md.partial")
with open(temporary, "w") as f:
    f.write(results + "\n")
os.replace(temporary, os.path.join(args.output, "results.md"))
