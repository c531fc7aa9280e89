"""Cross-entropy against the teacher's softened distribution."""

import keras
from keras import ops

from keras_kd.losses.base import DistillationTerm
from keras_kd.losses.softening import softened_log_probabilities
from keras_kd.losses.softening import weighted_log_sum


@keras.saving.register_keras_serializable(package="keras_kd")
class SoftTargetCrossentropy(DistillationTerm):
    """`-T² · Σ softmax(t / T) · log softmax(s / T)` per example.

    The cross-entropy of the student's softened distribution against the
    teacher's soft targets. It equals the `KLDivergence` term plus the
    teacher's entropy (times `T²`), a constant for the student: the gradients
    are the same, the logged value is not 0 at a perfect match.

    Args:
        weight: Non-negative float, the term's weight. Defaults to `1.0`.
        temperature: Optional positive float; `None` shares the `Distiller`'s
            temperature. Defaults to `None`.
        name: String, logged as `<name>_loss`. Defaults to `"soft_ce"`.
        **kwargs: Other `DistillationTerm` arguments.

    Example:

    ```python
    term = keras_kd.losses.SoftTargetCrossentropy(temperature=2.0)
    distiller = keras_kd.Distiller(teacher, student, terms=[term])
    ```
    """

    default_name = "soft_ce"

    def compute(self, teacher_outputs, student_outputs, labels, temperature):
        teacher_probs = ops.exp(
            softened_log_probabilities(teacher_outputs, temperature)
        )
        student_log_probs = softened_log_probabilities(
            student_outputs, temperature
        )
        crossentropy = -weighted_log_sum(teacher_probs, student_log_probs)
        return ops.square(ops.cast(temperature, "float32")) * crossentropy
