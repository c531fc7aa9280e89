"""Hinton's distillation term: T² · KL(teacher ‖ student) at temperature T."""

import keras
from keras import ops

from keras_kd.losses.base import DistillationTerm
from keras_kd.losses.softening import softened_log_probabilities
from keras_kd.losses.softening import standardize_logits
from keras_kd.losses.softening import weighted_log_sum


@keras.saving.register_keras_serializable(package="keras_kd")
class KLDivergence(DistillationTerm):
    """`T² · KL(softmax(t / T) ‖ softmax(s / T))` per example.

    The Kullback-Leibler divergence from the temperature-softened student
    distribution to the teacher's (Hinton et al., 2015). Multiplying by `T²`
    keeps the gradient's scale independent of the temperature. Computed from
    log-softmax in float32; classes masked with `-inf` logits in the teacher
    contribute exactly 0.

    With `standardize=True` (logit standardization, Sun et al. 2024) each
    example's teacher and student logits are z-scored (unbiased standard
    deviation, see `standardize_logits`) before the division by the
    temperature, so the student matches the teacher's logit *relations*
    rather than their scale; the temperature then acts as a base temperature.

    Args:
        weight: Non-negative float, the term's weight. Defaults to `1.0`.
        temperature: Optional positive float; `None` shares the `Distiller`'s
            temperature. Defaults to `None`.
        standardize: Bool, z-score the logits first. Defaults to `False`.
        name: String, logged as `<name>_loss`. Defaults to `"kl"`.
        **kwargs: Other `DistillationTerm` arguments.

    Example:

    ```python
    distiller = keras_kd.Distiller(
        teacher, student, terms=[keras_kd.losses.KLDivergence(weight=1.0)]
    )
    ```
    """

    default_name = "kl"

    def __init__(self, weight=1.0, temperature=None, standardize=False, **kwargs):
        super().__init__(weight=weight, temperature=temperature, **kwargs)
        self.standardize = bool(standardize)

    def compute(self, teacher_outputs, student_outputs, labels, temperature):
        if self.standardize:
            teacher_outputs = standardize_logits(teacher_outputs)
            student_outputs = standardize_logits(student_outputs)
        teacher_log_probs = softened_log_probabilities(
            teacher_outputs, temperature
        )
        student_log_probs = softened_log_probabilities(
            student_outputs, temperature
        )
        kl = weighted_log_sum(
            ops.exp(teacher_log_probs), teacher_log_probs - student_log_probs
        )
        return ops.square(ops.cast(temperature, "float32")) * kl

    def get_config(self):
        config = super().get_config()
        config["standardize"] = self.standardize
        return config
