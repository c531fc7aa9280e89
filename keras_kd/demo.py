"""The main job: teacher, scratch student and distilled student, side by side.

`python -m keras_kd demo` trains, on scikit-learn's bundled 8×8 digits (no
network, no data directory):

1. a teacher MLP;
2. for each seed, a student trained from scratch on the labels, and the same
   student distilled from the teacher (cached teacher logits, temperature
   annealed from `T` to 1 over the run), at equal epochs;
3. the distilled student exported to TFLite int8 and evaluated in LiteRT;

then prints one table (accuracy mean ± std over seeds, parameters, bytes,
latency) and writes a PNG of the validation-accuracy curves.

`--select` runs instead the search that chose the demo's student size, `T`,
`alpha` and epochs: every combination of the grid, on a validation split
carved from the training data (never on the test split), over several seeds.
"""

import dataclasses
import itertools
import os
import statistics
import time

import keras
import numpy as np
import tensorflow as tf

from keras_kd import callbacks
from keras_kd import evaluation
from keras_kd import export
from keras_kd import files
from keras_kd import schedules
from keras_kd.cache import TeacherCache
from keras_kd.distiller import Distiller


@dataclasses.dataclass(frozen=True)
class Setting:
    """What the demo trains. The defaults were chosen with `--select`."""

    teacher_units: tuple = (256, 256)
    teacher_epochs: int = 60
    student_units: int = 32
    temperature: float = 8.0
    alpha: float = 0.5
    epochs: int = 120
    batch_size: int = 64
    learning_rate: float = 3e-3


DIGITS = Setting()
TFDS = Setting(teacher_units=(512, 512), teacher_epochs=8, student_units=32, epochs=8, batch_size=128)
SELECTION_GRID = {
    "student_units": (8, 16, 32),
    "temperature": (2.0, 4.0, 8.0),
    "alpha": (0.1, 0.5),
    "epochs": (60, 120),
}


def load(dataset="digits", data_dir=None, seed=0):
    """Returns `(x_train, y_train), (x_test, y_test)` as flat float32 arrays.

    Args:
        dataset: `"digits"` (scikit-learn's bundled 8×8 digits, split 80/20
            stratified) or a tfds dataset name such as `"mnist"`.
        data_dir: tfds data directory (else `TFDS_DATA_DIR`, else tfds's
            default, which downloads).
        seed: Int, the seed of the digits split.
    """
    if dataset == "digits":
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split

        digits = load_digits()
        x = (digits.data / 16.0).astype("float32")
        x_train, x_test, y_train, y_test = train_test_split(
            x, digits.target, test_size=0.2, stratify=digits.target, random_state=seed
        )
        return (x_train, y_train), (x_test, y_test)
    import tensorflow_datasets as tfds

    splits = tfds.load(
        dataset, split=["train", "test"], as_supervised=True, batch_size=-1,
        data_dir=data_dir or os.environ.get("TFDS_DATA_DIR"),
    )
    arrays = []
    for images, labels in splits:
        images = images.numpy().reshape(len(images), -1).astype("float32") / 255.0
        arrays.append((images, labels.numpy()))
    return tuple(arrays)


def validation_split(x, y, fraction=0.15, seed=0):
    """Carves a stratified validation split from training data."""
    from sklearn.model_selection import train_test_split

    x_fit, x_val, y_fit, y_val = train_test_split(
        x, y, test_size=fraction, stratify=y, random_state=seed
    )
    return (x_fit, y_fit), (x_val, y_val)


def mlp(input_size, units, name, dropout=0.0):
    """A ReLU MLP that ends in 10 logits."""
    layers = [keras.Input((input_size,))]
    for width in units:
        layers.append(keras.layers.Dense(width, activation="relu"))
        if dropout:
            layers.append(keras.layers.Dropout(dropout))
    layers.append(keras.layers.Dense(10))
    return keras.Sequential(layers, name=name)


def _compile_args(setting):
    return dict(
        optimizer=keras.optimizers.Adam(setting.learning_rate),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def train_teacher(train, val, setting, seed=0, verbose=0):
    keras.utils.set_random_seed(seed)
    teacher = mlp(train[0].shape[1], setting.teacher_units, "teacher", dropout=0.2)
    teacher.compile(**_compile_args(setting))
    teacher.fit(
        *train, validation_data=val, epochs=setting.teacher_epochs,
        batch_size=setting.batch_size, verbose=verbose,
    )
    return teacher


def train_scratch(train, val, setting, seed, verbose=0):
    keras.utils.set_random_seed(seed)
    student = mlp(train[0].shape[1], (setting.student_units,), "scratch_student")
    student.compile(**_compile_args(setting))
    history = student.fit(
        *train, validation_data=val, epochs=setting.epochs,
        batch_size=setting.batch_size, verbose=verbose,
    )
    return student, history


def train_distilled(teacher_cache, train, val, teacher, setting, seed, verbose=0):
    """Distils on cached teacher logits, annealing T from `setting.temperature` to 1."""
    keras.utils.set_random_seed(seed)
    student = mlp(train[0].shape[1], (setting.student_units,), "distilled_student")
    distiller = Distiller(
        teacher, student, temperature=setting.temperature, alpha=setting.alpha
    )
    distiller.compile(**_compile_args(setting))
    examples = tf.data.Dataset.from_tensor_slices(train)
    data = (
        teacher_cache.attach(examples)
        .shuffle(len(train[0]), seed=seed)
        .batch(setting.batch_size)
    )
    annealing = callbacks.LiveValueScheduler(
        schedules.Cosine(setting.temperature, 1.0, duration=1.0, fractions=True),
        per="batch",
    )
    history = distiller.fit(
        data, validation_data=val, epochs=setting.epochs, callbacks=[annealing],
        shuffle=False, verbose=verbose,  # Shuffled above, with the logits.
    )
    return student, history


def _accuracy(model, data):
    x, y = data
    return float(np.mean(np.argmax(model.predict(x, verbose=0), -1) == y))


def select(dataset="digits", data_dir=None, seeds=3, grid=None, verbose=1):
    """Scores every setting of `grid` on a validation split; prints a table.

    The test split is not touched. For each student size and epoch count the
    scratch student is trained once per seed; for each `(T, alpha)` the
    distilled one too. Returns a list of dict rows, best distilled first.
    """
    grid = grid or SELECTION_GRID
    (x, y), _ = load(dataset, data_dir)
    train, val = validation_split(x, y)
    base = DIGITS if dataset == "digits" else TFDS
    teacher = train_teacher(train, val, base)
    cache = TeacherCache.compute(teacher, tf.data.Dataset.from_tensor_slices(train), verbose=0)
    rows = []
    for units, epochs in itertools.product(grid["student_units"], grid["epochs"]):
        setting = dataclasses.replace(base, student_units=units, epochs=epochs)
        # Scored once at the end: no per-epoch validation, which costs time.
        scratch = [_accuracy(train_scratch(train, None, setting, s)[0], val) for s in range(seeds)]
        rows.append({"student_units": units, "epochs": epochs, "method": "scratch",
                     "temperature": None, "alpha": None, "val_accuracy": scratch})
        for temperature, alpha in itertools.product(grid["temperature"], grid["alpha"]):
            setting = dataclasses.replace(setting, temperature=temperature, alpha=alpha)
            distilled = [
                _accuracy(train_distilled(cache, train, None, teacher, setting, s)[0], val)
                for s in range(seeds)
            ]
            rows.append({"student_units": units, "epochs": epochs, "method": "distilled",
                         "temperature": temperature, "alpha": alpha, "val_accuracy": distilled})
            if verbose:
                print(f"units {units} epochs {epochs} T {temperature} alpha {alpha}: "
                      f"distilled {statistics.mean(distilled):.4f} vs scratch {statistics.mean(scratch):.4f}")
    rows.sort(key=lambda r: -statistics.mean(r["val_accuracy"]))
    print(f"\nTeacher validation accuracy {_accuracy(teacher, val):.4f}. "
          f"Validation accuracy, mean ± std over {seeds} seeds ({len(val[0])} validation images):")
    print("| student | epochs | method | T | alpha | validation accuracy |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        scores = r["val_accuracy"]
        print(f"| {x.shape[1]}-{r['student_units']}-10 | {r['epochs']} | {r['method']} "
              f"| {r['temperature'] or '—'} | {r['alpha'] if r['alpha'] is not None else '—'} "
              f"| {100 * statistics.mean(scores):.2f} ± {100 * statistics.stdev(scores):.2f}% |")
    return rows


def run(dataset="digits", data_dir=None, output="demo_output", seeds=3, setting=None, verbose=2):
    """The main job. Returns the list of per-seed `EvaluationReport`s."""
    start = time.perf_counter()
    setting = setting or (DIGITS if dataset == "digits" else TFDS)
    os.makedirs(output, exist_ok=True)
    (x, y), test = load(dataset, data_dir)
    train, val = validation_split(x, y)
    print(f"Data: {dataset}, {len(train[0])} training / {len(val[0])} validation / "
          f"{len(test[0])} test examples. Setting: {setting}")

    print(f"\n== Teacher: MLP {'-'.join(map(str, setting.teacher_units))}, "
          f"{setting.teacher_epochs} epochs")
    teacher = train_teacher(train, val, setting, verbose=verbose)
    print("\n== Caching the teacher's logits on the training data")
    cache = TeacherCache.compute(teacher, tf.data.Dataset.from_tensor_slices(train), verbose=1)

    reports, histories = [], {"scratch student": [], "distilled student": []}
    for seed in range(seeds):
        print(f"\n== Seed {seed}: student from scratch ({setting.epochs} epochs)")
        scratch, scratch_history = train_scratch(train, val, setting, seed, verbose=verbose)
        print(f"\n== Seed {seed}: distilled student (T {setting.temperature} → 1, "
              f"alpha {setting.alpha}, {setting.epochs} epochs)")
        distilled, distilled_history = train_distilled(
            cache, train, val, teacher, setting, seed, verbose=verbose
        )
        histories["scratch student"].append(scratch_history)
        histories["distilled student"].append(distilled_history)
        tflite_path = os.path.join(output, "distilled_student_int8.tflite")
        export.export_tflite(
            distilled, tflite_path, quantization="int8", representative_data=train[0],
            sample=test[0],
        )
        reports.append(
            evaluation.evaluate_models(
                {
                    "teacher": teacher,
                    "scratch student": scratch,
                    "distilled student": distilled,
                    "distilled student, int8 TFLite": tflite_path,
                },
                test,
                parameters={"distilled student, int8 TFLite": distilled.count_params()},
                workdir=output,  # Nothing is written outside `output`.
            )
        )
    plot = evaluation.plot_histories(
        histories, os.path.join(output, "learning_curves.png"),
        title=f"{dataset}: validation accuracy (mean, min-max over {seeds} seeds)",
    )
    table = evaluation.summarize_reports(reports)
    print(f"\n== Results on the {len(test[0])} test examples ({dataset})\n")
    print(table)
    print(_verdict(reports, len(test[0])))
    print(f"\nWrote {tflite_path} and {plot} ({time.perf_counter() - start:.0f} s in all).")
    with files.atomic_write(os.path.join(output, "results.md"), suffix=".md") as temporary:
        with open(temporary, "w") as f:
            f.write(table + "\n")
    return reports


def _verdict(reports, test_size):
    def mean_accuracy(name):
        return 100 * statistics.mean(r[name].accuracy for r in reports)

    scratch, distilled = mean_accuracy("scratch student"), mean_accuracy("distilled student")
    teacher = mean_accuracy("teacher")
    gain, one_example = distilled - scratch, 100 / test_size
    summary = (f"{gain:+.2f} points over the scratch student at equal epochs (mean over "
               f"{len(reports)} seeds; one test example is {one_example:.2f} points)")
    if gain > one_example:
        return f"\nDistillation helped: {summary}."
    reason = (
        f"the scratch student is already about as accurate as the teacher ({scratch:.2f}% vs "
        f"{teacher:.2f}%), so the teacher has little to teach that the labels do not"
        if scratch >= teacher - 1.0
        else "the teacher's soft targets did not carry enough beyond the labels at this size"
    )
    return f"\nDistillation did not beat the scratch student here: {summary}. Why: {reason}."
