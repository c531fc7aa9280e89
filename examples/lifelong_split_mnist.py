"""
Title: Learning without Forgetting on split MNIST
Description: Learn MNIST's digits 5-9 after 0-4, each with its own head, without
the old task's data: Learning without Forgetting (Li & Hoiem) against
fine-tuning, a frozen backbone and joint training, over several seeds.

    python examples/lifelong_split_mnist.py --data-dir ../shared/tensorflow_datasets
"""

"""
## Setup

The protocol is task-incremental: each task has its own head, and at test time
the head of the task is known. Task A (digits 0-4) is learned first; then task
B (digits 5-9) from its data alone, by

- **fine-tuning**: the new head and every shared layer on task B's labels;
- **LwF**: the same step, plus the old head distilled from a frozen copy of the
  model as it was after task A (`keras_kd.learn_without_forgetting`, the
  paper's `T = 2` and `λ = 1`, neither tuned);
- **feature extraction**: the new head alone, on the frozen backbone;
- **joint training**: both tasks' data at once (the upper bound, which needs
  the old data).

Fine-tuning is LwF with the old head's term weighted 0: the same Distiller, the
same loss scale, optimizer, learning rate, epochs and warm-up, so the two rows
differ by the distillation term alone.
"""

import argparse
import os
import statistics
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import numpy as np
import tensorflow_datasets as tfds

import keras_kd

SEEDS = 3
EPOCHS = 10  # Per task, for every method.
WARMUP_EPOCHS = 1  # The new head alone first (fine-tuning and LwF alike).
BATCH_SIZE = 128
LEARNING_RATE = 1e-3
TEMPERATURE = 2.0  # The paper's.
PAPER_LAMBDA = 1.0  # The paper's; keras_kd's term weight is λ / T².
TASKS = ((0, 1, 2, 3, 4), (5, 6, 7, 8, 9))
DATASET_NAMES = {"mnist": "MNIST", "fashion_mnist": "Fashion-MNIST"}
VALIDATION = 5000  # Training images held out (for the curves; nothing is tuned).

parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
parser.add_argument("--data-dir", default=os.environ.get("TFDS_DATA_DIR"),
                    help="tfds data directory (default: $TFDS_DATA_DIR, else tfds's, which downloads)")
parser.add_argument("--dataset", default="mnist", choices=("mnist", "fashion_mnist"))
parser.add_argument("--seeds", type=int, default=SEEDS)
parser.add_argument("--epochs", type=int, default=EPOCHS, help="epochs per task")
parser.add_argument("--train-examples", type=int, default=None,
                    help="use only the first N training images (for a quick run)")
parser.add_argument("--output", default="lifelong_output", help="folder for results.md and the plot")
args = parser.parse_args()
os.makedirs(args.output, exist_ok=True)

"""
## The data: one split per task, labels renumbered from 0 within each task
"""

(train, test) = tfds.load(
    args.dataset, split=["train", "test"], as_supervised=True, data_dir=args.data_dir, batch_size=-1
)
x_all = train[0].numpy().astype("float32") / 255.0
y_all = train[1].numpy()
x_train, y_train = x_all[VALIDATION:], y_all[VALIDATION:]
x_val, y_val = x_all[:VALIDATION], y_all[:VALIDATION]
if args.train_examples:
    x_train, y_train = x_train[: args.train_examples], y_train[: args.train_examples]
x_test = test[0].numpy().astype("float32") / 255.0
y_test = test[1].numpy()


def task_split(x, y, classes):
    keep = np.isin(y, classes)
    return x[keep], np.searchsorted(np.array(classes), y[keep])


def task_name(index):
    return f"task_{'abcdefghij'[index]}"


splits = {
    part: [task_split(x, y, classes) for classes in TASKS]
    for part, (x, y) in {"train": (x_train, y_train), "val": (x_val, y_val), "test": (x_test, y_test)}.items()
}
print(f"{args.dataset}: tasks {[list(c) for c in TASKS]}; training images per task "
      f"{[len(s[0]) for s in splits['train']]}, test {[len(s[0]) for s in splits['test']]}")

"""
## The model: a small CNN backbone, one head per task
"""

SPARSE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def backbone():
    inputs = keras.Input((28, 28, 1))
    x = keras.layers.Conv2D(16, 3, activation="relu")(inputs)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Conv2D(32, 3, activation="relu")(x)
    x = keras.layers.MaxPooling2D()(x)
    x = keras.layers.Flatten()(x)
    features = keras.layers.Dense(64, activation="relu", name="features")(x)
    return inputs, features


def head(index):
    return keras.layers.Dense(len(TASKS[index]), name=task_name(index))


def optimizer():
    return keras.optimizers.Adam(LEARNING_RATE)


def accuracy(model, part, index):
    x, y = splits[part][index]
    outputs = model.predict(x, batch_size=1000, verbose=0)
    logits = outputs[task_name(index)] if isinstance(outputs, dict) else outputs
    return float(np.mean(np.argmax(logits, -1) == y))


class OldTaskAccuracy(keras.callbacks.Callback):
    """Validation accuracy of every earlier task's head after each epoch."""

    def __init__(self, heads, earlier):
        super().__init__()
        self.heads, self.earlier = heads, earlier
        self.curve = []

    def on_epoch_end(self, epoch, logs=None):
        self.curve.append([accuracy(self.heads, "val", i) for i in self.earlier])


def learn_task_a(seed):
    keras.utils.set_random_seed(seed)
    inputs, features = backbone()
    model = keras.Model(inputs, head(0)(features), name="model_a")
    model.compile(optimizer=optimizer(), loss=SPARSE)
    model.fit(*splits["train"][0], batch_size=BATCH_SIZE, epochs=args.epochs, verbose=0)
    return model


def copy_of(model):
    copy = keras.models.clone_model(model)
    copy.set_weights(model.get_weights())
    return copy


"""
## Learning the later tasks in sequence, one method at a time
"""


def sequential(model_a, seed, method):
    """Tasks B, C, ... in order, from a copy of the task-A model."""
    model, curve = copy_of(model_a), []
    for index in range(1, len(TASKS)):
        keras.utils.set_random_seed(seed + 100 * index)
        weight = 0.0 if method == "fine-tuning" else PAPER_LAMBDA / TEMPERATURE**2
        lwf = keras_kd.learn_without_forgetting(
            model, head(index), temperature=TEMPERATURE, old_task_weight=weight
        )
        lwf.compile(optimizer=optimizer(), loss=SPARSE)
        heads = keras_kd.multi_head_model(lwf)
        warmup = args.epochs if method == "feature extraction" else min(WARMUP_EPOCHS, args.epochs - 1)
        track = OldTaskAccuracy(heads, range(index))
        lwf.fit(*splits["train"][index], batch_size=BATCH_SIZE, epochs=args.epochs, verbose=0,
                callbacks=[keras_kd.callbacks.HeadWarmup(warmup), track])
        curve += track.curve
        model = heads
    return model, curve


def joint(seed):
    """Every task's data at once; each example trains its own task's head."""
    keras.utils.set_random_seed(seed)
    inputs, features = backbone()
    names = [task_name(i) for i in range(len(TASKS))]
    model = keras.Model(inputs, {n: head(i)(features) for i, n in enumerate(names)}, name="joint")
    model.compile(optimizer=optimizer(), loss={n: SPARSE for n in names})
    x = np.concatenate([s[0] for s in splits["train"]])
    task = np.concatenate([np.full(len(s[1]), i) for i, s in enumerate(splits["train"])])
    y = np.concatenate([s[1] for s in splits["train"]])
    labels = {n: np.where(task == i, y, 0) for i, n in enumerate(names)}
    weights = {n: (task == i).astype("float32") * len(TASKS) for i, n in enumerate(names)}
    # As many epochs of all the data as the sequential methods spend on all tasks.
    model.fit(x, labels, sample_weight=weights, batch_size=BATCH_SIZE, epochs=args.epochs,
              shuffle=True, verbose=0)
    return model


METHODS = ("fine-tuning", "LwF", "feature extraction", "joint training")
results = {m: [] for m in METHODS}  # Per seed: test accuracy of each task's head.
curves = {m: [] for m in METHODS[:3]}
start = time.perf_counter()
for seed in range(args.seeds):
    model_a = learn_task_a(seed)
    after_a = accuracy(model_a, "test", 0)
    for method in METHODS:
        begun = time.perf_counter()
        if method == "joint training":
            model = joint(seed)
        else:
            model, curve = sequential(model_a, seed, method)
            curves[method].append(curve)
            if method == "LwF":
                exported = model
        scores = [accuracy(model, "test", i) for i in range(len(TASKS))]
        results[method].append(scores)
        shown = ", ".join(f"{task_name(i)} {100 * s:.2f}%" for i, s in enumerate(scores))
        print(f"seed {seed}  {method:19s} {time.perf_counter() - begun:5.1f} s  test: {shown} "
              f"(task_a after task A: {100 * after_a:.2f}%)", flush=True)

"""
## Results after the last task
"""


def mean_se(values):
    mean = statistics.mean(values)
    se = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else float("nan")
    return f"{100 * mean:.2f} ± {100 * se:.2f}%"


names = [task_name(i) for i in range(len(TASKS))]
lines = [
    f"| method | " + " | ".join(f"{n} ({TASKS[i][0]}-{TASKS[i][-1]})" for i, n in enumerate(names)) + " |",
    "|---" * (len(names) + 1) + "|",
]
for method in METHODS:
    cells = [mean_se([r[i] for r in results[method]]) for i in range(len(TASKS))]
    lines.append(f"| {method} | " + " | ".join(cells) + " |")
gaps = [lwf[0] - ft[0] for lwf, ft in zip(results["LwF"], results["fine-tuning"])]
new_gaps = [lwf[-1] - ft[-1] for lwf, ft in zip(results["LwF"], results["fine-tuning"])]
table = "\n".join(lines)
summary = (
    f"LwF vs fine-tuning on task_a after the last task: {100 * statistics.mean(gaps):+.2f} points "
    f"(per seed {', '.join(f'{100 * g:+.2f}' for g in gaps)}); on the newest task: "
    f"{100 * statistics.mean(new_gaps):+.2f} points. Test accuracy, mean ± s.e. over {args.seeds} "
    f"seeds, {args.epochs} epochs per task, {time.perf_counter() - start:.0f} s in all."
)
print(f"\n{table}\n\n{summary}")

"""
## Old-task accuracy while the new task is learned
"""

import matplotlib  # noqa: E402

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

figure, axis = plt.subplots(figsize=(6, 4))
for method, runs in curves.items():
    old = np.array([[epoch[0] for epoch in run] for run in runs])  # task_a, per epoch.
    epochs = np.arange(1, old.shape[1] + 1)
    axis.plot(epochs, 100 * old.mean(0), label=method)
    axis.fill_between(epochs, 100 * old.min(0), 100 * old.max(0), alpha=0.2)
axis.set_xlabel("epoch of the later task(s)")
axis.set_ylabel("task_a validation accuracy (%)")
if WARMUP_EPOCHS and args.epochs > 1:
    axis.axvspan(0.5, WARMUP_EPOCHS + 0.5, color="grey", alpha=0.1, label="new head's warm-up")
axis.set_title(f"Split {DATASET_NAMES[args.dataset]}: the old task while learning the new one")
axis.legend()
figure.tight_layout()
plot_path = os.path.join(args.output, "old_task_accuracy.png")
figure.savefig(plot_path, dpi=120)

"""
## Export: every head in one LiteRT file

The last LwF model of the last seed, all heads in one `.tflite` file, each
head checked against Keras in the LiteRT interpreter.
"""

tflite_path = os.path.join(args.output, "lwf_heads.tflite")
report = keras_kd.export_tflite(exported, tflite_path, sample=x_test[:500])
print(f"All {len(TASKS)} heads in one file: {report}")
print(f"Wrote {os.path.abspath(os.path.join(args.output, 'results.md'))} and {plot_path}")
with open(os.path.join(args.output, "results.md"), "w") as f:
    f.write(f"{table}\n\n{summary}\n\n{report}\n")

"""
## What to expect

Measured on 2 CPU cores: see docs/lifelong.md (the command, the table and the
plot).
"""
