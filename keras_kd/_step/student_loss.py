"""The student loss on the labels: the `loss` passed to `Distiller.compile`."""

import keras
from keras import ops

from keras_kd._internal import backends
from keras_kd._step import reduction


class _LossFunction(keras.losses.Loss):
    """Gives a plain loss function Keras's reduction and sample weights."""

    def __init__(self, fn):
        super().__init__(name=getattr(fn, "__name__", "student_loss"))
        self.fn = fn

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred)


def as_loss_object(loss):
    """`loss` (object, function or name) as a `keras.losses.Loss`, or `None`.

    A function or name gets Keras's `"sum_over_batch_size"` reduction, masks
    and sample weights, as `keras.Model.compile` gives it.
    """
    if loss is None or isinstance(loss, keras.losses.Loss):
        return loss
    loss_fn = keras.losses.get(loss)
    if loss_fn is None or not callable(loss_fn):
        raise ValueError(
            "Argument `loss` must be a keras.losses.Loss, a loss function or "
            f"its name. Received: loss={loss!r}"
        )
    if isinstance(loss_fn, keras.losses.Loss):
        return loss_fn
    return _LossFunction(loss_fn)


def student_loss(loss, y, student_logits, sample_weight):
    """`loss(y, student_logits, sample_weight)` in float32, with a clear error
    when the labels do not fit the loss."""
    try:
        return ops.cast(loss(y, student_logits, sample_weight=sample_weight), "float32")
    except backends.invalid_argument_errors() as error:
        raise ValueError(
            "The labels do not fit the student loss "
            f"`{loss.name}`: labels of shape "
            f"{tuple(y.shape)} and dtype {y.dtype}, student outputs of "
            f"shape {tuple(student_logits.shape)}. Integer class ids need "
            "`SparseCategoricalCrossentropy`, one-hot labels "
            f"`CategoricalCrossentropy`. Keras said: {error}"
        ) from error


def labeled_rows_weight(loss, y, y_pred, sample_weight):
    """Metric weights: 0 for rows labeled with the loss's `ignore_class`."""
    sample_weight = reduction.per_position_weights(sample_weight, y_pred)
    ignore_class = getattr(loss, "ignore_class", None)
    if ignore_class is None or len(y.shape) == 0:
        return sample_weight
    labeled = ops.cast(
        ops.not_equal(ops.reshape(y, ops.shape(y_pred)[:-1]), ignore_class),
        "float32",
    )
    return labeled if sample_weight is None else labeled * sample_weight


# Reductions under which `loss(y, s, w_a) + loss(y_b, s, w_b)` is the loss of
# the mixed labels (each is a plain sum over the batch, or that / its size).
LINEAR_REDUCTIONS = ("sum", "sum_over_batch_size", "mean")


def check_mixable(loss):
    """Raises if mixed labels' losses cannot be split by weight under `loss`."""
    if loss is None:
        return
    if getattr(loss, "reduction", None) not in LINEAR_REDUCTIONS:
        raise ValueError(
            "With `mixing`, the student loss on a mixed image is "
            "w * loss(y) + (1 - w) * loss(y[partner]), which needs the loss "
            f"reduction to be one of {LINEAR_REDUCTIONS}. Received: "
            f"loss {loss.name!r} with reduction={getattr(loss, 'reduction', None)!r}"
        )


def _per_position(weight, like):
    """`weight` `(batch,)` broadcast to the rank of the weights `like`."""
    while len(weight.shape) < len(like.shape):
        weight = ops.expand_dims(weight, -1)
    return weight


def mixed_weights(sample_weight, mix):
    """A mixed example's weight: its two sources' weights, mixed."""
    weight = _per_position(mix.weight, sample_weight)
    partner = ops.take(sample_weight, mix.partner, axis=0)
    return weight * sample_weight + (1.0 - weight) * partner


def mixed_student_loss(loss, y, student_logits, sample_weight, mix):
    """`w * loss(y) + (1 - w) * loss(y[partner])` with the user's own loss.

    Args:
        loss: The user's `keras.losses.Loss` (any label format: sparse ids
            or one-hot), with a linear reduction (`check_mixable`).
        y: The batch's labels (of the first image of each mix).
        student_logits: The student's logits on the mixed images.
        sample_weight: Per-position sample weights, or `None`.
        mix: The batch's `keras_kd.data.Mix`.

    Returns:
        The scalar float32 loss.
    """
    weight = mix.weight if sample_weight is None else _per_position(mix.weight, sample_weight)
    own = weight if sample_weight is None else weight * sample_weight
    partner_weight = 1.0 - weight
    if sample_weight is not None:
        partner_weight = partner_weight * ops.take(sample_weight, mix.partner, axis=0)
    partner_y = ops.take(y, mix.partner, axis=0)
    return student_loss(loss, y, student_logits, own) + student_loss(
        loss, partner_y, student_logits, partner_weight
    )
