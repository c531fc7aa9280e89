"""Optimizers a user may choose: `FusedAdam`, Keras's Adam with TensorFlow's fused kernel."""

import keras
from keras import ops

from keras_kd._internal.backends import tf
from keras_kd._internal import keras_internals as internals

__all__ = [
    "FusedAdam",
]


@keras.saving.register_keras_serializable(package="keras_kd")
class FusedAdam(keras.optimizers.Adam):
    """Keras's Adam, each variable updated by TensorFlow's fused Adam kernel.

    Keras 3 applies Adam as a chain of elementwise ops per variable (first
    moment, second moment, then the variable: a pass over memory each).
    `FusedAdam` overrides only `update_step`, the method Keras's optimizers
    call per variable, with TensorFlow's `ResourceApplyAdam` kernel (the one
    tf.keras 2's Adam used), which computes the same formula in one pass:

    ```
    alpha = lr * sqrt(1 - beta_2^t) / (1 - beta_1^t)
    m += (g - m) * (1 - beta_1)
    v += (g^2 - v) * (1 - beta_2)
    w -= m * alpha / (sqrt(v) + epsilon)
    ```

    Everything around the update is Keras's Adam, unchanged: learning-rate
    schedules, `clipnorm` / `clipvalue` / `global_clipnorm`, `weight_decay`,
    `use_ema`, `gradient_accumulation_steps`, loss scaling and constraints.

    The one difference is rounding: the kernel forms `1 - beta` from the
    float32 `beta` (`1 - float32(0.999)` = 0.00099998713), Keras from the
    Python float (0.001), so the second moment moves 1.3e-5 (relative) less
    per step with the default `beta_2`, and the first 2.4e-7 more with
    `beta_1=0.9`; the bias corrections use float32 betas in both
    (`tests/test_optimizers.py` measures both to their size).

    Where the kernel does not apply, `update_step` is Keras's Adam's: AMSGrad,
    non-float32 variables, sparse gradients (`tf.IndexedSlices`), betas or
    epsilon that are not plain numbers, and any `tf.distribute` strategy.
    Only the TensorFlow backend has the kernel.

    Args:
        learning_rate: Float or `keras.optimizers.schedules` schedule.
            Defaults to `0.001`.
        **kwargs: Every other `keras.optimizers.Adam` argument (`beta_1`,
            `beta_2`, `epsilon`, `amsgrad`, `weight_decay`, `clipnorm`,
            `use_ema`, `gradient_accumulation_steps`, ...), with Keras's
            defaults.

    Example:

    ```python
    model.compile(optimizer=keras_kd.optimizers.FusedAdam(1e-3), loss=...)
    distiller.compile(optimizer=keras_kd.optimizers.FusedAdam(1e-3), loss=...)
    ```
    """

    def __init__(self, learning_rate=0.001, name="fused_adam", **kwargs):
        super().__init__(learning_rate=learning_rate, name=name, **kwargs)

    def update_step(self, gradient, variable, learning_rate):
        if not self._fused_kernel_applies(gradient, variable):
            return super().update_step(gradient, variable, learning_rate)
        momentum, velocity = internals.adam_slots(self, variable)
        step = ops.cast(self.iterations + 1, "float32")
        beta_1 = ops.cast(self.beta_1, "float32")
        beta_2 = ops.cast(self.beta_2, "float32")
        tf.raw_ops.ResourceApplyAdam(
            var=_handle(variable),
            m=_handle(momentum),
            v=_handle(velocity),
            beta1_power=ops.power(beta_1, step),
            beta2_power=ops.power(beta_2, step),
            lr=ops.cast(learning_rate, "float32"),
            beta1=beta_1,
            beta2=beta_2,
            epsilon=ops.cast(self.epsilon, "float32"),
            grad=gradient,
        )

    def _fused_kernel_applies(self, gradient, variable):
        numbers = (self.beta_1, self.beta_2, self.epsilon)
        return (
            keras.backend.backend() == "tensorflow"
            and not self.amsgrad
            and all(isinstance(n, (int, float)) for n in numbers)
            and not tf.distribute.has_strategy()
            and isinstance(gradient, tf.Tensor)
            and gradient.dtype == tf.float32
            and variable.dtype == tf.float32
        )


def _handle(variable):
    """The resource handle of a Keras or TensorFlow variable."""
    value = variable.value if isinstance(variable, keras.Variable) else variable
    return value.handle
