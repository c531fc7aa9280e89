"""One evaluation report for teachers, students and their TFLite files."""

import dataclasses
import math
import os
import statistics
import sys
import tempfile

import keras
import numpy as np

from keras_kd._internal.backends import tf
from keras_kd._internal import optional as _optional
from keras_kd.deployment import export
from keras_kd._internal import files
from keras_kd._step import output_views as views

__all__ = [
    "EvaluationReport",
    "ModelEvaluation",
    "PairedComparison",
    "evaluate_models",
    "macro_f1_score",
    "mcnemar_test",
    "plot_histories",
    "summarize_reports",
]


@dataclasses.dataclass(frozen=True)
class ModelEvaluation:
    """How one model did on a test set.

    Attributes:
        name: The model's name in the report.
        accuracy: Fraction of test examples classified correctly.
        errors: Number of test examples classified wrongly.
        examples: Number of test examples.
        parameters: Parameter count (`None` if unknown).
        bytes: Size on disk of the `.tflite` file (for a Keras model, of its
            float32 TFLite export: what a phone would load; `None` for
            precomputed scores).
        latency_ms: Mean milliseconds per example in the LiteRT interpreter,
            batch 1, 1 thread (of the float32 export, for a Keras model).
        macro_f1: Unweighted mean over the classes of the per-class F1
            score (classes present in the labels or the predictions).
    """

    name: str
    accuracy: float
    errors: int
    examples: int
    parameters: int | None
    bytes: int | None
    latency_ms: float | None
    macro_f1: float = float("nan")


class EvaluationReport:
    """The rows of an evaluation, printable as a Markdown table.

    Args:
        rows: A list of `ModelEvaluation`.
    """

    def __init__(self, rows):
        self.rows = list(rows)

    def __getitem__(self, name):
        for row in self.rows:
            if row.name == name:
                return row
        raise KeyError(name)

    def __str__(self):
        return summarize_reports([self])


def evaluate_models(models, data, parameters=None, latency_examples=200, workdir=None):
    """Evaluates Keras models and `.tflite` files on the same test data.

    Args:
        models: Dict from a display name to a `keras.Model`, the path of a
            `.tflite` file, or a numpy array of class scores already computed
            for the test data (e.g. a teacher's cached logits). Outputs are
            class scores (logits or probabilities).
        data: `(x, y)` arrays, or a `tf.data.Dataset` of `(x, y)` batches.
        parameters: Optional dict from a display name to a parameter count,
            for `.tflite` files and score arrays (e.g. the count of the Keras
            model they came from). Defaults to `None`.
        latency_examples: Int, examples timed for the latency. Defaults to
            `200`.
        workdir: Optional folder for the temporary float32 exports of Keras
            models (removed afterwards). Defaults to `None` (the system's
            temporary folder).

    Returns:
        An `EvaluationReport`; `print(report)` shows the table.

    Example:

    ```python
    report = keras_kd.evaluate_models(
        {"teacher": teacher, "student": distiller.student,
         "student int8": "student_int8.tflite"},
        (x_test, y_test),
        parameters={"student int8": distiller.student.count_params()},
    )
    print(report)
    ```
    """
    x, y = _arrays(data)
    parameters = dict(parameters or {})
    rows = []
    with tempfile.TemporaryDirectory(dir=workdir) as folder:
        for name, model in models.items():
            size = latency = None
            if isinstance(model, np.ndarray):
                if len(model) != len(y):
                    raise ValueError(
                        f"Argument `models` must give one row of scores per "
                        f"test example: the test data has {len(y)}. Received "
                        f"for {name!r}: scores of shape {model.shape}"
                    )
                predictions = np.argmax(model, -1)
                count = parameters.get(name)
            elif isinstance(model, keras.Model):
                scores = views.logits_of(model.predict(x, verbose=0, batch_size=256))
                predictions = np.argmax(scores, -1)
                float_file = os.path.join(folder, "model.tflite")
                export.export_tflite(model, float_file, sample=x[:1])
                size = os.path.getsize(float_file)
                latency = export.run_tflite(float_file, x[:latency_examples])[1]
                count = model.count_params()
            else:
                path = model if isinstance(model, (str, os.PathLike)) else ""
                if not os.fspath(path).endswith(".tflite"):
                    raise ValueError(
                        "Argument `models` must map names to keras.Model "
                        "objects, .tflite paths or numpy arrays of scores. "
                        f"Received for {name!r}: {model!r}"
                    )
                path = os.fspath(path)
                outputs, latency = export.run_tflite(path, x)
                predictions = np.argmax(outputs, -1)
                size = os.path.getsize(path)
                count = parameters.get(name)
            errors = int(np.sum(predictions != y))
            rows.append(
                ModelEvaluation(
                    name=name,
                    accuracy=1.0 - errors / len(y),
                    errors=errors,
                    examples=len(y),
                    parameters=count,
                    bytes=size,
                    latency_ms=latency,
                    macro_f1=macro_f1_score(y, predictions),
                )
            )
    return EvaluationReport(rows)


def macro_f1_score(labels, predictions):
    """The unweighted mean of the per-class F1 scores.

    Classes that appear in `labels` or `predictions` count; a class's F1 is
    `2·TP / (2·TP + FP + FN)`.

    Args:
        labels: Integer class ids.
        predictions: Predicted class ids, same shape.

    Returns:
        A float in [0, 1].
    """
    labels = np.asarray(labels).reshape(-1)
    predictions = np.asarray(predictions).reshape(-1)
    scores = []
    for c in np.union1d(labels, predictions):
        true_positives = np.sum((predictions == c) & (labels == c))
        wrong = np.sum((predictions == c) != (labels == c))
        scores.append(2 * true_positives / (2 * true_positives + wrong))
    return float(np.mean(scores))


def summarize_reports(reports, macro_f1=False):
    """A Markdown table of one report, or of mean ± std over several (seeds).

    Args:
        reports: A list of `EvaluationReport` with the same model names.
        macro_f1: Bool, add a macro-F1 column (for unbalanced classes).
            Defaults to `False`.

    Returns:
        The table as a string.
    """
    names = [row.name for row in reports[0].rows]
    seeds = len(reports)
    f1_header, f1_rule = (" macro-F1 |", "---|") if macro_f1 else ("", "")
    lines = [
        f"| model | accuracy{' (mean ± std, %d seeds)' % seeds if seeds > 1 else ''} "
        f"|{f1_header} errors | parameters | .tflite bytes | LiteRT ms/example |",
        f"|---|---|{f1_rule}---|---|---|---|",
    ]
    for name in names:
        rows = [report[name] for report in reports]
        f1 = (
            f" {_mean_std([r.macro_f1 for r in rows], '', digits=3)} |"
            if macro_f1 else ""
        )
        sizes = [r.bytes for r in rows if r.bytes is not None]
        lines.append(
            f"| {name} | {_mean_std([100 * r.accuracy for r in rows], '%')} |{f1}"
            f" {_mean_std([r.errors for r in rows], '')} of {rows[0].examples} "
            f"| {_count(rows[0].parameters)} "
            f"| {_count(round(statistics.mean(sizes)) if sizes else None)} "
            f"| {_latency([r.latency_ms for r in rows])} |"
        )
    return "\n".join(lines)


def plot_histories(histories, path, metric="val_accuracy", title=None, validation_freq=1):
    """Writes a PNG of learning curves, atomically.

    Args:
        histories: Dict from a label to a `keras.callbacks.History`, a
            History's `.history` dict, or a list of them (seeds: the mean is
            drawn, with a band from min to max).
        path: The `.png` path.
        metric: The logged value to draw. Defaults to `"val_accuracy"`.
        title: Optional title. Defaults to `None`.
        validation_freq: Int, the `fit(validation_freq=...)` the histories
            were logged with: point `i` is epoch `(i + 1) * validation_freq`.
            Defaults to `1`.

    Returns:
        The path written.
    """
    matplotlib = _optional.require("matplotlib", "plot", "`keras_kd.plot_histories`")
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for label, runs in histories.items():
        runs = runs if isinstance(runs, (list, tuple)) else [runs]
        curves = np.array([_history_dict(run)[metric] for run in runs], dtype=float)
        epochs = np.arange(1, curves.shape[1] + 1) * validation_freq
        axis.plot(epochs, curves.mean(0), label=label, marker="o" if validation_freq > 1 else None)
        if len(curves) > 1:
            axis.fill_between(epochs, curves.min(0), curves.max(0), alpha=0.2)
    axis.set_xlabel("epoch")
    axis.set_ylabel(metric)
    axis.grid(alpha=0.3)
    axis.legend()
    if title:
        axis.set_title(title)
    figure.tight_layout()
    path = os.path.abspath(os.fspath(path))
    try:
        with files.atomic_write(path, suffix=".png") as temporary:
            figure.savefig(temporary, dpi=120)
    finally:
        plt.close(figure)
    return path


def _history_dict(run):
    return run.history if isinstance(run, keras.callbacks.History) else run


def _arrays(data):
    # A tf.data.Dataset exists only once TensorFlow is imported: arrays need
    # no TensorFlow (e.g. score arrays on a JAX machine).
    if sys.modules.get("tensorflow") is not None and isinstance(data, tf.data.Dataset):
        xs, ys = [], []
        for x, y in data:
            xs.append(np.asarray(x))
            ys.append(np.asarray(y))
        return np.concatenate(xs), np.concatenate(ys)
    x, y = data
    return np.asarray(x), np.asarray(y)


def _mean_std(values, unit, digits=None):
    if digits is not None:
        if len(values) == 1:
            return f"{values[0]:.{digits}f}"
        mean, std = statistics.mean(values), statistics.stdev(values)
        return f"{mean:.{digits}f} ± {std:.{digits}f}"
    if len(values) == 1:
        return f"{values[0]:.2f}{unit}" if unit else f"{values[0]:g}"
    mean, std = statistics.mean(values), statistics.stdev(values)
    return f"{mean:.2f} ± {std:.2f}{unit}" if unit else f"{mean:.1f} ± {std:.1f}"


def _count(value):
    return "—" if value is None else f"{value:,}"


def _latency(values):
    values = [v for v in values if v is not None and math.isfinite(v)]
    return f"{statistics.median(values):.3f}" if values else "—"


@dataclasses.dataclass(frozen=True)
class PairedComparison:
    """Two models compared example by example (McNemar's exact test).

    Attributes:
        examples: Number of test examples (each counted once, whatever the
            number of seeds).
        only_first: Examples on which the first model did better (with one
            seed: right where the second was wrong).
        only_second: Examples on which the second model did better.
        gain: Accuracy of the second minus the first, in points (averaged
            over seeds).
        p_value: Two-sided exact p-value: the probability, were both models
            equally accurate, of a split of the examples on which they
            differ at least this uneven.
    """

    examples: int
    only_first: int
    only_second: int
    gain: float
    p_value: float


def mcnemar_test(first_correct, second_correct):
    """McNemar's exact test on paired per-example correctness.

    With one seed per model, `first_correct` and `second_correct` are bool
    arrays over the test examples and this is McNemar's exact test: the
    examples exactly one model gets right are split between the two models
    as a fair coin would, under the null hypothesis. With several seeds,
    pass `(seeds, examples)` arrays: each example counts once, as the sign of
    the difference of its correctness averaged over the seeds (a sign test,
    which is McNemar's for one seed). The seeds' predictions on the same image
    are not independent, so they are not pooled as separate examples.

    Args:
        first_correct: Bool array `(examples,)` or `(seeds, examples)`,
            whether the first model (e.g. the scratch student) classified
            each example correctly.
        second_correct: Bool array of the same shape, for the second model.

    Returns:
        A `PairedComparison`.

    Example:

    ```python
    comparison = keras_kd.mcnemar_test(
        [p == y_test for p in scratch_predictions],     # one row per seed
        [p == y_test for p in distilled_predictions],
    )
    print(f"{comparison.gain:+.2f} points, p = {comparison.p_value:.2g}")
    ```
    """
    first = np.asarray(first_correct, bool)
    second = np.asarray(second_correct, bool)
    if first.shape != second.shape or first.size == 0 or first.ndim not in (1, 2):
        raise ValueError(
            "Arguments `first_correct` and `second_correct` must be non-empty "
            "bool arrays of the same shape, (examples,) or (seeds, examples). "
            f"Received: shapes {np.shape(first_correct)} and {np.shape(second_correct)}"
        )
    first, second = np.atleast_2d(first), np.atleast_2d(second)
    difference = second.mean(axis=0) - first.mean(axis=0)
    only_first = int(np.sum(difference < 0))
    only_second = int(np.sum(difference > 0))
    discordant = only_first + only_second
    tail = sum(math.comb(discordant, k) for k in range(min(only_first, only_second) + 1))
    p_value = 1.0 if discordant == 0 else min(1.0, 2 * tail / 2**discordant)
    return PairedComparison(first.shape[1], only_first, only_second, 100.0 * float(difference.mean()), p_value)
