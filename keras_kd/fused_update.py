"""Applying an Adam update with TensorFlow's fused kernel.

Keras 3 applies `keras.optimizers.Adam` as a chain of separate elementwise
ops per variable (update the first moment, the second moment, then the
variable), each a pass over memory. TensorFlow's `ResourceApplyAdam` kernel
(the one tf.keras 2's Adam used) computes the same formula in one pass:

    alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)
    m += (g - m) * (1 - beta_1)
    v += (g^2 - v) * (1 - beta_2)
    w -= m * alpha / (sqrt(v) + epsilon)

The one difference is rounding: the kernel forms `1 - beta` from the float32
`beta` (`1 - float32(0.999)` is 0.00099998713), Keras from the Python float
(0.001), so the second moment moves 1.3e-5 (relative) less per step with the
default `beta_2`, and the first 2.4e-7 more with `beta_1=0.9`; the bias
corrections use the float32 betas in both. On the benchmark MLP a
hand-written loop with it runs 1.18x keras.distillation by CPU time, against
1.06x with Keras's update; on the small CNN, whose student has 14k weights, it
gains nothing (`benchmarks/throughput.py`).

The Distiller uses it only where the update is otherwise Keras's own: a plain
`keras.optimizers.Adam` or `AdamW` (clipping and weight decay are applied by
the optimizer's own code first), without AMSGrad, EMA, gradient accumulation
or loss scaling, created outside any `tf.distribute` strategy, on float32
variables without constraints, with dense gradients and no strategy in scope.
Anything else goes through `optimizer.apply`. `tests/test_fused_update.py`
checks the fused path against a numpy Adam and against Keras's `apply`.
"""

import numbers

import keras
import tensorflow as tf
from keras import ops

_FUSED_OPTIMIZERS = (keras.optimizers.Adam, keras.optimizers.AdamW)
# Private Keras members the fused path reads; without them, Keras's path.
_KERAS_MEMBERS = (
    "_check_variables_are_known",
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
    # Variables made under a strategy are updated through it (all copies),
    # even when the update runs outside its scope.
    strategy = getattr(optimizer, "_distribution_strategy", None)
    if strategy is not tf.distribute.get_strategy():
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
        resource = _tf_variable(variable)
        if not isinstance(resource, tf.Variable) or isinstance(
            resource, tf.distribute.DistributedValues
        ):
            return False
    return True


def apply_gradients(optimizer, gradients, variables):
    """Applies `gradients` to `variables`, as `optimizer.apply` does.

    Uses one fused `ResourceApplyAdam` kernel per variable when
    `fused_update_applies(...)`, else `optimizer.apply`. Either way
    `iterations` and the optimizer's variables end as Keras leaves them, up
    to the rounding of `1 - beta` described in the module docstring.

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
    optimizer._check_variables_are_known(variables)
    gradients = optimizer._clip_gradients(list(gradients))
    optimizer._apply_weight_decay(variables)
    # The same scalars as Keras's `Adam.update_step`, in float32.
    learning_rate = ops.cast(optimizer.learning_rate, "float32")
    step = ops.cast(optimizer.iterations + 1, "float32")
    beta_1 = ops.cast(optimizer.beta_1, "float32")
    beta_2 = ops.cast(optimizer.beta_2, "float32")
    epsilon = ops.cast(optimizer.epsilon, "float32")
    beta_1_power, beta_2_power = ops.power(beta_1, step), ops.power(beta_2, step)
    for gradient, variable in zip(gradients, variables):
        index = optimizer._get_variable_index(variable)
        tf.raw_ops.ResourceApplyAdam(
            var=_tf_variable(variable).handle,
            m=_tf_variable(optimizer._momentums[index]).handle,
            v=_tf_variable(optimizer._velocities[index]).handle,
            beta1_power=beta_1_power,
            beta2_power=beta_2_power,
            lr=learning_rate,
            beta1=beta_1,
            beta2=beta_2,
            epsilon=epsilon,
            grad=gradient,
        )
    optimizer.iterations.assign_add(1)


def _tf_variable(variable):
    """The TensorFlow variable holding a Keras (or TensorFlow) variable."""
    return variable.value if isinstance(variable, keras.Variable) else variable
