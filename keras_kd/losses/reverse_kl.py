"""Reverse KL (MiniLLM, Gu et al. 2024): T² · KL(student ‖ teacher) at T."""

import keras
from keras import ops

from keras_kd.losses.base import DistillationTerm
from keras_kd.losses.softening import softened_log_probabilities
from keras_kd.losses.softening import weighted_log_sum


@keras.saving.register_keras_serializable(package="keras_kd")
class ReverseKL(DistillationTerm):
    """`T² · KL(softmax(s / T) ‖ softmax(t / T))` per example or per position.

    The reverse Kullback-Leibler divergence: the student's distribution `Q`
    against the teacher's `P`, `Σ Q · (log Q − log P)` over the last axis.
    Where the forward KL (`KLDivergence`) makes the student cover every mode
    of the teacher, the reverse KL is *mode-seeking*: the student is penalised
    for mass where the teacher has little, and may drop teacher modes it
    cannot represent. MiniLLM (Gu et al. 2024) distils language models with
    it, since a small student that spreads mass over the teacher's long tail
    generates text the teacher finds unlikely.

    Multiplied by `T²` like `KLDivergence`, so the gradient keeps its scale
    when the temperature is annealed. Computed from log-softmax in float32.
    A class masked with a `-inf` logit in both models contributes 0; a class
    the teacher masks (`P = 0`) but the student gives mass makes the reverse
    KL infinite, as the mathematics says (use `SkewReverseKL`, which stays
    finite there).

    Args:
        weight: Non-negative float, the term's live weight. Defaults to `1.0`.
        temperature: Optional positive float; `None` shares the `Distiller`'s
            temperature. Defaults to `None`.
        name: String, logged as `<name>_loss`. Defaults to `"reverse_kl"`.
        **kwargs: Other `DistillationTerm` arguments.

    Returns:
        From `compute`: a float32 tensor, one divergence per example
        (`(batch,)`) or per sequence position (`(batch, time)`).

    Example:

    ```python
    distiller = keras_kd.Distiller(
        teacher, student, alpha=0.0, terms=[keras_kd.losses.ReverseKL()]
    )
    ```
    """

    default_name = "reverse_kl"

    def compute(self, teacher_outputs, student_outputs, labels, temperature):
        teacher_log_probs = softened_log_probabilities(teacher_outputs, temperature)
        student_log_probs = softened_log_probabilities(student_outputs, temperature)
        reverse = weighted_log_sum(
            ops.exp(student_log_probs), student_log_probs - teacher_log_probs
        )
        return ops.square(ops.cast(temperature, "float32")) * reverse
