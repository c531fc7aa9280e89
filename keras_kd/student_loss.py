"""The student loss on the labels: the `loss` passed to `Distiller.compile`."""

import keras
import tensorflow as tf
from keras import ops

from keras_kd import reduction


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
    except (ValueError, tf.errors.InvalidArgumentError) as error:
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
