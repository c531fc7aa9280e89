"""The main job: a phone-sized student, from scratch and distilled, side by side.

`python -m keras_kd demo` runs offline on the embedded Fashion-MNIST subset
(`keras_kd/demo_data/`: 10,000 training, 2,000 validation and 5,000 test
images) and its shipped teacher, an ensemble of two 288,682-parameter CNNs
trained on the 10,000 training images by `--train-teacher` (seeds 0 and 1).
The students get 2,000 of those images (200 per class,
`Setting.labeled_per_class`): the job a distiller is for, a user with less
labeled data than the teacher was trained on.

1. "phone-sized" is fixed before anything is trained: at most
   `MAX_PARAMETERS` parameters and `MAX_LATENCY_MS` ms per image in LiteRT
   (float32, batch 1, one thread);
2. for each seed, the student is trained from scratch (with the augmentation
   or without: whichever the selection found better on validation,
   `Setting.scratch_augmentation`) and distilled from the teachers' logits
   on replayed augmented views (their mixture is the soft target), at equal
   epochs with the same optimizer;
3. the distilled student is compared with the scratch one on the test
   split, image by image (each image's correctness averaged over the
   seeds), with McNemar's exact test (`keras_kd.mcnemar_test`);
4. the distilled student of the first seed is exported to int8 TFLite and
   evaluated in LiteRT.

It prints one line per trained model, a table, the verdict, and writes the
table (`results.md`), the validation curves (`learning_curves.png`) and the
int8 student. `--select` runs instead the validation search that chose the
setting (`SELECTION_GRID`); the test split is not read there.
"""

import dataclasses
import itertools
import os
import statistics
import time

import keras
import numpy as np

from keras_kd._internal import optional as _optional

# What `pip install keras-kd[demo]` installs: TensorFlow, LiteRT, matplotlib.
_optional.require_extra("demo", "`keras_kd.demo`")

import tensorflow as tf  # noqa: E402

from keras_kd import evaluation  # noqa: E402
from keras_kd import export  # noqa: E402
from keras_kd import files  # noqa: E402
from keras_kd.data.cache import TeacherCache  # noqa: E402
from keras_kd.distiller import Distiller  # noqa: E402
from keras_kd.methods.ensemble import fuse  # noqa: E402
from keras_kd.data.replay import ReplayCache  # noqa: E402

DATA_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo_data")
DATA_PATH = os.path.join(DATA_DIR, "fashion_mnist_subset.npz")
# The teacher: an ensemble of these CNNs (`teacher_model`), each trained by
# `train_teacher` with its own seed.
TEACHER_PATHS = tuple(
    os.path.join(DATA_DIR, f"fashion_teacher_{seed}.weights.h5") for seed in (0, 1)
)
# The selection also tried a third teacher (seed 2) in the ensemble.
SELECTION_TEACHER_PATHS = TEACHER_PATHS + (os.path.join(DATA_DIR, "fashion_teacher_2.weights.h5"),)
CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
           "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot")

# "Phone-sized", fixed before any search.
MAX_PARAMETERS = 20_000
MAX_LATENCY_MS = 0.3


@dataclasses.dataclass(frozen=True)
class Setting:
    """What the demo trains. The defaults were chosen with `--select`.

    Attributes:
        student_filters: The student CNN's two convolution widths.
        epochs: Student epochs (scratch and distilled alike).
        batch_size: Student batch size.
        learning_rate: Adam's initial learning rate (cosine decay to 0) for
            the distilled student.
        scratch_learning_rate: The same for the scratch student without
            augmentation (each gets its best rate on validation).
        augmented_learning_rate: The same for the scratch student with the
            augmentation.
        temperature: The distillation temperature `T`.
        alpha: The weight of the label loss (the rest goes to `T² · KL`).
        views: `0`: the teacher's logits on the training images, cached
            (`TeacherCache`); `K > 0`: on `K` augmented views of each image
            (`ReplayCache`, consistent augmentation).
        translation: The augmented scratch student's `RandomTranslation`
            factor (with a horizontal `RandomFlip`).
        view_translation: The same for the distilled student's `views`.
        scratch_augmentation: Which scratch student the job trains: the
            augmented one (`True`) or the other; the selection chose it on
            validation, the better of the two under the same search budget.
        labeled_per_class: The student's labeled training images per class:
            the first of each class in the embedded (shuffled) training
            split, or `None` for all 1,000 (`student_training_data`). The
            teacher was trained on all of them.
    """

    student_filters: tuple = (8, 16)
    epochs: int = 150
    batch_size: int = 128
    learning_rate: float = 0.02
    scratch_learning_rate: float = 0.003
    augmented_learning_rate: float = 0.02
    temperature: float = 8.0
    alpha: float = 0.1
    views: int = 20
    translation: float = 0.1
    view_translation: float = 0.05
    scratch_augmentation: bool = True
    labeled_per_class: int = 200


DEFAULT = Setting()
# The same search budget for both: 10 settings each, every one trained for
# the same epochs at each seed on the same 2,000 labeled images, scored on
# the validation split (results/demo_selection.md).
SELECTION_GRID = {
    # (learning rate, augmentation): None, or the translation factor (with a flip).
    "scratch": (
        (0.003, None), (0.006, None), (0.01, None), (0.02, None),
        (0.003, 0.05), (0.01, 0.05), (0.02, 0.05),
        (0.003, 0.1), (0.01, 0.1), (0.02, 0.1),
    ),
    # (learning rate, T, alpha, views, translation of the views, teachers):
    # views 0 caches the logits on the training images (no augmentation).
    "distilled": (
        (0.02, 8.0, 0.5, 0, None, 2), (0.01, 8.0, 0.5, 0, None, 2), (0.03, 8.0, 0.5, 0, None, 2),
        (0.01, 4.0, 0.5, 0, None, 2), (0.02, 4.0, 0.1, 0, None, 2), (0.02, 8.0, 0.1, 0, None, 2),
        (0.02, 16.0, 0.5, 0, None, 2),
        (0.01, 4.0, 0.5, 20, 0.1, 2), (0.02, 8.0, 0.5, 20, 0.05, 2), (0.02, 8.0, 0.1, 20, 0.05, 2),
    ),
}
# Students are validated every few epochs (for the curves), not every one: it
# is cheap per epoch and not in total.
VALIDATION_FREQ = 15
TEACHER_RECIPE = dict(epochs=40, batch_size=128, learning_rate=2e-3)


def load(path=DATA_PATH):
    """Returns `(train, val, test)`, each `(images, labels)`: float32 images
    of shape `(n, 28, 28, 1)` in [0, 1] and int32 labels."""
    arrays = np.load(path)

    def split(name):
        images = arrays[f"x_{name}"].astype("float32")[..., None] / 255.0
        return images, arrays[f"y_{name}"].astype("int32")

    return split("train"), split("val"), split("test")


def augmentation(translation, seed=None, translation_seed=None):
    """The demo's augmentation: a horizontal flip, and a translation by up to
    `translation` of the image size if that is > 0.

    Args:
        translation: The `RandomTranslation` factor, or 0.
        seed: Int or `None`, the flip's seed.
        translation_seed: The translation's seed; defaults to `seed + 1` (the
            same seed would tie the two layers' draws together).
    """
    if translation_seed is None and seed is not None:
        translation_seed = seed + 1
    layers = [keras.layers.RandomFlip("horizontal", seed=seed)]
    if translation:
        layers.append(keras.layers.RandomTranslation(
            translation, translation, fill_mode="constant", seed=translation_seed
        ))
    return keras.Sequential(layers, name="augmentation")


def teacher_model():
    """The teacher: five 3×3 convolutions with batch norm, 288,682 parameters."""
    layers = keras.layers
    inputs = keras.Input((28, 28, 1))
    x = inputs
    for filters, pool in ((32, False), (32, True), (64, False), (64, True), (128, True)):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
        if pool:
            x = layers.MaxPooling2D()(x)
    x = layers.Dropout(0.3)(layers.Flatten()(x))
    x = layers.Dropout(0.3)(layers.Dense(128, activation="relu")(x))
    return keras.Model(inputs, layers.Dense(10)(x), name="teacher")


def student_model(setting=DEFAULT, name="student"):
    """The phone-sized student: two convolutions, each followed by pooling."""
    first, second = setting.student_filters
    layers = keras.layers
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(first, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(),
        layers.Conv2D(second, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(),
        layers.Flatten(),
        layers.Dense(10),
    ], name=name)


def _optimizer(learning_rate, epochs, batch_size, examples):
    steps = epochs * _steps_per_epoch(examples, batch_size)
    return keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(learning_rate, steps))


def _steps_per_epoch(examples, batch_size):
    return -(-examples // batch_size)


def _compile(model, setting, learning_rate, examples):
    """Compiles a student (or a distiller) the same way for every method:
    Adam with cosine decay, the sparse cross-entropy, accuracy. An epoch (16
    steps at the defaults) runs per call into TensorFlow
    (`steps_per_execution`): the same steps, without a Python round trip
    between them, which on these tiny models is much of a step's time. A
    whole epoch, not a fixed count: Keras rounds an epoch up to whole calls."""
    model.compile(
        optimizer=_optimizer(learning_rate, setting.epochs, setting.batch_size, examples),
        loss=_loss(), metrics=["accuracy"],
        steps_per_execution=_steps_per_epoch(examples, setting.batch_size),
    )


def _fit(model, batches, setting, examples, val):
    """Fits on `batches` (one epoch of batches, to be repeated) for
    `setting.epochs` epochs. The batches repeat in one endless pipeline
    (reshuffled each epoch, the last batch of an epoch partial as without
    repeating), so no epoch waits for a new iterator to fill its buffers."""
    return model.fit(
        batches.repeat().prefetch(tf.data.AUTOTUNE), epochs=setting.epochs,
        steps_per_epoch=_steps_per_epoch(examples, setting.batch_size), validation_data=val,
        validation_freq=_validation_freq(setting), shuffle=False, verbose=0,
    )


def _loss():
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def train_teacher(train, val, path, seed=0, verbose=2, epochs=None):
    """Trains the teacher on `train` with augmentation; writes its weights.

    The recipe (`TEACHER_RECIPE`): Adam, cosine decay from 2e-3, 40 epochs,
    batch 128, a horizontal flip and a translation by up to 10%. About 8
    minutes on 2 CPU cores.
    """
    keras.utils.set_random_seed(seed)
    epochs = epochs or TEACHER_RECIPE["epochs"]
    batch_size = TEACHER_RECIPE["batch_size"]
    # Both layers seeded alike, as the shipped teachers were trained.
    views = augmentation(0.1, seed=seed, translation_seed=seed)
    data = (
        tf.data.Dataset.from_tensor_slices(train).shuffle(len(train[0]), seed=seed).batch(batch_size)
        .map(lambda x, y: (views(x, training=True), y), num_parallel_calls=2).prefetch(2)
    )
    teacher = teacher_model()
    teacher.compile(
        optimizer=_optimizer(TEACHER_RECIPE["learning_rate"], epochs, batch_size, len(train[0])),
        loss=_loss(), metrics=["accuracy"],
    )
    # shuffle=False: the dataset is shuffled above (Keras warns otherwise).
    teacher.fit(data, epochs=epochs, validation_data=val, shuffle=False, verbose=verbose)
    with files.atomic_write(path, suffix=".weights.h5") as temporary:
        teacher.save_weights(temporary)
    return teacher


def teacher_training_data(data_dir=None, data_path=DATA_PATH):
    """The large teachers' training images: tfds `fashion_mnist` "train"
    without the demo's validation images (58,000; the demo's 10,000 training
    images among them, its test images come from "test").

    Needs tensorflow-datasets's copy of Fashion-MNIST (`data_dir`, else
    `TFDS_DATA_DIR`, else tfds's own folder, which downloads it).
    """
    tfds = _optional.require(
        "tensorflow_datasets", "examples", "`keras_kd.demo.teacher_training_data`"
    )
    (images, labels), = tfds.load(
        "fashion_mnist", split=["train"], as_supervised=True, batch_size=-1,
        data_dir=data_dir or os.environ.get("TFDS_DATA_DIR"),
    )
    keep = np.ones(len(labels), bool)
    keep[np.load(data_path)["val_index"]] = False
    images = np.asarray(images)[keep].astype("float32") / 255.0
    return images, np.asarray(labels)[keep].astype("int32")


def student_training_data(train, setting=DEFAULT):
    """The student's training images: the first `setting.labeled_per_class`
    of each class of `train` (in its stored, shuffled order), or all of them.

    Args:
        train: `(images, labels)`, the embedded training split.
        setting: The `Setting` (its `labeled_per_class`).

    Returns:
        `(images, labels)`, in `train`'s order.
    """
    per_class = setting.labeled_per_class
    if per_class is None:
        return train
    images, labels = train
    rows = np.sort(np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in np.unique(labels)]))
    return images[rows], labels[rows]


def load_teachers(paths=TEACHER_PATHS):
    """The shipped teachers, a list of `teacher_model()`s."""
    teachers = []
    for seed, path in enumerate(paths):
        teacher = teacher_model()
        teacher.name = f"teacher_{seed}"
        teacher.load_weights(path)
        teachers.append(teacher)
    return teachers


def ensemble(teachers):
    """One Keras model of the teachers' mixture, with its log-probabilities
    as logits (what a single-teacher tool such as keras.distillation takes)."""
    fused = fuse(teachers, name="teacher_ensemble")
    (inputs,) = fused.inputs  # One input, not a list of one (Keras warns when called).
    return keras.Model(inputs, keras.ops.log(fused.outputs[0]), name="teacher_ensemble_logits")


def train_scratch(train, val, setting, seed, augmented):
    """The student on the labels alone, with or without the augmentation."""
    keras.utils.set_random_seed(seed)
    student = student_model(setting, "scratch_student")
    learning_rate = setting.augmented_learning_rate if augmented else setting.scratch_learning_rate
    _compile(student, setting, learning_rate, len(train[0]))
    data = tf.data.Dataset.from_tensor_slices(train).shuffle(len(train[0]), seed=seed)
    data = data.batch(setting.batch_size)
    if augmented:
        views = augmentation(setting.translation, seed=seed)
        data = data.map(lambda x, y: (views(x, training=True), y), num_parallel_calls=2)
    return student, _fit(student, data, setting, len(train[0]), val)


def teacher_outputs(teachers, train, setting, seed=123):
    """The teacher's logits the distilled student learns from: a `TeacherCache`
    on the training images (`views=0`), or a `ReplayCache` of `views`
    augmented views of each (consistent augmentation)."""
    examples = tf.data.Dataset.from_tensor_slices(train)
    if setting.views == 0:
        return TeacherCache.compute(teachers, train[0], batch_size=500, verbose=0)
    keras.utils.set_random_seed(seed)
    return ReplayCache.compute(
        teachers, examples, augmentation(setting.view_translation, seed=seed), views=setting.views,
        batch_size=500, verbose=0,
    )


def train_distilled(teachers, cached, train, val, setting, seed):
    """The student distilled from the cached teacher logits (`teacher_outputs`).

    `val` is `None`, or `(TeacherCache of the validation images, images,
    labels)`: validation then needs no teacher pass either.
    """
    if val is not None:
        val_cache, val_images, val_labels = val
        val = (val_cache.attach(val_images), val_labels)
    keras.utils.set_random_seed(seed)
    student = student_model(setting, "distilled_student")
    replayed = isinstance(cached, ReplayCache)
    distiller = Distiller(
        teachers, student, temperature=setting.temperature, alpha=setting.alpha,
        augmentation=cached.augmentation if replayed else None,
    )
    _compile(distiller, setting, setting.learning_rate, len(train[0]))
    examples = tf.data.Dataset.from_tensor_slices(train)
    if replayed:
        # The attached data holds every example in each of its `views` views;
        # an epoch is `examples / batch_size` steps of it, shuffled across
        # views (a random share of the views, as many images as an epoch).
        data = cached.attach(examples).shuffle(len(train[0]) * cached.views, seed=seed)
    else:
        data = cached.attach(examples).shuffle(len(train[0]), seed=seed)
    return student, _fit(distiller, data.batch(setting.batch_size), setting, len(train[0]), val)


def train_with_keras_distillation(teacher, train, val, setting, seed):
    """The same student, distilled by Keras's own `keras.distillation` with
    the same `T`, label weight, optimizer and epochs. It has no cache: its
    teacher runs in every step, on what the step is given. With `views`, it
    is given the same augmentation, drawn afresh each step (so teacher and
    student see the same view, as with keras_kd's replayed views)."""
    from keras import distillation

    keras.utils.set_random_seed(seed)
    student = student_model(setting, "keras_distillation_student")
    distiller = distillation.Distiller(
        teacher, student,
        distillation_losses=distillation.LogitsDistillation(temperature=setting.temperature),
        student_loss_weight=setting.alpha,
    )
    _compile(distiller, setting, setting.learning_rate, len(train[0]))
    data = tf.data.Dataset.from_tensor_slices(train).shuffle(len(train[0]), seed=seed)
    data = data.batch(setting.batch_size)
    if setting.views:
        views = augmentation(setting.view_translation, seed=seed)
        data = data.map(lambda x, y: (views(x, training=True), y), num_parallel_calls=2)
    return student, _fit(distiller, data, setting, len(train[0]), val)


def _validation_freq(setting):
    """`VALIDATION_FREQ` where it divides the epochs (the last epoch is then
    validated), else every epoch."""
    return VALIDATION_FREQ if setting.epochs % VALIDATION_FREQ == 0 else 1


def _predictions(model, images):
    return np.argmax(model.predict(images, batch_size=1000, verbose=0), -1)


def _mean_se(values):
    mean = statistics.mean(values)
    se = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else float("nan")
    return mean, se


def run(output="demo_output", seeds=3, setting=DEFAULT, data_path=DATA_PATH, teacher_paths=TEACHER_PATHS,
        verbose=1, with_peer=False):
    """The main job. Returns a dict of the measured numbers.

    With `with_peer`, the same student is also distilled by Keras's own
    `keras.distillation` at each seed (a row more, about 5 minutes a seed on
    2 CPU cores: its teachers run in every step).
    """
    start = time.perf_counter()
    os.makedirs(output, exist_ok=True)
    tf.get_logger().setLevel("ERROR")  # Not one retracing notice per model predicted.
    full_train, val, test = load(data_path)
    train = student_training_data(full_train, setting)
    say = print if verbose else (lambda *args, **kwargs: None)
    say(f"Data: Fashion-MNIST subset (keras_kd/demo_data): the students train on {len(train[0])} "
        f"labeled images (the teachers were trained on all {len(full_train[0])}), "
        f"{len(val[0])} validation / {len(test[0])} test images.")
    teachers = load_teachers(teacher_paths)
    teacher = ensemble(teachers)
    probe = student_model(setting)
    say(f"Phone-sized means <= {MAX_PARAMETERS:,} parameters and <= {MAX_LATENCY_MS} ms per image "
        f"in LiteRT; the student has {probe.count_params():,} parameters. Setting: {setting}")
    cached = teacher_outputs(teachers, train, setting)
    kind = (f"{setting.views} augmented views per image (ReplayCache)" if setting.views
            else "the training images (TeacherCache)")
    each = ", ".join(f"{100 * score_on(t, val):.2f}%" for t in teachers)
    say(f"Teacher: {len(teachers)} CNNs, {teacher.count_params():,} parameters in all, validation "
        f"accuracy {each}, together {100 * score_on(teacher, val):.2f}%; their logits on {kind} cached "
        f"({time.perf_counter() - start:.0f} s).")

    val_cache = TeacherCache.compute(teachers, val[0], batch_size=500, verbose=0)
    # The scratch variant (with or without augmentation) was chosen on
    # validation by the selection, never on test.
    baseline = "scratch, augmented" if setting.scratch_augmentation else "scratch, no augmentation"
    methods = (baseline, "distilled")
    methods += ("distilled by keras.distillation",) if with_peer else ()
    models = {m: [] for m in methods}
    histories = {m: [] for m in methods}
    total = seeds * len(methods)
    for seed, method in itertools.product(range(seeds), methods):
        begun = time.perf_counter()
        if method == "distilled":
            model, history = train_distilled(teachers, cached, train, (val_cache, *val), setting, seed)
        elif method == "distilled by keras.distillation":
            model, history = train_with_keras_distillation(teacher, train, val, setting, seed)
        else:
            model, history = train_scratch(train, val, setting, seed, augmented=method.endswith("augmented"))
        models[method].append(model)
        histories[method].append(history)
        say(f"[{sum(map(len, models.values())):2d}/{total}] seed {seed}  {method:31s} "
            f"{setting.epochs} epochs  {time.perf_counter() - begun:5.1f} s  "
            f"validation {100 * history.history['val_accuracy'][-1]:.2f}%")

    val_accuracy = {
        m: [float(np.mean(_predictions(model, val[0]) == val[1])) for model in models[m]] for m in methods
    }
    test_correct = {m: [_predictions(model, test[0]) == test[1] for model in models[m]] for m in methods}
    teacher_correct = _predictions(teacher, test[0]) == test[1]

    tflite_path = os.path.join(output, "distilled_student_int8.tflite")
    export.export_tflite(
        models["distilled"][0], tflite_path, quantization="int8",
        representative_data=train[0][:500], sample=test[0][:8],
    )
    report = evaluation.evaluate_models(
        {
            "teacher": teacher,
            f"best scratch student ({baseline.split(', ')[1]})": models[baseline][0],
            "distilled student": models["distilled"][0],
            "distilled student, int8 TFLite": tflite_path,
        },
        test, parameters={"distilled student, int8 TFLite": probe.count_params()}, workdir=output,
    )
    int8_accuracy = report["distilled student, int8 TFLite"].accuracy
    latency = report["distilled student"].latency_ms
    comparison = evaluation.mcnemar_test(np.stack(test_correct[baseline]), np.stack(test_correct["distilled"]))
    table = _table(methods, val_accuracy, test_correct, teacher_correct, report, baseline, seeds, len(test[0]))
    plot = evaluation.plot_histories(
        {m: histories[m] for m in methods}, os.path.join(output, "learning_curves.png"),
        title=f"Fashion-MNIST subset: validation accuracy (mean, min-max over {seeds} seeds)",
        validation_freq=_validation_freq(setting),
    )
    elapsed = time.perf_counter() - start
    verdict = _verdict(comparison, test_correct, baseline, int8_accuracy, models["distilled"][0], test,
                       latency, probe.count_params(), seeds)
    if with_peer:
        peer = evaluation.mcnemar_test(
            np.stack(test_correct["distilled by keras.distillation"]), np.stack(test_correct["distilled"])
        )
        verdict += (f"\nkeras_kd vs keras.distillation (same student, T, label weight, optimizer, "
                    f"epochs): {peer.gain:+.2f} points, exact paired test over the {peer.examples} test "
                    f"images p = {peer.p_value:.2g}.")
    print(f"\n== Results on the {len(test[0])} test images\n")
    print(table)
    print(verdict)
    print(f"\nWrote {os.path.basename(tflite_path)}, {os.path.basename(plot)} and results.md into "
          f"{os.path.abspath(output)} ({elapsed:.0f} s in all).")
    with files.atomic_write(os.path.join(output, "results.md"), suffix=".md") as temporary:
        with open(temporary, "w") as f:
            f.write(table + "\n" + verdict + "\n")
    return {
        "baseline": baseline, "comparison": comparison, "int8_accuracy": int8_accuracy,
        "test_accuracy": {m: [float(np.mean(c)) for c in test_correct[m]] for m in methods},
        "val_accuracy": val_accuracy, "latency_ms": latency, "seconds": elapsed,
        "keras_distillation": peer if with_peer else None,
    }


def _table(methods, val_accuracy, test_correct, teacher_correct, report, baseline, seeds, examples):
    lines = [
        f"| model | validation accuracy | test accuracy (mean ± s.e., {seeds} seeds) | parameters "
        "| .tflite bytes | LiteRT ms/image |",
        "|---|---|---|---|---|---|",
    ]
    teacher = report["teacher"]
    lines.append(f"| teacher | — | {100 * float(np.mean(teacher_correct)):.2f}% | "
                 f"{teacher.parameters:,} | {teacher.bytes:,} | {teacher.latency_ms:.3f} |")
    student = report["distilled student"]
    for method in methods:
        mean, se = _mean_se([100 * float(np.mean(c)) for c in test_correct[method]])
        val_mean, _ = _mean_se([100 * v for v in val_accuracy[method]])
        marker = " (the better scratch student on validation, in the selection)" if method == baseline else ""
        lines.append(f"| student: {method}{marker} | {val_mean:.2f}% | {mean:.2f} ± {se:.2f}% | "
                     f"{student.parameters:,} | {student.bytes:,} | {student.latency_ms:.3f} |")
    int8 = report["distilled student, int8 TFLite"]
    lines.append(f"| student: distilled, int8 TFLite (seed 0) | — | {100 * int8.accuracy:.2f}% | "
                 f"{int8.parameters:,} | {int8.bytes:,} | {int8.latency_ms:.3f} |")
    return "\n".join(lines)


def _verdict(comparison, test_correct, baseline, int8_accuracy, distilled, test, latency, parameters, seeds):
    gains = [100 * (float(np.mean(d)) - float(np.mean(b)))
             for d, b in zip(test_correct["distilled"], test_correct[baseline])]
    gain, se = _mean_se(gains)
    keras_accuracy = float(np.mean(test_correct["distilled"][0]))
    int8_gap = 100 * (int8_accuracy - keras_accuracy)
    phone = (f"{parameters:,} parameters (cap {MAX_PARAMETERS:,}), {latency:.3f} ms per image in "
             f"LiteRT (cap {MAX_LATENCY_MS})")
    fits = parameters <= MAX_PARAMETERS and latency <= MAX_LATENCY_MS
    summary = (
        f"distilled vs the best scratch student ({baseline}): {gain:+.2f} ± {se:.2f} points "
        f"(mean ± s.e. over {seeds} seeds); exact paired test (McNemar's, on each test image's "
        f"correctness averaged over the seeds) over the {comparison.examples} test images: better on "
        f"{comparison.only_second}, worse on {comparison.only_first}, p = {comparison.p_value:.2g}. "
        f"int8 TFLite: {int8_gap:+.2f} points from its Keras model. "
        f"Student: {phone}{'' if fits else ' — OVER THE CAP'}."
    )
    if gain >= 1.0 and comparison.p_value < 0.05:
        return f"\nDistillation clearly helped: {summary}"
    if gain > 0 and comparison.p_value < 0.05:
        return f"\nDistillation helped, by less than 1 point: {summary}"
    return f"\nDistillation did not clearly beat the scratch student here: {summary}"


def select(seeds=2, grid=None, setting=DEFAULT, data_path=DATA_PATH,
           teacher_paths=SELECTION_TEACHER_PATHS):
    """Scores every setting of `grid` on the validation split; prints a table.

    The test split is not read. The scratch student and the distilled one
    get the same number of settings (`SELECTION_GRID`), trained for the same
    epochs at the same seeds. Returns the rows, best first.

    Args:
        seeds: Seeds per setting (the score is their mean).
        grid: `{"scratch": ..., "distilled": ...}` in `SELECTION_GRID`'s
            form (a slice of it runs part of the search). Defaults to
            `SELECTION_GRID`.
        setting: What the grid does not set (epochs, student, batch size).
        data_path: The embedded data.
        teacher_paths: The teachers; a distilled setting uses the first
            `teachers` of them.
    """
    grid = grid or SELECTION_GRID
    train, val, _ = load(data_path)
    train = student_training_data(train, setting)
    all_teachers = load_teachers(teacher_paths)
    rows = []

    def record(method, candidate, scores, **shown):
        rows.append({"method": method, "setting": candidate, "val_accuracy": scores, **shown})
        print(f"{method:26s} " + " ".join(f"{k} {v}" for k, v in shown.items())
              + f": {100 * statistics.mean(scores):.2f}%", flush=True)

    for learning_rate, translation in grid["scratch"]:
        augmented = translation is not None
        candidate = dataclasses.replace(
            setting, scratch_learning_rate=learning_rate, augmented_learning_rate=learning_rate,
            translation=translation or 0.0, scratch_augmentation=augmented,
        )
        scores = [score_on(train_scratch(train, None, candidate, s, augmented)[0], val) for s in range(seeds)]
        method = f"scratch, {'augmented' if augmented else 'no augmentation'}"
        record(method, candidate, scores, lr=learning_rate,
               augmentation=("flip" + (f" + translation {translation}" if translation else "")) if augmented else "none")
    outputs = {}  # One cache per (views, translation, teachers).
    for learning_rate, temperature, alpha, views, translation, count in grid["distilled"]:
        candidate = dataclasses.replace(
            setting, learning_rate=learning_rate, temperature=temperature, alpha=alpha, views=views,
            view_translation=translation if views else setting.view_translation,
        )
        teachers = all_teachers[:count]
        key = (views, translation if views else None, count)
        if key not in outputs:
            outputs[key] = teacher_outputs(teachers, train, candidate)
        scores = [score_on(train_distilled(teachers, outputs[key], train, None, candidate, s)[0], val)
                  for s in range(seeds)]
        record("distilled", candidate, scores, lr=learning_rate, views=views, T=temperature, alpha=alpha,
               teachers=count,
               augmentation=f"flip + translation {translation}" if views else "none")
    rows.sort(key=lambda r: -statistics.mean(r["val_accuracy"]))
    print(f"\nValidation accuracy ({len(val[0])} images), mean over {seeds} seeds, "
          f"{setting.epochs} epochs; the test split is not read:")
    print("| method | learning rate | augmentation | views | teachers | T | alpha | validation accuracy |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        s, is_distilled = r["setting"], r["method"] == "distilled"
        rate = s.learning_rate if is_distilled else s.scratch_learning_rate
        print(f"| {r['method']} | {rate} | {r['augmentation']} | {s.views if is_distilled else '—'} "
              f"| {r['teachers'] if is_distilled else '—'} "
              f"| {s.temperature if is_distilled else '—'} | {s.alpha if is_distilled else '—'} "
              f"| {100 * statistics.mean(r['val_accuracy']):.2f}% |")
    return rows


def score_on(model, data):
    """The accuracy of `model` on `(images, labels)`."""
    return float(np.mean(_predictions(model, data[0]) == data[1]))
