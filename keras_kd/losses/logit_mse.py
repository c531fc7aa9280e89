"""Logit matching: mean squared difference of raw logits."""

import keras
from keras import ops

from keras_kd.losses.base import DistillationTerm


@keras.saving.register_keras_serializable(package="keras_kd")
class LogitMSE(DistillationTerm):
    """Mean over classes of `(t - s)²`, on raw logits, per example.

    Logit matching (Ba & Caruana, 2014), the high-temperature limit of
    Hinton's loss. It ignores the temperature. Classes that are masked
    (non-finite logits) in the teacher or the student are left out of the
    mean.

    Args:
        weight: Non-negative float, the term's weight. Defaults to `1.0`.
        name: String, logged as `<name>_loss`. Defaults to `"logit_mse"`.
        **kwargs: Other `DistillationTerm` arguments.

    Example:

    ```python
    distiller = keras_kd.Distiller(
        teacher, student, terms=[keras_kd.losses.LogitMSE()]
    )
    ```
    """

    default_name = "logit_mse"

    def compute(self, teacher_outputs, student_outputs, labels, temperature):
        teacher_outputs = ops.cast(teacher_outputs, "float32")
        student_outputs = ops.cast(student_outputs, "float32")
        finite = ops.logical_and(
            ops.isfinite(teacher_outputs), ops.isfinite(student_outputs)
        )
        zeros = ops.zeros_like(teacher_outputs)
        difference = ops.where(finite, teacher_outputs, zeros) - ops.where(
            finite, student_outputs, zeros
        )
        count = ops.sum(ops.cast(finite, "float32"), axis=-1)
        return ops.sum(ops.square(difference), axis=-1) / ops.maximum(count, 1.0)
