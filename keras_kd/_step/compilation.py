"""What `Distiller.compile` sets up: the user's optimizer, their student
loss, and the metrics the step reports."""

import keras

from keras_kd._internal import checks
from keras_kd._internal import teacher_precision
from keras_kd._step import nonfinite
from keras_kd._step import student_loss


def optimizer_for(student, optimizer):
    """The optimizer `compile` was given, as an object; wrapped in a
    `keras.optimizers.LossScaleOptimizer` only for a student that computes in
    float16 (and is not wrapped already)."""
    optimizer = keras.optimizers.get(optimizer)
    if checks.computes_in_float16(student) and not isinstance(
        optimizer, keras.optimizers.LossScaleOptimizer
    ):
        optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
    return optimizer


def student_loss_for(loss, mixing):
    """The student loss `compile` was given, as a `keras.losses.Loss` (or
    `None`); checked to accept mixed labels when the batches are mixed."""
    loss_object = student_loss.as_loss_object(loss)
    if mixing is not None:
        student_loss.check_mixable(loss_object)
    return loss_object


def shown_metrics(own, shown, keras_metrics):
    """The Distiller's own metrics that are `shown` first, then Keras's
    (without any of `own`, which Keras also tracks, nor Keras's own `"loss"`
    tracker: the loss means replace it)."""
    return list(shown) + [
        metric for metric in keras_metrics
        if all(metric is not m for m in own)
        and not (isinstance(metric, keras.metrics.Mean) and metric.name == "loss")
    ]


def fit_callbacks(callbacks, skipped_steps_log, teacher_precision_report):
    """The user's `fit` callbacks and the Distiller's own: a warning for each
    epoch with skipped steps, and the cheaper teacher's agreement in the logs.

    Args:
        callbacks: The callbacks given to `fit`, or `None`.
        skipped_steps_log: The log entry counting skipped steps, or `None`
            when no step is skipped.
        teacher_precision_report: The Distiller's `teacher_precision_report`.

    Returns:
        A new list of callbacks.
    """
    callbacks = list(callbacks or [])
    if skipped_steps_log is not None:
        callbacks.append(nonfinite.SkippedStepsWarning(skipped_steps_log))
    if teacher_precision_report is not None:
        callbacks.append(teacher_precision.AgreementLog(teacher_precision_report))
    return callbacks
