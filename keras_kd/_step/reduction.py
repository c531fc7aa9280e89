"""Reducing a term's values to its loss, with Keras's own loss reduction.

A term returns one value per example, or per position for sequence outputs
`(batch, time, classes)`. These helpers only give the sample weights the
shape of those values; the reduction itself (mask, sample weights,
`"sum_over_batch_size"`, distribution scaling) is the one
`keras.losses.Loss` applies.
"""

from keras import ops

from keras_kd._internal import keras_internals as internals


def reduce_term(values, sample_weight=None, mask=None):
    """A term's loss from its per-example (or per-position) values.

    Args:
        values: Float tensor `(batch,)`, or `(batch, time)` for sequences.
        sample_weight: `None`, or weights from `per_position_weights`.
        mask: `None`, or the student logits' Keras mask `(batch, time)`.

    Returns:
        A scalar float32 tensor: the weighted mean over the valid positions,
        as `keras.losses.Loss` computes it (under `tf.distribute`, this
        replica's share of the global mean).
    """
    values = ops.cast(values, "float32")
    positions = sample_weight if sample_weight is not None else mask
    if positions is not None and len(values.shape) < len(positions.shape):
        # One value per example from a sequence model (e.g. a feature hint).
        sample_weight, mask = per_example_weights(sample_weight, mask), None
    if mask is not None:
        # Keras weighs masked positions by 0, and 0 · NaN is NaN: a value that
        # is not finite at a padded position must count for nothing.
        values = ops.where(ops.cast(mask, "bool"), values, ops.zeros_like(values))
    return internals.reduce_weighted_values(values, sample_weight, mask)


def per_position_weights(sample_weight, logits):
    """Sample weights as float32, one per example or per sequence position.

    `(batch,)` or `(batch, 1)` weights of `(batch, classes)` logits become
    `(batch,)`; `(batch, time)` weights of `(batch, time, classes)` logits
    stay; `(batch,)` or `(batch, 1)` weights of sequence logits weigh every
    position of the example. Needs no static rank of the weights.
    """
    if sample_weight is None:
        return None
    sample_weight = ops.cast(sample_weight, "float32")
    positions = ops.shape(logits)[:-1]
    per_example = ops.reshape(sample_weight, (positions[0], -1))
    if len(logits.shape) == 2:
        return ops.reshape(per_example, positions)
    size = 1
    for axis in positions[1:]:
        size = size * axis
    return ops.reshape(
        ops.broadcast_to(per_example, (positions[0], size)), positions
    )


def per_example_weights(sample_weight, mask):
    """One weight per example: the mean of its weights over valid positions."""
    valid = ops.ones_like(sample_weight) if mask is None else ops.cast(mask, "float32")
    if sample_weight is None:
        sample_weight = ops.ones_like(valid)
    valid = ops.reshape(valid, ops.shape(sample_weight))
    axes = tuple(range(1, len(sample_weight.shape)))
    return ops.divide_no_nan(
        ops.sum(sample_weight * valid, axis=axes), ops.sum(valid, axis=axes)
    )
