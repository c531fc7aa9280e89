"""What the main job prints and writes: its table, its verdict, `results.md`,
and the selection's lines and table."""

import os
import statistics

import numpy as np

from keras_kd._internal import files
from keras_kd.demo.settings import DISTILLED
from keras_kd.demo.settings import MAX_LATENCY_MS
from keras_kd.demo.settings import MAX_PARAMETERS

SELECTION_HEADER = (
    "| method | learning rate | augmentation | views | teachers | T | alpha | validation accuracy |\n"
    "|---|---|---|---|---|---|---|---|"
)


def mean_se(values):
    """`(mean, standard error)` of `values` (the error is NaN for one value)."""
    mean = statistics.mean(values)
    se = statistics.stdev(values) / len(values) ** 0.5 if len(values) > 1 else float("nan")
    return mean, se


def _row(name, validation, test, measured):
    """A line of the table; `measured` is an `evaluate_models` entry (its
    parameters, bytes and LiteRT latency)."""
    return (f"| {name} | {validation} | {test} | {measured.parameters:,} | {measured.bytes:,} "
            f"| {measured.latency_ms:.3f} |")


def table(methods, val_accuracy, test_correct, teacher_correct, evaluated, baseline, seeds):
    """The job's Markdown table: the teacher, each trained student (mean ±
    s.e. over the seeds) and the int8 student.

    Args:
        methods: The trained students' names, in the table's order.
        val_accuracy: `{method: [validation accuracy of each seed]}`.
        test_correct: `{method: [bool array per seed, one per test image]}`.
        teacher_correct: The teacher's bool array on the test images.
        evaluated: `evaluate_models`'s report (teacher, distilled student,
            int8 TFLite).
        baseline: The scratch student's method (marked in its row).
        seeds: The seeds each student was trained with.

    Returns:
        The table, a string of lines.
    """
    lines = [
        f"| model | validation accuracy | test accuracy (mean ± s.e., {seeds} seeds) | parameters "
        "| .tflite bytes | LiteRT ms/image |",
        "|---|---|---|---|---|---|",
        _row("teacher", "—", f"{100 * float(np.mean(teacher_correct)):.2f}%", evaluated["teacher"]),
    ]
    for method in methods:
        mean, se = mean_se([100 * float(np.mean(c)) for c in test_correct[method]])
        val_mean, _ = mean_se([100 * v for v in val_accuracy[method]])
        marker = " (the better scratch student on validation, in the selection)" if method == baseline else ""
        lines.append(_row(f"student: {method}{marker}", f"{val_mean:.2f}%", f"{mean:.2f} ± {se:.2f}%",
                          evaluated["distilled student"]))
    int8 = evaluated["distilled student, int8 TFLite"]
    lines.append(_row("student: distilled, int8 TFLite (seed 0)", "—", f"{100 * int8.accuracy:.2f}%", int8))
    return "\n".join(lines)


def verdict(comparison, test_correct, baseline, int8_accuracy, latency, parameters, seeds):
    """The job's verdict: whether distillation beat the scratch student
    (by at least 1 point, and significantly), with the numbers that say so.

    Args:
        comparison: `mcnemar_test(scratch, distilled)` on the test images.
        test_correct: `{method: [bool array per seed]}`.
        baseline: The scratch student's method.
        int8_accuracy: The int8 TFLite student's test accuracy.
        latency: The distilled student's LiteRT ms per image.
        parameters: The student's parameters.
        seeds: The seeds each student was trained with.

    Returns:
        The verdict, a string starting with a new line.
    """
    gains = [100 * (float(np.mean(d)) - float(np.mean(b)))
             for d, b in zip(test_correct[DISTILLED], test_correct[baseline])]
    gain, se = mean_se(gains)
    int8_gap = 100 * (int8_accuracy - float(np.mean(test_correct[DISTILLED][0])))
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


def keras_distillation_verdict(peer):
    """The verdict's line on keras_kd vs keras.distillation, from
    `mcnemar_test(keras.distillation's student, keras_kd's)`."""
    return (f"\nkeras_kd vs keras.distillation (same student, T, label weight, optimizer, "
            f"epochs): {peer.gain:+.2f} points, exact paired test over the {peer.examples} test "
            f"images p = {peer.p_value:.2g}.")


def show(table_text, verdict_text, written, output, examples, elapsed):
    """Prints the results: the table, the verdict, and what was written.

    Args:
        table_text: `table(...)`.
        verdict_text: `verdict(...)` (and its keras.distillation line).
        written: The paths of the .tflite file and the plot.
        output: The output folder.
        examples: The test images.
        elapsed: The job's seconds.
    """
    tflite_path, plot = written
    print(f"\n== Results on the {examples} test images\n")
    print(table_text)
    print(verdict_text)
    print(f"\nWrote {os.path.basename(tflite_path)}, {os.path.basename(plot)} and results.md into "
          f"{os.path.abspath(output)} ({elapsed:.0f} s in all).")


def write_results(output, table_text, verdict_text):
    """Writes `results.md` into `output`, whole or not at all (a failed write
    leaves the previous file)."""
    with files.atomic_write(os.path.join(output, "results.md"), suffix=".md") as temporary:
        with open(temporary, "w") as f:
            f.write(table_text + "\n" + verdict_text + "\n")


def selection_line(method, scores, shown):
    """The selection's line for one setting: its method, what it set
    (`shown`, `{name: value}`), and its mean validation accuracy."""
    return (f"{method:26s} " + " ".join(f"{k} {v}" for k, v in shown.items())
            + f": {100 * statistics.mean(scores):.2f}%")


def _selection_row(row):
    """One line of the selection's table; the distilled student's own
    columns read `—` for the scratch one."""
    s = row["setting"]
    if row["method"] == DISTILLED:
        cells = (s.learning_rate, row["augmentation"], s.views, row["teachers"], s.temperature, s.alpha)
    else:
        cells = (s.scratch_learning_rate, row["augmentation"], "—", "—", "—", "—")
    accuracy = f"{100 * statistics.mean(row['val_accuracy']):.2f}%"
    return "| " + " | ".join(str(cell) for cell in (row["method"], *cells, accuracy)) + " |"


def selection_table(rows, examples, seeds, epochs):
    """The selection's table, `rows` in their order, under a line saying
    what was scored (`examples` validation images, `seeds`, `epochs`)."""
    lines = [
        f"\nValidation accuracy ({examples} images), mean over {seeds} seeds, "
        f"{epochs} epochs; the test split is not read:",
        SELECTION_HEADER,
        *map(_selection_row, rows),
    ]
    return "\n".join(lines)
