"""Skew reverse KL (DistiLLM, Ko et al. 2024): T² · KL(Q ‖ s·Q + (1−s)·P) at T."""

import keras
from keras import ops

from keras_kd.losses.base import DistillationTerm
from keras_kd.losses.generalized_jsd import check_fraction
from keras_kd.losses.generalized_jsd import log_mixture
from keras_kd.losses.softening import softened_log_probabilities
from keras_kd.losses.softening import weighted_log_sum


@keras.saving.register_keras_serializable(package="keras_kd")
class SkewReverseKL(DistillationTerm):
    """Skew reverse KL with a live `skew`: `T² · KL(Q ‖ s · Q + (1 − s) · P)`.

    With `P` the teacher's and `Q` the student's temperature-softened
    distributions, the reverse KL (`ReverseKL`) against a mixture that holds a
    fraction `s` of the student itself (DistiLLM, Ko et al. 2024). Mode-seeking
    like the reverse KL, but bounded (`≤ T² · log(1 / s)`) and finite where
    the teacher gives a class no mass, where the plain reverse KL is
    infinite. `skew = 0` is the reverse KL.

    `skew` is live: a non-trainable float32 variable read inside the compiled
    step, so `term.skew = 0.2` (checked) or `term.skew.assign(0.2)` takes
    effect at the next step without retracing. `log M` is a log-sum-exp in
    float32; a class masked with `-inf` in both models contributes 0, one
    masked in the teacher only contributes the finite `Q · log(1 / s)`.

    This is the divergence DistiLLM's `skewed_reverse_kl` computes (up to
    `T²`), except at `-inf` logits: its code zeroes every class masked in
    either model, where this term keeps what the mathematics gives.

    Args:
        skew: Float in [0, 1), the student's share `s` of the mixture.
            Defaults to `0.1`.
        weight: Non-negative float, the term's live weight. Defaults to `1.0`.
        temperature: Optional positive float; `None` shares the `Distiller`'s
            temperature. Defaults to `None`.
        name: String, logged as `<name>_loss`. Defaults to
            `"skew_reverse_kl"`.
        **kwargs: Other `DistillationTerm` arguments.

    Returns:
        From `compute`: a float32 tensor, one divergence per example
        (`(batch,)`) or per sequence position (`(batch, time)`).

    Example:

    ```python
    distiller = keras_kd.Distiller(
        teacher, student, alpha=0.0,
        terms=[keras_kd.losses.SkewReverseKL(skew=0.1)],
    )
    ```
    """

    default_name = "skew_reverse_kl"

    def __init__(self, skew=0.1, weight=1.0, temperature=None, **kwargs):
        super().__init__(weight=weight, temperature=temperature, **kwargs)
        self._skew = self._live_weight("skew", _check_skew(skew))

    @property
    def skew(self):
        """The live skew `s`: a non-trainable float32 `keras.Variable`.

        Assigning a number (`term.skew = 0.2`) checks it is in [0, 1) first.
        """
        return self._skew

    @skew.setter
    def skew(self, value):
        self._skew.assign(_check_skew(value))

    def own_live_values(self):
        """This term's live values besides `weight` and `temperature`.

        Returns:
            A dict `{"skew": (variable, check)}`, `check(value, name)`
            returning the value as a float or raising `ValueError`.
        """
        return {"skew": (self._skew, _check_skew)}

    def compute(self, teacher_outputs, student_outputs, labels, temperature):
        teacher_log_probs = softened_log_probabilities(teacher_outputs, temperature)
        student_log_probs = softened_log_probabilities(student_outputs, temperature)
        log_mixture_probs = log_mixture(student_log_probs, teacher_log_probs, self._skew)
        divergence = weighted_log_sum(
            ops.exp(student_log_probs), student_log_probs - log_mixture_probs
        )
        return ops.square(ops.cast(temperature, "float32")) * divergence

    def get_config(self):
        config = super().get_config()
        config["skew"] = float(keras.ops.convert_to_numpy(self._skew))
        return config


def _check_skew(value, argument="skew"):
    return check_fraction(value, argument, include_one=False)
