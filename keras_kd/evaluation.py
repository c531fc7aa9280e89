"""One evaluation report for teachers, students and their TFLite files."""

import dataclasses
import math
import os
import statistics
import tempfile

import keras
import numpy as np
import tensorflow as tf

from keras_kd import export


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
            float32 TFLite export: what a phone would load).
        latency_ms: Mean milliseconds per example in the LiteRT interpreter,
            batch 1, 1 thread (of the float32 export, for a Keras model).
    """

    name: str
    accuracy: float
    errors: int
    examples: int
    parameters: int | None
    bytes: int
    latency_ms: float | None


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
        models: Dict from a display name to a `keras.Model` or the path of a
            `.tflite` file. A model's outputs are class scores (logits or
            probabilities).
        data: `(x, y)` arrays, or a `tf.data.Dataset` of `(x, y)` batches.
        parameters: Optional dict from a display name to a parameter count,
            for `.tflite` files (e.g. the count of the Keras model they were
            exported from). Defaults to `None`.
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
            if isinstance(model, keras.Model):
                predictions = np.argmax(model.predict(x, verbose=0, batch_size=256), -1)
                float_file = os.path.join(folder, "model.tflite")
                export.export_tflite(model, float_file, sample=x[:1])
                size = os.path.getsize(float_file)
                latency = export.run_tflite(float_file, x[:latency_examples])[1]
                count = model.count_params()
            else:
                path = os.fspath(model)
                if not path.endswith(".tflite"):
                    raise ValueError(
                        f"Models must be keras.Model objects or .tflite paths. "
                        f"Received for {name!r}: {model!r}"
                    )
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
                )
            )
    return EvaluationReport(rows)


def summarize_reports(reports):
    """A Markdown table of one report, or of mean ± std over several (seeds).

    Args:
        reports: A list of `EvaluationReport` with the same model names.

    Returns:
        The table as a string.
    """
    names = [row.name for row in reports[0].rows]
    seeds = len(reports)
    lines = [
        f"| model | accuracy{' (mean ± std, %d seeds)' % seeds if seeds > 1 else ''} "
        "| errors | parameters | .tflite bytes | LiteRT ms/example |",
        "|---|---|---|---|---|---|",
    ]
    for name in names:
        rows = [report[name] for report in reports]
        lines.append(
            f"| {name} | {_mean_std([100 * r.accuracy for r in rows], '%')} "
            f"| {_mean_std([r.errors for r in rows], '')} of {rows[0].examples} "
            f"| {_count(rows[0].parameters)} | {_count(round(statistics.mean(r.bytes for r in rows)))} "
            f"| {_latency([r.latency_ms for r in rows])} |"
        )
    return "\n".join(lines)


def plot_histories(histories, path, metric="val_accuracy", title=None):
    """Writes a PNG of learning curves, atomically.

    Args:
        histories: Dict from a label to a `keras.callbacks.History`, a
            History's `.history` dict, or a list of them (seeds: the mean is
            drawn, with a band from min to max).
        path: The `.png` path.
        metric: The logged value to draw. Defaults to `"val_accuracy"`.
        title: Optional title. Defaults to `None`.

    Returns:
        The path written.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axis = plt.subplots(figsize=(7, 4.5))
    for label, runs in histories.items():
        runs = runs if isinstance(runs, (list, tuple)) else [runs]
        curves = np.array([_history_dict(run)[metric] for run in runs], dtype=float)
        epochs = np.arange(1, curves.shape[1] + 1)
        axis.plot(epochs, curves.mean(0), label=label)
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
    handle, temporary = tempfile.mkstemp(dir=os.path.dirname(path), suffix=".png")
    os.close(handle)
    try:
        figure.savefig(temporary, dpi=120)
        os.replace(temporary, path)
    finally:
        plt.close(figure)
        if os.path.exists(temporary):
            os.remove(temporary)
    return path


def _history_dict(run):
    return run.history if isinstance(run, keras.callbacks.History) else run


def _arrays(data):
    if isinstance(data, tf.data.Dataset):
        xs, ys = [], []
        for x, y in data:
            xs.append(np.asarray(x))
            ys.append(np.asarray(y))
        return np.concatenate(xs), np.concatenate(ys)
    x, y = data
    return np.asarray(x), np.asarray(y)


def _mean_std(values, unit):
    if len(values) == 1:
        return f"{values[0]:.2f}{unit}" if unit else f"{values[0]:g}"
    mean, std = statistics.mean(values), statistics.stdev(values)
    return f"{mean:.2f} ± {std:.2f}{unit}" if unit else f"{mean:.1f} ± {std:.1f}"


def _count(value):
    return "—" if value is None else f"{value:,}"


def _latency(values):
    values = [v for v in values if v is not None and math.isfinite(v)]
    return f"{statistics.median(values):.3f}" if values else "—"
