"""
Title: Several teachers, a teacher-assistant chain and unlabeled data on MNIST
Description: (a) three teachers of different architectures vs the best one
alone; (b) 1200-1200 → 300-300 → 30-30 vs 1200-1200 → 30-30 directly; (c)
60,000 images with 1,000 labels, distilled, vs those 1,000 labels alone.

Three seeds each, mean ± std on all 10,000 test images; teachers are trained
once and their logits cached. Settings are fixed in advance (no tuning on the
test split); a 5,000-image validation split is held out from training.

    python examples/mnist_ensemble_and_assistant.py --data-dir ../shared/tensorflow_datasets
"""

"""
## Setup
"""

import argparse
import os
import statistics
import tempfile
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import numpy as np
import tensorflow as tf
import tensorflow_datasets as tfds

import keras_kd

TEACHER_EPOCHS = 6
STUDENT_EPOCHS = 6
LABELED = 1_000
BATCH_SIZE = 128
TEMPERATURE = 4.0
SEEDS = (0, 1, 2)
SPARSE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
parser.add_argument("--data-dir", default=os.environ.get("TFDS_DATA_DIR"),
                    help="tfds data directory (default: $TFDS_DATA_DIR, else tfds's, which downloads)")
parser.add_argument("--teacher-epochs", type=int, default=TEACHER_EPOCHS)
parser.add_argument("--student-epochs", type=int, default=STUDENT_EPOCHS)
parser.add_argument("--seeds", type=int, default=len(SEEDS))
parser.add_argument("--train-examples", type=int, default=None, help="use only the first N images")
parser.add_argument("--output", default="mnist_ensemble_output", help="folder for results.md")
args = parser.parse_args()
os.makedirs(args.output, exist_ok=True)
seeds = SEEDS[: args.seeds]

"""
## Data: MNIST, flattened, 5,000 training images held out for validation
"""

(train, test) = tfds.load("mnist", split=["train", "test"], as_supervised=True,
                          data_dir=args.data_dir, batch_size=-1)
images = train[0].numpy().reshape(-1, 784).astype("float32") / 255.0
labels = train[1].numpy()
x_val, y_val = images[-5000:], labels[-5000:]
x_train, y_train = images[:-5000], labels[:-5000]
if args.train_examples:
    x_train, y_train = x_train[: args.train_examples], y_train[: args.train_examples]
x_test, y_test = test[0].numpy().reshape(-1, 784).astype("float32") / 255.0, test[1].numpy()
print(f"{len(x_train)} training, {len(x_val)} validation, {len(x_test)} test images")


def mlp(widths, name, dropout=0.0):
    layers = [keras.Input((784,))]
    for width in widths:
        layers.append(keras.layers.Dense(width, activation="relu"))
        if dropout:
            layers.append(keras.layers.Dropout(dropout))
    return keras.Sequential(layers + [keras.layers.Dense(10)], name=name)


def small_cnn(name):
    return keras.Sequential([
        keras.Input((784,)), keras.layers.Reshape((28, 28, 1)),
        keras.layers.Conv2D(16, 3, activation="relu"), keras.layers.MaxPooling2D(),
        keras.layers.Conv2D(32, 3, activation="relu"), keras.layers.MaxPooling2D(),
        keras.layers.Flatten(), keras.layers.Dense(10),
    ], name=name)


def train_plain(model, x, y, epochs, seed):
    keras.utils.set_random_seed(seed)
    model.compile(optimizer="adam", loss=SPARSE, metrics=["accuracy"])
    model.fit(x, y, batch_size=BATCH_SIZE, epochs=epochs, verbose=0)
    return model


def distil(teacher, student, data, epochs, seed, alpha=0.1, loss=SPARSE):
    keras.utils.set_random_seed(seed)
    distiller = keras_kd.Distiller(teacher, student, temperature=TEMPERATURE, alpha=alpha)
    distiller.compile(optimizer="adam", loss=loss)
    distiller.fit(data.shuffle(len(x_train), seed=seed).batch(BATCH_SIZE), epochs=epochs, verbose=0)
    return student


def accuracy(model, x, y):
    return float(np.mean(np.argmax(model.predict(x, verbose=0, batch_size=1024), -1) == y))


def mean_std(values):
    values = [100 * v for v in values]
    spread = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{statistics.mean(values):.2f} ± {spread:.2f}"


sections = []
examples = tf.data.Dataset.from_tensor_slices((x_train, y_train))
start = time.perf_counter()

"""
## (a) Three teachers of different architectures vs the best one alone

The soft target of the three is the mean of their softened probabilities;
their logits are computed once, side by side. The "best single teacher" is
chosen on the validation split.
"""

teachers = [
    train_plain(mlp([1200, 1200], "mlp_1200_1200", dropout=0.3), x_train, y_train, args.teacher_epochs, 10),
    train_plain(mlp([800], "mlp_800"), x_train, y_train, args.teacher_epochs, 11),
    train_plain(small_cnn("small_cnn"), x_train, y_train, args.teacher_epochs, 12),
]
validation = {t.name: accuracy(t, x_val, y_val) for t in teachers}
best = max(teachers, key=lambda t: validation[t.name])
print("teachers (validation):", {k: f"{v:.2%}" for k, v in validation.items()}, "best:", best.name)
ensemble_cache = keras_kd.TeacherCache.compute(teachers, examples, verbose=0)
best_cache = keras_kd.TeacherCache.compute(best, examples, verbose=0)

reports = []
for seed in seeds:
    keras.utils.set_random_seed(seed)
    from_best = distil(best, mlp([64], "student_from_best"), best_cache.attach(examples),
                       args.student_epochs, seed)
    keras.utils.set_random_seed(seed)
    from_three = distil(teachers, mlp([64], "student_from_3_teachers"), ensemble_cache.attach(examples),
                        args.student_epochs, seed)
    reports.append(keras_kd.evaluate_models(
        {**{t.name: t for t in teachers}, "784-64-10 from the best teacher": from_best,
         "784-64-10 from the three teachers": from_three},
        (x_test, y_test), latency_examples=50))
sections.append(("(a) Three teachers vs the best one alone "
                 f"({args.student_epochs} student epochs; best on validation: {best.name})", reports))

"""
## (b) A teacher-assistant chain vs direct distillation, equal total epochs

Direct: 1200-1200 → 30-30 for E epochs. Chain: 1200-1200 → 300-300 for E/2
epochs, then 300-300 → 30-30 for E/2 epochs (`keras_kd.distill_chain`, which
saves each stage and resumes after an interruption).
"""

teacher = teachers[0]
half = max(1, args.student_epochs // 2)
reports = []
for seed in seeds:
    keras.utils.set_random_seed(seed)
    direct = distil(teacher, mlp([30, 30], "direct_30_30"), examples, 2 * half, seed)
    keras.utils.set_random_seed(seed)
    assistant, chained = mlp([300, 300], "assistant_300_300"), mlp([30, 30], "chained_30_30")
    with tempfile.TemporaryDirectory() as workdir:
        keras_kd.distill_chain(
            [teacher, assistant, chained],
            examples.shuffle(len(x_train), seed=seed).batch(BATCH_SIZE), workdir, epochs=half,
            compile_kwargs={"optimizer": "adam", "loss": SPARSE},
            distiller_kwargs={"temperature": TEMPERATURE, "alpha": 0.1},
        )
    reports.append(keras_kd.evaluate_models(
        {"teacher 1200-1200": teacher, f"30-30 direct ({2 * half} epochs)": direct,
         f"assistant 300-300 ({half} epochs)": assistant,
         f"30-30 via the assistant ({half} + {half} epochs)": chained},
        (x_test, y_test), latency_examples=50))
sections.append(("(b) Teacher-assistant chain vs direct", reports))

"""
## (c) 60,000 images, 1,000 labels

The teacher (1200-1200 with dropout) is trained on the 1,000 labeled images
only (40 epochs), so nothing else leaks in. The distilled student sees all
images: the other labels are replaced by -1, which
`SparseCategoricalCrossentropy(ignore_class=-1)` skips, so those rows count
in distillation only (alpha 0.5). The baseline trains the same student on the
1,000 labels for 40 epochs.
"""

rng = np.random.default_rng(0)
labeled = rng.choice(len(x_train), min(LABELED, len(x_train) // 2), replace=False)
partial = np.full_like(y_train, -1)
partial[labeled] = y_train[labeled]
partly_labeled = tf.data.Dataset.from_tensor_slices((x_train, partial))
reports = []
for seed in seeds:
    small_teacher = train_plain(mlp([1200, 1200], "teacher_on_1000", dropout=0.3),
                                x_train[labeled], y_train[labeled], 40, 100 + seed)
    labels_only = train_plain(mlp([64], "student_on_1000_labels"), x_train[labeled], y_train[labeled], 40, seed)
    unlabeled = distil(small_teacher, mlp([64], "student_distilled"), partly_labeled, args.student_epochs, seed,
                       alpha=0.5,
                       loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1))
    reports.append(keras_kd.evaluate_models(
        {f"teacher on the {len(labeled):,} labels": small_teacher,
         f"784-64-10 on the {len(labeled):,} labels": labels_only,
         f"784-64-10 distilled on all {len(x_train)} images": unlabeled},
        (x_test, y_test), latency_examples=50))
sections.append((f"(c) {len(labeled):,} labels + unlabeled images", reports))

"""
## Results
"""

lines = [f"{len(seeds)} seeds; teachers {args.teacher_epochs} epochs; {len(x_train)} training images; "
         f"test = all {len(x_test)}; total {time.perf_counter() - start:.0f} s.", ""]
for title, section_reports in sections:
    lines += [f"### {title}", "", keras_kd.summarize_reports(section_reports), ""]
text = "\n".join(lines)
print(text)
with open(os.path.join(args.output, "results.md"), "w") as f:
    f.write(text + "\n")
