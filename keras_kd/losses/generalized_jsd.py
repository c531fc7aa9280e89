"""Generalized Jensen-Shannon divergence (GKD, Agarwal et al. 2024)."""

import math

import keras
from keras import ops

from keras_kd._internal import checks
from keras_kd.losses.base import DistillationTerm
from keras_kd.losses.softening import softened_log_probabilities
from keras_kd.losses.softening import weighted_log_sum


def check_fraction(value, argument, include_one=True):
    """Returns `value` as a float in [0, 1] (or [0, 1)), else Keras's ValueError."""
    number = checks.as_float(value, argument)
    upper_ok = number <= 1.0 if include_one else number < 1.0
    if not (number >= 0.0 and upper_ok):
        interval = "[0, 1]" if include_one else "[0, 1)"
        raise ValueError(
            f"Argument `{argument}` must be in {interval}. "
            f"Received: {argument}={value!r}"
        )
    return number


def log_mixture(log_a, log_b, weight):
    """Returns `log(weight · a + (1 − weight) · b)`, stably, in float32.

    A log-sum-exp of `log(weight) + log_a` and `log(1 − weight) + log_b`.
    At `weight = 0` it is exactly `log_b`, at `weight = 1` exactly `log_a`;
    where both `a` and `b` are 0 (a class masked in both) it is `-inf`. No
    `log(0)` or `0 / 0` is met in the value or in the gradient.

    Args:
        log_a: Float32 log-probabilities `(..., classes)` (may hold `-inf`).
        log_b: The same shape.
        weight: Scalar in [0, 1], the mixture weight of `a`. No gradient flows
            to it.

    Returns:
        A float32 tensor with the shape of `log_a`.
    """
    weight = ops.stop_gradient(ops.cast(weight, "float32"))
    with_a = log_a + ops.log(weight)
    with_b = log_b + ops.log(1.0 - weight)
    # The shift does not change the value, so it carries no gradient.
    shift = ops.stop_gradient(ops.maximum(with_a, with_b))
    empty = ops.logical_not(ops.isfinite(shift))  # Both terms are -inf.
    shift = ops.where(empty, ops.zeros_like(shift), shift)
    total = ops.exp(with_a - shift) + ops.exp(with_b - shift)
    total = ops.where(empty, ops.ones_like(total), total)
    return ops.where(
        empty, ops.full_like(total, -math.inf), ops.log(total) + shift
    )


@keras.saving.register_keras_serializable(package="keras_kd")
class GeneralizedJSD(DistillationTerm):
    """Generalized Jensen-Shannon divergence with a live `beta`, per position.

    With `P` the teacher's and `Q` the student's temperature-softened
    distributions and the mixture `M = β · P + (1 − β) · Q`:

    `T² · (β · KL(P ‖ M) + (1 − β) · KL(Q ‖ M))`,

    as TRL's `GKDTrainer` (`generalized_jsd_loss`) defines it, from GKD
    (Agarwal et al. 2024, on-policy distillation of language models). `β`
    interpolates between the mode-covering forward KL and the mode-seeking
    reverse KL: the formula is 0 at both ends, so, as in TRL, `β = 0` means
    the forward `KL(P ‖ Q)` (`KLDivergence`) and `β = 1` the reverse
    `KL(Q ‖ P)` (`ReverseKL`), while `JSD / β → KL(P ‖ Q)` as `β → 0` and
    `JSD / (1 − β) → KL(Q ‖ P)` as `β → 1`. At `β = 0.5` it is the ordinary
    Jensen-Shannon divergence, bounded by `T² · log 2`.

    `beta` is live: a non-trainable float32 variable read inside the compiled
    step (the ends are chosen in the graph, not by a Python `if`), so
    `term.beta = 0.9` (checked) or `term.beta.assign(0.9)` takes effect at
    the next step without retracing. `log M` is a log-sum-exp in float32: no
    `log(0)` at `β = 0` or `1`, and a class masked with `-inf` in the teacher
    contributes only the finite `(1 − β) · Q · log(1 / (1 − β))` for
    `β < 1` (the reverse KL at `β = 1` is infinite there, as the
    mathematics says).

    Args:
        beta: Float in [0, 1], the teacher's weight `β` in the mixture.
            Defaults to `0.5`.
        weight: Non-negative float, the term's live weight. Defaults to `1.0`.
        temperature: Optional positive float; `None` shares the `Distiller`'s
            temperature. Defaults to `None`.
        name: String, logged as `<name>_loss`. Defaults to `"jsd"`.
        **kwargs: Other `DistillationTerm` arguments.

    Returns:
        From `compute`: a float32 tensor, one divergence per example
        (`(batch,)`) or per sequence position (`(batch, time)`).

    Example:

    ```python
    jsd = keras_kd.losses.GeneralizedJSD(beta=0.5)
    distiller = keras_kd.Distiller(teacher, student, alpha=0.0, terms=[jsd])
    distiller.compile(optimizer="adam")
    jsd.beta = 0.9  # Checked, then read by the next step.
    ```
    """

    default_name = "jsd"

    def __init__(self, beta=0.5, weight=1.0, temperature=None, **kwargs):
        super().__init__(weight=weight, temperature=temperature, **kwargs)
        self._beta = self._live_weight("beta", check_fraction(beta, "beta"))

    @property
    def beta(self):
        """The live `β`: a non-trainable float32 `keras.Variable`.

        Assigning a number (`term.beta = 0.9`) checks it is in [0, 1] first.
        """
        return self._beta

    @beta.setter
    def beta(self, value):
        self._beta.assign(check_fraction(value, "beta"))

    def own_live_values(self):
        """This term's live values besides `weight` and `temperature`.

        Returns:
            A dict `{"beta": (variable, check)}`, `check(value, name)`
            returning the value as a float or raising `ValueError`.
        """
        return {"beta": (self._beta, _check_beta)}

    def compute(self, teacher_outputs, student_outputs, labels, temperature):
        teacher_log_probs = softened_log_probabilities(teacher_outputs, temperature)
        student_log_probs = softened_log_probabilities(student_outputs, temperature)
        beta = ops.stop_gradient(ops.cast(self._beta, "float32"))
        log_mixture_probs = log_mixture(teacher_log_probs, student_log_probs, beta)
        teacher_part = weighted_log_sum(
            ops.exp(teacher_log_probs), teacher_log_probs - log_mixture_probs
        )
        student_part = weighted_log_sum(
            ops.exp(student_log_probs), student_log_probs - log_mixture_probs
        )
        # At β = 0 the mixture is Q: KL(P ‖ M) is the forward KL and
        # KL(Q ‖ M) is exactly 0; at β = 1 the reverse. The weights of the two
        # parts become (1, 0) and (0, 1) there, chosen in the graph.
        is_zero = ops.equal(beta, 0.0)
        is_one = ops.equal(beta, 1.0)
        teacher_weight = ops.where(is_zero, 1.0, ops.where(is_one, 0.0, beta))
        student_weight = ops.where(is_one, 1.0, ops.where(is_zero, 0.0, 1.0 - beta))
        divergence = teacher_weight * teacher_part + student_weight * student_part
        return ops.square(ops.cast(temperature, "float32")) * divergence

    def get_config(self):
        config = super().get_config()
        config["beta"] = float(keras.ops.convert_to_numpy(self._beta))
        return config


def _check_beta(value, argument="beta"):
    return check_fraction(value, argument)
