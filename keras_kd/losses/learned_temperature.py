"""A temperature learned against the student (CTKD, Li et al. 2023)."""

import functools
import math

import keras
from keras import ops

from keras_kd._internal.backends import tf
from keras_kd._internal import checks


@keras.saving.register_keras_serializable(package="keras_kd")
class LearnedTemperature(keras.layers.Layer):
    """`T = t_min + t_range · sigmoid(p)`, with `p` trained to make distillation harder.

    Curriculum temperature for knowledge distillation (CTKD, Li et al. 2023):
    the temperature is a trainable parameter `p` that the optimizer updates
    with the student, but through a gradient-reversal layer: in the backward
    pass the gradient reaching `p` is multiplied by `reversal` (a live value
    in [-1, 1]). At `-1`, `p` ascends the distillation loss while the student
    descends it — an adversarial curriculum from easy to hard. The paper
    raises the reversal strength along a cosine from 0 to 1 over its first 10
    of 240 epochs; with keras_kd that is a schedule of the live value
    `"temperature_reversal"` in fractions of the run (see the example).

    Pass it as the `Distiller`'s `temperature`; every term without its own
    temperature then uses it. History logs its mean value per epoch as
    `temperature`.

    Args:
        initial: Float in `(t_min, t_min + t_range)`, the starting
            temperature. Defaults to `4.0`.
        t_min: Positive float, the lowest temperature. Defaults to `1.0`.
        t_range: Positive float; the temperature stays below
            `t_min + t_range`. Defaults to `20.0` (the paper's 1 to 21).
        reversal: Float in [-1, 1], the starting gradient multiplier.
            Defaults to `-1.0` (full reversal from the start).
        **kwargs: Other `keras.layers.Layer` arguments.

    Example:

    ```python
    distiller = keras_kd.Distiller(
        teacher, student, temperature=keras_kd.LearnedTemperature(initial=4.0)
    )
    curriculum = keras_kd.callbacks.LiveValueScheduler(schedules={
        "temperature_reversal": keras_kd.schedules.Cosine(
            0.0, -1.0, duration=10 / 240, fractions=True)})
    ```
    """

    def __init__(self, initial=4.0, t_min=1.0, t_range=20.0, reversal=-1.0, **kwargs):
        kwargs.setdefault("dtype", "float32")
        kwargs.setdefault("name", "learned_temperature")
        super().__init__(**kwargs)
        self.t_min = checks.check_temperature(t_min, "t_min")
        self.t_range = checks.check_temperature(t_range, "t_range")
        initial = checks.check_temperature(initial, "initial")
        if not self.t_min < initial < self.t_min + self.t_range:
            raise ValueError(
                "Argument `initial` must lie strictly between `t_min` and "
                f"`t_min + t_range` ({self.t_min}, {self.t_min + self.t_range})."
                f" Received: initial={initial}"
            )
        self.initial = initial
        fraction = (initial - self.t_min) / self.t_range
        self.logit = self.add_weight(
            name="logit",
            shape=(),
            initializer=keras.initializers.Constant(math.log(fraction / (1 - fraction))),
            trainable=True,
        )
        self.reversal = self.add_weight(
            name="reversal",
            shape=(),
            initializer=keras.initializers.Constant(check_reversal(reversal)),
            trainable=False,
        )
        self.built = True

    def value(self):
        """The current temperature, a float32 scalar tensor."""
        # Read outside the custom gradient, which then sees tensors only.
        logit = _scale_gradient(
            tf.identity(self.logit.value), tf.identity(self.reversal.value)
        )
        return self.t_min + self.t_range * ops.sigmoid(logit)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "initial": self.initial,
                "t_min": self.t_min,
                "t_range": self.t_range,
                "reversal": float(ops.convert_to_numpy(self.reversal)),
            }
        )
        return config


def check_reversal(value, argument="reversal"):
    """Returns `value` as a float, or raises if it is not in [-1, 1]."""
    number = checks.as_float(value, argument)
    if not -1.0 <= number <= 1.0:
        raise ValueError(
            f"Argument `{argument}` must be in [-1, 1] (the gradient "
            f"multiplier). Received: {argument}={value!r}"
        )
    return number


def _scale_gradient(value, scale):
    """Identity forward; multiplies the gradient by `scale` backward."""
    return _gradient_scaler()(value, scale)


@functools.cache
def _gradient_scaler():
    # Built on first use: importing keras_kd does not import TensorFlow.
    @tf.custom_gradient
    def scale_gradient(value, scale):
        def gradient(upstream):
            return upstream * scale, tf.zeros_like(scale)

        return tf.identity(value), gradient

    return scale_gradient
