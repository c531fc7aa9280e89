"""Decoupled knowledge distillation (DKD, Zhao et al. 2022)."""

import keras
from keras import ops

from keras_kd.losses.base import DistillationTerm
from keras_kd.losses.softening import standardize_logits
from keras_kd.losses.softening import weighted_log_sum


@keras.saving.register_keras_serializable(package="keras_kd")
class DecoupledKD(DistillationTerm):
    """DKD: target-class and non-target-class KL, weighted apart, per example.

    Zhao et al. (2022) split Hinton's KL at temperature `T` into

    - **TCKD**: the KL between the binary distributions (target class, all
      other classes) of teacher and student, and
    - **NCKD**: the KL between the teacher's and the student's distributions
      over the non-target classes only (renormalized among themselves),

    and weight them apart: `T² · (target_weight · TCKD + non_target_weight ·
    NCKD)`, with `α = 1`, `β = 8` at `T = 4` in the paper's CIFAR-100 runs.
    The paper also warms the DKD term up linearly over its first 20 of 240
    epochs; with keras_kd that is a schedule of the term's live weight, in
    fractions of the run:

    ```python
    warm_up = keras_kd.callbacks.LiveValueScheduler(schedules={
        "dkd_weight": keras_kd.schedules.Linear(0.0, 1.0, duration=20 / 240,
                                                fractions=True)})
    ```

    The target class is masked **exactly**: its logit is replaced by `-inf`
    for NCKD, in float32 (the reference code subtracts 1000 from it, which is
    not a mask in float16, where logits near 1000 are common after scaling,
    and is not exact in float32 for logits beyond ~1e3 either). Both
    probabilities of the binary split come from log-sum-exps, so nothing
    underflows to `log(0)`.

    It needs the labels: integer class ids `(batch,)` or one-hot
    `(batch, classes)`. Rows whose id is outside `[0, classes)` (e.g. `-1`,
    unlabeled rows with `ignore_class=-1`) contribute 0.

    Args:
        target_weight: Non-negative float `α`, the weight of TCKD. Defaults
            to `1.0`.
        non_target_weight: Non-negative float `β`, the weight of NCKD.
            Defaults to `8.0`.
        standardize: Bool, z-score the logits first (logit standardization,
            Sun et al. 2024; see `KLDivergence`). Defaults to `False`.
        weight: Non-negative float, the term's live weight (warm it up with a
            schedule). Defaults to `1.0`.
        temperature: Optional positive float; `None` shares the `Distiller`'s.
            Defaults to `None`.
        name: String, logged as `<name>_loss`. Defaults to `"dkd"`.
        **kwargs: Other `DistillationTerm` arguments.

    Example:

    ```python
    distiller = keras_kd.Distiller(
        teacher, student, temperature=4.0, alpha=0.5,
        terms=[keras_kd.losses.DecoupledKD(target_weight=1.0, non_target_weight=8.0)],
    )
    ```
    """

    default_name = "dkd"

    def __init__(
        self,
        target_weight=1.0,
        non_target_weight=8.0,
        standardize=False,
        weight=1.0,
        temperature=None,
        **kwargs,
    ):
        super().__init__(weight=weight, temperature=temperature, **kwargs)
        for name, value in (
            ("target_weight", target_weight),
            ("non_target_weight", non_target_weight),
        ):
            if not float(value) >= 0:
                raise ValueError(
                    f"Argument `{name}` must be >= 0. Received: {name}={value}"
                )
        self.target_weight = float(target_weight)
        self.non_target_weight = float(non_target_weight)
        self.standardize = bool(standardize)

    def compute(self, teacher_outputs, student_outputs, labels, temperature):
        if labels is None:
            raise ValueError(
                "DecoupledKD needs the labels (it splits the target class from "
                "the others), but the data carries none. Use KLDivergence for "
                "unlabeled data."
            )
        teacher = ops.cast(teacher_outputs, "float32")
        student = ops.cast(student_outputs, "float32")
        if self.standardize:
            teacher = standardize_logits(teacher)
            student = standardize_logits(student)
        temperature = ops.cast(temperature, "float32")
        num_classes = teacher.shape[-1]
        target, valid = _target_mask(labels, num_classes)
        teacher = teacher / temperature
        student = student / temperature

        teacher_binary = _binary_log_probabilities(teacher, target)
        student_binary = _binary_log_probabilities(student, target)
        tckd = weighted_log_sum(
            ops.exp(teacher_binary), teacher_binary - student_binary
        )

        minus_inf = ops.full_like(teacher, float("-inf"))
        teacher_others = ops.log_softmax(ops.where(target, minus_inf, teacher), axis=-1)
        student_others = ops.log_softmax(ops.where(target, minus_inf, student), axis=-1)
        nckd = weighted_log_sum(
            ops.exp(teacher_others), teacher_others - student_others
        )
        loss = ops.square(temperature) * (
            self.target_weight * tckd + self.non_target_weight * nckd
        )
        return ops.where(valid, loss, ops.zeros_like(loss))

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "target_weight": self.target_weight,
                "non_target_weight": self.non_target_weight,
                "standardize": self.standardize,
            }
        )
        return config


def _target_mask(labels, num_classes):
    """Boolean one-hot of the target class, and whether each row has one."""
    labels = ops.convert_to_tensor(labels)
    if len(labels.shape) >= 2 and labels.shape[-1] == num_classes:
        ids = ops.argmax(labels, axis=-1)
        valid = ops.max(labels, axis=-1) > 0
    else:
        ids = ops.reshape(ops.cast(labels, "int32"), (-1,))
        valid = ops.logical_and(ids >= 0, ids < num_classes)
    ids = ops.where(valid, ids, ops.zeros_like(ids))
    target = ops.equal(
        ops.expand_dims(ops.cast(ids, "int32"), -1),
        ops.arange(num_classes, dtype="int32"),
    )
    return target, valid


def _binary_log_probabilities(scaled_logits, target):
    """`[log p(target), log p(not target)]` from log-sum-exps, shape (batch, 2)."""
    minus_inf = ops.full_like(scaled_logits, float("-inf"))
    everything = ops.logsumexp(scaled_logits, axis=-1)
    target_logit = ops.sum(ops.where(target, scaled_logits, 0.0), axis=-1)
    others = ops.logsumexp(ops.where(target, minus_inf, scaled_logits), axis=-1)
    return ops.stack([target_logit - everything, others - everything], axis=-1)
