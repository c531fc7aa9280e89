"""Temperature-softened distributions, computed stably in float32."""

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
    # `where` before the product: a -inf or NaN entry with p == 0 then meets
    # neither the product nor its gradient (tf.math.multiply_no_nan, in ops).
    safe = ops.where(probabilities > 0, log_values, ops.zeros_like(log_values))
    return ops.sum(probabilities * safe, axis=-1)


def standardize_logits(logits):
    """Z-scores each example's logits (logit standardization, Sun et al. 2024).

    `(z - mean(z)) / std(z)` over the finite entries of the last axis, with
    the unbiased standard deviation (divisor `n - 1`), as the paper's
    reference code (`torch.std`). Masked `-inf` entries stay `-inf`; an
    example whose finite logits are all equal gets zeros (no division by 0).

    Args:
        logits: Float tensor `(..., num_classes)`.

    Returns:
        A float32 tensor of the same shape.
    """
    logits = ops.cast(logits, "float32")
    finite = ops.isfinite(logits)
    count = ops.sum(ops.cast(finite, "float32"), axis=-1, keepdims=True)
    values = ops.where(finite, logits, ops.zeros_like(logits))
    mean = ops.sum(values, axis=-1, keepdims=True) / ops.maximum(count, 1.0)
    centred = ops.where(finite, logits - mean, ops.zeros_like(logits))
    variance = ops.sum(ops.square(centred), axis=-1, keepdims=True) / ops.maximum(
        count - 1.0, 1.0
    )
    std = ops.sqrt(variance)
    standardized = ops.where(std > 0, centred / ops.where(std > 0, std, 1.0), 0.0)
    return ops.where(finite, standardized, logits)
