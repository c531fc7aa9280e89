"""Skew KL (DistiLLM, Ko et al. 2024): T² · KL(P ‖ s·P + (1−s)·Q) at T."""

import keras
from keras import ops

from keras_kd.losses.base import DistillationTerm
from keras_kd.losses.generalized_jsd import check_fraction
from keras_kd.losses.generalized_jsd import log_mixture
from keras_kd.losses.softening import softened_log_probabilities
from keras_kd.losses.softening import weighted_log_sum


@keras.saving.register_keras_serializable(package="keras_kd")
class SkewKL(DistillationTerm):
    """Skew KL with a live `skew`: `T² · KL(P ‖ s · P + (1 − s) · Q)`.

    With `P` the teacher's and `Q` the student's temperature-softened
    distributions, the forward KL against a mixture that holds a fraction
    `s` of the teacher itself (DistiLLM, Ko et al. 2024). The mixture never
    vanishes where `P` has mass, so the divergence stays bounded
    (`≤ T² · log(1 / s)`) and its gradient stays small where the student is
    far from the teacher, which the paper finds more stable to optimise
    than the plain KL. `skew = 0` is the forward KL (`KLDivergence`).

    `skew` is live: a non-trainable float32 variable read inside the compiled
    step, so `term.skew = 0.2` (checked) or `term.skew.assign(0.2)` takes
    effect at the next step without retracing. `log M` is a log-sum-exp in
    float32 (no `log(0)` at `skew = 0`); classes the teacher masks with
    `-inf` logits contribute 0.

    keras_kd returns the divergence itself: DistiLLM's `skewed_forward_kl`
    returns the cross-entropy `−Σ P · log M`, which differs from this by the
    teacher's entropy (a constant for the student, so the gradients agree,
    but it is not 0 at a perfect match).

    Args:
        skew: Float in [0, 1), the teacher's share `s` of the mixture.
            Defaults to `0.1`.
        weight: Non-negative float, the term's live weight. Defaults to `1.0`.
        temperature: Optional positive float; `None` shares the `Distiller`'s
            temperature. Defaults to `None`.
        name: String, logged as `<name>_loss`. Defaults to `"skew_kl"`.
        **kwargs: Other `DistillationTerm` arguments.

    Returns:
        From `compute`: a float32 tensor, one divergence per example
        (`(batch,)`) or per sequence position (`(batch, time)`).

    Example:

    ```python
    distiller = keras_kd.Distiller(
        teacher, student, alpha=0.0, terms=[keras_kd.losses.SkewKL(skew=0.1)]
    )
    ```
    """

    default_name = "skew_kl"

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

    # Which distribution is skewed against: the teacher's `P` here; the
    # student's `Q` in `SkewReverseKL`, which only flips this.
    skews_student = False

    def compute(self, teacher_outputs, student_outputs, labels, temperature):
        teacher_log_probs = softened_log_probabilities(teacher_outputs, temperature)
        student_log_probs = softened_log_probabilities(student_outputs, temperature)
        log_p, log_other = teacher_log_probs, student_log_probs
        if self.skews_student:
            log_p, log_other = student_log_probs, teacher_log_probs
        log_mixture_probs = log_mixture(log_p, log_other, self._skew)
        divergence = weighted_log_sum(ops.exp(log_p), log_p - log_mixture_probs)
        return ops.square(ops.cast(temperature, "float32")) * divergence

    def get_config(self):
        config = super().get_config()
        config["skew"] = float(keras.ops.convert_to_numpy(self._skew))
        return config


def _check_skew(value, argument="skew"):
    return check_fraction(value, argument, include_one=False)
