"""Temperature-softened distributions, computed stably in float32."""

import tensorflow as tf
from keras import ops


def softened_log_probabilities(logits, temperature):
    """Returns `log_softmax(logits / temperature)` in float32.

    Computed from log-softmax (never `log(softmax(...))`), so logits of
    magnitude 1e4 stay finite and a `-inf` logit (a masked class) gives a
    `-inf` log-probability and a probability of exactly 0.

    Args:
        logits: Float tensor of shape `(batch_size, num_classes)`, any float
            dtype.
        temperature: Positive scalar.

    Returns:
        A float32 tensor with the shape of `logits`.
    """
    logits = ops.cast(logits, "float32")
    temperature = ops.cast(temperature, "float32")
    return ops.log_softmax(logits / temperature, axis=-1)


def weighted_log_sum(probabilities, log_values):
    """Returns `sum(p * log_values)` over the last axis with `0 * x = 0`.

    Entries where `p == 0` contribute exactly 0 even where `log_values` is
    `-inf` or NaN (masked classes), in the value and in the gradient.
    """
    return ops.sum(tf.math.multiply_no_nan(log_values, probabilities), axis=-1)
