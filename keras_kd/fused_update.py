"""Applying an Adam update with TensorFlow's fused kernel.

Keras 3 applies `keras.optimizers.Adam` as a chain of separate elementwise
ops per variable (update the first moment, the second moment, then the
variable), each a pass over memory. TensorFlow's `ResourceApplyAdam` kernel
computes the same formula in one pass:

    alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)
    m += (g - m) * (1 - beta_1)
    v += (g^2 - v) * (1 - beta_2)
    w -= m * alpha / (sqrt(v) + epsilon)

which is Keras's `Adam.update_step` term for term. On a 2-core CPU it made a
benchmark MLP's whole training step 16% faster (see `benchmarks/throughput.py`).

The Distiller uses it only where the result is Keras's own: a plain
`keras.optimizers.Adam` or `AdamW` (clipping and weight decay are applied by
the optimizer's own code first), without AMSGrad, EMA, gradient accumulation
or loss scaling, on float32 variables without constraints, with dense
gradients and outside `tf.distribute` strategies (whose gradient all-reduce
lives in Keras's path). Anything else goes through `optimizer.apply`.
`tests/test_fused_update.py` checks the two paths against each other and
against a numpy Adam.
"""

import numbers

import keras
import tensorflow as tf
from keras import ops

_FUSED_OPTIMIZERS = (keras.optimizers.Adam, keras.optimizers.AdamW)
# Private Keras members the fused path reads; without them, Keras's path.
_KERAS_MEMBERS = (
    "_momentums",
    "_velocities",
    "_get_variable_index",
    "_clip_gradients",
    "_apply_weight_decay",
)


def fused_update_applies(optimizer, gradients, variables):
    """Whether `apply_gradients` would use the fused kernel for this update.

    Args:
        optimizer: A built `keras.optimizers.Optimizer`.
        gradients: The list of gradients.
        variables: The variables, in the order of `gradients`.

    Returns:
        A Python bool.
    """
    if type(optimizer) not in _FUSED_OPTIMIZERS or not optimizer.built:
        return False
    if not all(hasattr(optimizer, name) for name in _KERAS_MEMBERS):
        return False
    if (
        optimizer.amsgrad
        or optimizer.use_ema
        or optimizer.gradient_accumulation_steps
        or optimizer.loss_scale_factor is not None
    ):
        return False
    hyperparameters = (optimizer.beta_1, optimizer.beta_2, optimizer.epsilon)
    if not all(isinstance(h, numbers.Real) for h in hyperparameters):
        return False
    if tf.distribute.has_strategy() or not gradients:
        return False
    for gradient, variable in zip(gradients, variables):
        if not isinstance(gradient, (tf.Tensor, tf.Variable)):
            return False  # None or tf.IndexedSlices.
        if gradient.dtype != tf.float32 or variable.dtype != "float32":
            return False
        if variable.constraint is not None:
            return False
        if getattr(variable, "overwrite_with_gradient", False):
            return False
    return True


def apply_gradients(optimizer, gradients, variables):
    """Applies `gradients` to `variables`, as `optimizer.apply` does.

    Uses one fused `ResourceApplyAdam` kernel per variable when
    `fused_update_applies(...)`, else `optimizer.apply`. Either way the
    optimizer's variables and `iterations` end as Keras leaves them.

    Args:
        optimizer: A `keras.optimizers.Optimizer`.
        gradients: The list of gradients.
        variables: The variables, in the order of `gradients`.

    Example:

    ```python
    with tf.GradientTape() as tape:
        loss = loss_fn(y, model(x, training=True))
    variables = model.trainable_variables
    apply_gradients(optimizer, tape.gradient(loss, variables), variables)
    ```
    """
    variables = list(variables)
    if not optimizer.built:
        optimizer.build(variables)
    if not fused_update_applies(optimizer, gradients, variables):
        optimizer.apply(gradients, variables)
        return
    gradients = optimizer._clip_gradients(list(gradients))
    optimizer._apply_weight_decay(variables)
    # The same scalars as Keras's `Adam.update_step`, in float32.
    learning_rate = ops.cast(optimizer.learning_rate, "float32")
    step = ops.cast(optimizer.iterations + 1, "float32")
    beta_1, beta_2 = optimizer.beta_1, optimizer.beta_2
    beta_1_power = ops.power(ops.cast(beta_1, "float32"), step)
    beta_2_power = ops.power(ops.cast(beta_2, "float32"), step)
    for gradient, variable in zip(gradients, variables):
        index = optimizer._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable),
            m=_handle(optimizer._momentums[index]),
            v=_handle(optimizer._velocities[index]),
            beta1_power=beta_1_power,
            beta2_power=beta_2_power,
            lr=learning_rate,
            beta1=ops.cast(beta_1, "float32"),
            beta2=ops.cast(beta_2, "float32"),
            epsilon=ops.cast(optimizer.epsilon, "float32"),
            grad=gradient,
        )
    optimizer.iterations.assign_add(1)


def _handle(variable):
    """The resource handle of a Keras variable's TensorFlow variable."""
    return getattr(variable, "value", variable).handle
