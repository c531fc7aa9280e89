"""The main job and the selection that chose its setting, as short
orchestrations of `data`, `models`, `training` and `report`.

`run` trains, at each seed, the scratch student and the distilled one (and
keras.distillation's with `with_peer`), compares them on the test split,
exports the first distilled student to int8 TFLite and writes the results.
`select` scores `SELECTION_GRID` on the validation split only.
"""

import dataclasses
import itertools
import os
import statistics
import time

import numpy as np
import tensorflow as tf

from keras_kd.data.cache import TeacherCache
from keras_kd.demo import report
from keras_kd.demo import training
from keras_kd.demo.data import load
from keras_kd.demo.data import student_training_data
from keras_kd.demo.models import correct
from keras_kd.demo.models import ensemble
from keras_kd.demo.models import load_teachers
from keras_kd.demo.models import score_on
from keras_kd.demo.models import student_model
from keras_kd.demo.settings import DATA_PATH
from keras_kd.demo.settings import DEFAULT
from keras_kd.demo.settings import DISTILLED
from keras_kd.demo.settings import KERAS_DISTILLATION
from keras_kd.demo.settings import MAX_LATENCY_MS
from keras_kd.demo.settings import MAX_PARAMETERS
from keras_kd.demo.settings import SCRATCH
from keras_kd.demo.settings import SELECTION_GRID
from keras_kd.demo.settings import SELECTION_TEACHER_PATHS
from keras_kd.demo.settings import TEACHER_PATHS
from keras_kd.demo.settings import scratch_method
from keras_kd.demo.settings import validation_freq
from keras_kd.deployment import evaluation
from keras_kd.deployment import export

INT8_STUDENT = "distilled student, int8 TFLite"


@dataclasses.dataclass(frozen=True)
class Inputs:
    """What the job's trainings and measures read, prepared once.

    Attributes:
        train: `(images, labels)`, the students' labeled training images.
        val: `(images, labels)`, the validation split.
        test: `(images, labels)`, the test split.
        teachers: The shipped teachers (`load_teachers`).
        teacher: Their ensemble as one model (`ensemble`).
        cached: The teachers' logits the distilled student learns from
            (`training.teacher_outputs`).
        val_cache: The teachers' logits on the validation images.
        parameters: The student's parameters.
    """

    train: tuple
    val: tuple
    test: tuple
    teachers: list
    teacher: object
    cached: object
    val_cache: TeacherCache
    parameters: int


def _silent(*args, **kwargs):
    """`print` for a quiet job."""


def _prepare(setting, data_path, teacher_paths, say, start):
    """Loads the data and the teachers, caches the teachers' logits, and
    says what the job runs on. Returns the `Inputs`."""
    full_train, val, test = load(data_path)
    train = student_training_data(full_train, setting)
    say(f"Data: Fashion-MNIST subset (keras_kd/demo_data): the students train on {len(train[0])} "
        f"labeled images (the teachers were trained on all {len(full_train[0])}), "
        f"{len(val[0])} validation / {len(test[0])} test images.")
    teachers = load_teachers(teacher_paths)
    teacher = ensemble(teachers)
    parameters = student_model(setting).count_params()
    say(f"Phone-sized means <= {MAX_PARAMETERS:,} parameters and <= {MAX_LATENCY_MS} ms per image "
        f"in LiteRT; the student has {parameters:,} parameters. Setting: {setting}")
    cached = training.teacher_outputs(teachers, train, setting)
    kind = (f"{setting.views} augmented views per image (ReplayCache)" if setting.views
            else "the training images (TeacherCache)")
    each = ", ".join(f"{100 * score_on(t, val):.2f}%" for t in teachers)
    say(f"Teacher: {len(teachers)} CNNs, {teacher.count_params():,} parameters in all, validation "
        f"accuracy {each}, together {100 * score_on(teacher, val):.2f}%; their logits on {kind} cached "
        f"({time.perf_counter() - start:.0f} s).")
    val_cache = TeacherCache.compute(teachers, val[0], batch_size=500, verbose=0)
    return Inputs(train, val, test, teachers, teacher, cached, val_cache, parameters)


def _trainings(setting, with_peer):
    """The job's trainings in their order: `{method: train}`, each
    `train(inputs, seed)` returning `(student, history)`. The scratch
    student is the variant the selection chose on validation."""
    trainings = {
        scratch_method(setting): lambda inputs, seed: training.train_scratch(
            inputs.train, inputs.val, setting, seed, augmented=setting.scratch_augmentation),
        DISTILLED: lambda inputs, seed: training.train_distilled(
            inputs.teachers, inputs.cached, inputs.train, (inputs.val_cache, *inputs.val), setting, seed),
    }
    if with_peer:
        trainings[KERAS_DISTILLATION] = lambda inputs, seed: training.train_with_keras_distillation(
            inputs.teacher, inputs.train, inputs.val, setting, seed)
    return trainings


def _train_all(inputs, trainings, seeds, setting, say):
    """Trains every method at each seed (seed by seed), saying one line per
    model. Returns `(students, histories)`, each `{method: [per seed]}`."""
    students = {m: [] for m in trainings}
    histories = {m: [] for m in trainings}
    total = seeds * len(trainings)
    for seed, method in itertools.product(range(seeds), trainings):
        begun = time.perf_counter()
        student, history = trainings[method](inputs, seed)
        students[method].append(student)
        histories[method].append(history)
        say(f"[{sum(map(len, students.values())):2d}/{total}] seed {seed}  {method:31s} "
            f"{setting.epochs} epochs  {time.perf_counter() - begun:5.1f} s  "
            f"validation {100 * history.history['val_accuracy'][-1]:.2f}%")
    return students, histories


def _export_and_evaluate(inputs, students, baseline, output):
    """Exports the first distilled student to int8 TFLite and measures it
    with the teacher and the Keras students (`evaluate_models`).
    Returns `(tflite_path, evaluated)`."""
    tflite_path = os.path.join(output, "distilled_student_int8.tflite")
    export.export_tflite(
        students[DISTILLED][0], tflite_path, quantization="int8",
        representative_data=inputs.train[0][:500], sample=inputs.test[0][:8],
    )
    evaluated = evaluation.evaluate_models(
        {
            "teacher": inputs.teacher,
            f"best scratch student ({baseline.split(', ')[1]})": students[baseline][0],
            "distilled student": students[DISTILLED][0],
            INT8_STUDENT: tflite_path,
        },
        inputs.test, parameters={INT8_STUDENT: inputs.parameters}, workdir=output,
    )
    return tflite_path, evaluated


def _compare(test_correct, first, second):
    """McNemar's exact test of method `second` against `first` on the test
    images (each image's correctness averaged over the seeds)."""
    return evaluation.mcnemar_test(np.stack(test_correct[first]), np.stack(test_correct[second]))


def run(output="demo_output", seeds=3, setting=DEFAULT, data_path=DATA_PATH, teacher_paths=TEACHER_PATHS,
        verbose=1, with_peer=False):
    """The main job. Returns a dict of the measured numbers.

    With `with_peer`, the same student is also distilled by Keras's own
    `keras.distillation` at each seed (a row more, about 5 minutes a seed on
    2 CPU cores: its teachers run in every step).

    Returns:
        `{"baseline", "comparison", "int8_accuracy", "test_accuracy",
        "val_accuracy", "latency_ms", "seconds", "keras_distillation"}`.
    """
    start = time.perf_counter()
    os.makedirs(output, exist_ok=True)
    tf.get_logger().setLevel("ERROR")  # Not one retracing notice per model predicted.
    say = print if verbose else _silent
    inputs = _prepare(setting, data_path, teacher_paths, say, start)
    baseline, trainings = scratch_method(setting), _trainings(setting, with_peer)
    students, histories = _train_all(inputs, trainings, seeds, setting, say)
    val_accuracy = {m: [score_on(student, inputs.val) for student in students[m]] for m in trainings}
    test_correct = {m: [correct(student, inputs.test) for student in students[m]] for m in trainings}
    teacher_correct = correct(inputs.teacher, inputs.test)
    tflite_path, evaluated = _export_and_evaluate(inputs, students, baseline, output)
    int8_accuracy = evaluated[INT8_STUDENT].accuracy
    latency = evaluated["distilled student"].latency_ms
    comparison = _compare(test_correct, baseline, DISTILLED)
    table = report.table(tuple(trainings), val_accuracy, test_correct, teacher_correct, evaluated, baseline, seeds)
    plot = evaluation.plot_histories(
        histories, os.path.join(output, "learning_curves.png"),
        title=f"Fashion-MNIST subset: validation accuracy (mean, min-max over {seeds} seeds)",
        validation_freq=validation_freq(setting),
    )
    elapsed = time.perf_counter() - start
    verdict = report.verdict(comparison, test_correct, baseline, int8_accuracy, latency, inputs.parameters, seeds)
    peer = _compare(test_correct, KERAS_DISTILLATION, DISTILLED) if with_peer else None
    verdict += report.keras_distillation_verdict(peer) if with_peer else ""
    report.show(table, verdict, (tflite_path, plot), output, len(inputs.test[0]), elapsed)
    report.write_results(output, table, verdict)
    return {
        "baseline": baseline, "comparison": comparison, "int8_accuracy": int8_accuracy,
        "test_accuracy": {m: [float(np.mean(c)) for c in test_correct[m]] for m in trainings},
        "val_accuracy": val_accuracy, "latency_ms": latency, "seconds": elapsed,
        "keras_distillation": peer,
    }


def _record(method, candidate, scores, **shown):
    """The selection's row for one setting (printed as it is scored)."""
    print(report.selection_line(method, scores, shown), flush=True)
    return {"method": method, "setting": candidate, "val_accuracy": scores, **shown}


def _select_scratch(train, val, setting, seeds, learning_rate, translation):
    """Scores the scratch student with `learning_rate`, augmented if
    `translation` is not `None` (a flip, and that translation if > 0)."""
    augmented = translation is not None
    candidate = dataclasses.replace(
        setting, scratch_learning_rate=learning_rate, augmented_learning_rate=learning_rate,
        translation=translation or 0.0, scratch_augmentation=augmented,
    )
    scores = [score_on(training.train_scratch(train, None, candidate, s, augmented)[0], val)
              for s in range(seeds)]
    shown = "flip" + (f" + translation {translation}" if translation else "")
    return _record(SCRATCH[augmented], candidate, scores, lr=learning_rate,
                   augmentation=shown if augmented else "none")


def _select_distilled(train, val, setting, seeds, all_teachers, outputs, row):
    """Scores the distilled student of one row of `SELECTION_GRID["distilled"]`;
    the teachers' logits are cached in `outputs`, one per (views,
    translation, teachers)."""
    learning_rate, temperature, alpha, views, translation, count = row
    candidate = dataclasses.replace(
        setting, learning_rate=learning_rate, temperature=temperature, alpha=alpha, views=views,
        view_translation=translation if views else setting.view_translation,
    )
    teachers = all_teachers[:count]
    key = (views, translation if views else None, count)
    if key not in outputs:
        outputs[key] = training.teacher_outputs(teachers, train, candidate)
    scores = [score_on(training.train_distilled(teachers, outputs[key], train, None, candidate, s)[0], val)
              for s in range(seeds)]
    return _record(DISTILLED, candidate, scores, lr=learning_rate, views=views, T=temperature, alpha=alpha,
                   teachers=count, augmentation=f"flip + translation {translation}" if views else "none")


def select(seeds=2, grid=None, setting=DEFAULT, data_path=DATA_PATH,
           teacher_paths=SELECTION_TEACHER_PATHS):
    """Scores every setting of `grid` on the validation split; prints a table.

    The test split is not read. The scratch student and the distilled one
    get the same number of settings (`SELECTION_GRID`), trained for the same
    epochs at the same seeds.

    Args:
        seeds: Seeds per setting (the score is their mean).
        grid: `{"scratch": ..., "distilled": ...}` in `SELECTION_GRID`'s
            form (a slice of it runs part of the search). Defaults to
            `SELECTION_GRID`.
        setting: What the grid does not set (epochs, student, batch size).
        data_path: The embedded data.
        teacher_paths: The teachers; a distilled setting uses the first
            `teachers` of them.

    Returns:
        The rows, best first: `{"method", "setting", "val_accuracy", ...}`
        with what each setting set.
    """
    grid = grid or SELECTION_GRID
    train, val, _ = load(data_path)
    train = student_training_data(train, setting)
    all_teachers = load_teachers(teacher_paths)
    rows = [_select_scratch(train, val, setting, seeds, *row) for row in grid["scratch"]]
    outputs = {}  # One cache per (views, translation, teachers).
    rows += [_select_distilled(train, val, setting, seeds, all_teachers, outputs, row) for row in grid["distilled"]]
    rows.sort(key=lambda r: -statistics.mean(r["val_accuracy"]))
    print(report.selection_table(rows, len(val[0]), seeds, setting.epochs))
    return rows
