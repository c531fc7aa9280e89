"""Skew reverse KL (DistiLLM, Ko et al. 2024): T² · KL(Q ‖ s·Q + (1−s)·P) at T."""

import keras

from keras_kd.losses.skew_kl import SkewKL


@keras.saving.register_keras_serializable(package="keras_kd")
class SkewReverseKL(SkewKL):
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
    skews_student = True
