"""Several teachers in one step: their weights, and their soft target."""

import math

from keras import ops


def resolve_teachers(teacher, teacher_weights):
    """Returns the teachers as a list and their weights, normalized to sum 1.

    Args:
        teacher: A `keras.Model`, or a list of them.
        teacher_weights: `None` (equal weights) or one non-negative float per
            teacher, not all 0.

    Returns:
        `(teachers, weights)`.
    """
    teachers = list(teacher) if isinstance(teacher, (list, tuple)) else [teacher]
    if not teachers:
        raise ValueError("Argument `teacher` must hold at least one model. Received: teacher=[]")
    if teacher_weights is None:
        weights = [1.0] * len(teachers)
    else:
        weights = [float(w) for w in teacher_weights]
        if len(weights) != len(teachers) or not all(
            math.isfinite(w) and w >= 0 for w in weights
        ) or sum(weights) <= 0:
            raise ValueError(
                "Argument `teacher_weights` must hold one finite weight >= 0 "
                f"per teacher ({len(teachers)}), not all 0. Received: "
                f"teacher_weights={teacher_weights!r}"
            )
    total = sum(weights)
    return teachers, [w / total for w in weights]


def mixture_logits(teacher_logits, weights, temperature):
    """Logits whose softened distribution is the teachers' weighted mixture.

    The soft target of several teachers is `p = Σ_k w_k · softmax(t_k / T)`
    (a mixture of probabilities, not of logits). This returns `T · log p`:
    softened at the same `T` by any logit term, it gives back exactly `p`,
    so every term works unchanged. Computed with a log-sum-exp in float32;
    classes all teachers mask with `-inf` stay masked.

    Args:
        teacher_logits: List of `(batch, classes)` tensors, one per teacher.
        weights: List of floats summing to 1.
        temperature: Scalar, the temperature of the term that will use them.

    Returns:
        A float32 tensor `(batch, classes)`.
    """
    temperature = ops.cast(temperature, "float32")
    log_mixture = ops.logsumexp(
        ops.stack(
            [
                math.log(weight)
                + ops.log_softmax(ops.cast(logits, "float32") / temperature, axis=-1)
                for logits, weight in zip(teacher_logits, weights)
                if weight > 0
            ]
        ),
        axis=0,
    )
    return temperature * log_mixture
