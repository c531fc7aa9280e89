"""Schedules for live values: serializable `step -> value` callables.

A schedule maps a step (an epoch or a batch index, whichever the callback
that drives it counts) to a value. It is written with `keras.ops`, so it runs
on Python numbers, in a `tf.function` and under `jit_compile=True` alike.

Durations and boundaries are steps by default. With `fractions=True` they are
fractions of the whole run instead (`0.1` is "the first 10%"); such a schedule
is turned into steps by `resolve(total_steps)`, which
`keras_kd.callbacks.LiveValueScheduler` calls at the start of training from
`epochs × steps`, so the same schedule fits a 5-epoch test and a 240-epoch run.

Example:

```python
warm_up_then_decay = keras_kd.schedules.Join(
    [keras_kd.schedules.Linear(1.0, 4.0, duration=0.1, fractions=True),
     keras_kd.schedules.Cosine(4.0, 1.0, duration=0.9, fractions=True)],
    boundaries=[0.1],
    fractions=True,
)
warm_up_then_decay.resolve(total_steps=1000)(step=50)  # 2.5
```
"""

import math

import keras
from keras import ops

from keras_kd._internal import checks

__all__ = [
    "Schedule",
    "Constant",
    "Linear",
    "Cosine",
    "Exponential",
    "PiecewiseConstant",
    "Join",
]


class Schedule:
    """Base class: a serializable `step -> value` callable.

    Subclasses implement `value(step)` with `keras.ops` and list the names of
    their step-valued arguments in `_step_arguments`, which `resolve` scales
    when the schedule is written in fractions of the run.

    Args:
        fractions: Bool. If `True`, the step-valued arguments are fractions of
            the whole run, resolved by `resolve(total_steps)`. Defaults to
            `False`.
    """

    _step_arguments = ()

    def __init__(self, fractions=False):
        self.fractions = bool(fractions)

    def __call__(self, step):
        if self.fractions:
            raise ValueError(
                f"This {type(self).__name__} is written in fractions of the run: "
                "call `resolve(total_steps)` first (LiveValueScheduler does "
                "it at the start of training)."
            )
        return self.value(ops.cast(step, "float32"))

    def value(self, step):
        """Returns the value at `step` (a float32 scalar)."""
        raise NotImplementedError

    def resolve(self, total_steps):
        """Returns this schedule with fractions of the run turned into steps.

        Args:
            total_steps: Positive int, the length of the run in the steps the
                schedule is called with (epochs, or epochs × batches).

        Returns:
            A schedule in steps (this one if it already is).
        """
        if not self.fractions:
            return self
        if not (isinstance(total_steps, int) and total_steps > 0):
            raise ValueError(
                "Argument `total_steps` must be an int > 0. "
                f"Received: total_steps={total_steps!r}"
            )
        config = self.get_config()
        for name in self._step_arguments:
            config[name] = _scale(config[name], total_steps)
        config["fractions"] = False
        return type(self).from_config(config)

    def get_config(self):
        return {"fractions": self.fractions}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


def _scale(value, total_steps):
    if isinstance(value, (list, tuple)):
        return [_scale(v, total_steps) for v in value]
    return float(value) * total_steps


def _check_step_argument(value, argument, fractions):
    number = checks.check_weight(value, argument)
    if number <= 0:
        raise ValueError(
            f"Argument `{argument}` must be > 0. Received: {argument}={value!r}"
        )
    if fractions and number > 1:
        raise ValueError(
            f"Argument `{argument}` is a fraction of the run (fractions=True) "
            f"and must be in (0, 1]. Received: {argument}={value!r}"
        )
    return number


def _check_boundaries(boundaries, expected_count, fractions):
    boundaries = [float(b) for b in boundaries]
    if len(boundaries) != expected_count:
        raise ValueError(
            f"Argument `boundaries` must have {expected_count} entries (one "
            f"fewer than the values or schedules). Received: boundaries={boundaries}"
        )
    if any(b <= a for a, b in zip(boundaries, boundaries[1:])) or any(
        b < 0 for b in boundaries
    ):
        raise ValueError(
            "Argument `boundaries` must be non-negative and strictly "
            f"increasing. Received: boundaries={boundaries}"
        )
    if fractions and any(b > 1 for b in boundaries):
        raise ValueError(
            "Argument `boundaries` holds fractions of the run (fractions=True) "
            f"and must be in [0, 1]. Received: boundaries={boundaries}"
        )
    return boundaries


def _progress(step, duration):
    return ops.clip(step / duration, 0.0, 1.0)


@keras.saving.register_keras_serializable(package="keras_kd")
class Constant(Schedule):
    """The same value at every step.

    Args:
        value: Float. The value.

    Example:

    >>> float(keras_kd.schedules.Constant(4.0)(10))
    4.0
    """

    def __init__(self, value, fractions=False):
        super().__init__(fractions)
        self.constant = float(value)

    def value(self, step):
        return ops.cast(self.constant, "float32") + 0.0 * step

    def get_config(self):
        return {"value": self.constant, **super().get_config()}


class _Transition(Schedule):
    """Goes from `start` to `end` over `duration` steps, then stays at `end`."""

    _step_arguments = ("duration",)

    def __init__(self, start, end, duration, fractions=False):
        super().__init__(fractions)
        self.start, self.end = float(start), float(end)
        self.duration = _check_step_argument(duration, "duration", fractions)

    def get_config(self):
        return {
            "start": self.start,
            "end": self.end,
            "duration": self.duration,
            **super().get_config(),
        }


@keras.saving.register_keras_serializable(package="keras_kd")
class Linear(_Transition):
    """Goes linearly from `start` to `end` over `duration` steps, then stays.

    Args:
        start: Float, the value at step 0.
        end: Float, the value from step `duration` on.
        duration: Positive number of steps (or fraction of the run).
        fractions: Bool, see `Schedule`. Defaults to `False`.

    Example:

    >>> float(keras_kd.schedules.Linear(1.0, 3.0, duration=10)(5))
    2.0
    """

    def value(self, step):
        return self.start + (self.end - self.start) * _progress(step, self.duration)


@keras.saving.register_keras_serializable(package="keras_kd")
class Cosine(_Transition):
    """Half a cosine from `start` to `end` over `duration` steps, then stays.

    Args:
        start: Float, the value at step 0.
        end: Float, the value from step `duration` on.
        duration: Positive number of steps (or fraction of the run).
        fractions: Bool, see `Schedule`. Defaults to `False`.

    Example:

    >>> float(keras_kd.schedules.Cosine(4.0, 0.0, duration=10)(5))
    2.0
    """

    def value(self, step):
        cosine = 0.5 * (1.0 + ops.cos(math.pi * _progress(step, self.duration)))
        return self.end + (self.start - self.end) * cosine


@keras.saving.register_keras_serializable(package="keras_kd")
class Exponential(Schedule):
    """`start · rate ** (step / decay_steps)`, optionally bounded by `end`.

    Args:
        start: Float, the value at step 0.
        rate: Positive float, the factor applied every `decay_steps` steps.
        decay_steps: Positive number of steps (or fraction of the run).
        end: Optional float the value never passes (a floor when decaying,
            a ceiling when growing). Defaults to `None`.
        fractions: Bool, see `Schedule`. Defaults to `False`.

    Example:

    >>> float(keras_kd.schedules.Exponential(8.0, rate=0.5, decay_steps=2)(4))
    2.0
    """

    _step_arguments = ("decay_steps",)

    def __init__(self, start, rate, decay_steps, end=None, fractions=False):
        super().__init__(fractions)
        self.start = float(start)
        self.rate = checks.check_weight(rate, "rate")
        if self.rate == 0:
            raise ValueError("Argument `rate` must be > 0. Received: rate=0")
        self.decay_steps = _check_step_argument(
            decay_steps, "decay_steps", fractions
        )
        self.end = None if end is None else float(end)

    def value(self, step):
        value = self.start * ops.power(
            ops.cast(self.rate, "float32"), step / self.decay_steps
        )
        if self.end is None:
            return value
        if self.rate < 1:
            return ops.maximum(value, self.end)
        return ops.minimum(value, self.end)

    def get_config(self):
        return {
            "start": self.start,
            "rate": self.rate,
            "decay_steps": self.decay_steps,
            "end": self.end,
            **super().get_config(),
        }


@keras.saving.register_keras_serializable(package="keras_kd")
class PiecewiseConstant(Schedule):
    """`values[i]` from `boundaries[i - 1]` (inclusive) to `boundaries[i]`.

    Args:
        boundaries: Increasing steps (or fractions of the run) where the value
            changes; one fewer than `values`.
        values: Floats, the value on each piece.
        fractions: Bool, see `Schedule`. Defaults to `False`.

    Example:

    >>> schedule = keras_kd.schedules.PiecewiseConstant([10, 20], [4.0, 2.0, 1.0])
    >>> [float(schedule(s)) for s in (0, 10, 25)]
    [4.0, 2.0, 1.0]
    """

    _step_arguments = ("boundaries",)

    def __init__(self, boundaries, values, fractions=False):
        super().__init__(fractions)
        self.values = [float(v) for v in values]
        self.boundaries = _check_boundaries(
            boundaries, len(self.values) - 1, fractions
        )

    def value(self, step):
        result = ops.cast(self.values[0], "float32") + 0.0 * step
        for boundary, value in zip(self.boundaries, self.values[1:]):
            result = ops.where(step >= boundary, value, result)
        return result

    def get_config(self):
        return {
            "boundaries": self.boundaries,
            "values": self.values,
            **super().get_config(),
        }


@keras.saving.register_keras_serializable(package="keras_kd")
class Join(Schedule):
    """Runs `schedules[i]` from `boundaries[i - 1]` on, counting from there.

    Each schedule sees the steps since its own start, so `Join([warm_up,
    decay], [100])` warms up for 100 steps, then decays from its step 0.

    Args:
        schedules: Schedules (in steps or fractions of the run).
        boundaries: Increasing steps (or fractions of the run) where the next
            schedule takes over; one fewer than `schedules`.
        fractions: Bool: the `boundaries` are fractions of the run. Defaults
            to `False`.

    Example:

    >>> warm_up = keras_kd.schedules.Linear(0.0, 1.0, duration=10)
    >>> decay = keras_kd.schedules.Exponential(1.0, rate=0.5, decay_steps=10)
    >>> schedule = keras_kd.schedules.Join([warm_up, decay], boundaries=[10])
    >>> [float(schedule(s)) for s in (5, 10, 20)]
    [0.5, 1.0, 0.5]
    """

    _step_arguments = ("boundaries",)

    def __init__(self, schedules, boundaries, fractions=False):
        super().__init__(fractions)
        self.schedules = [
            keras.saving.deserialize_keras_object(s) if isinstance(s, dict) else s
            for s in schedules
        ]
        for schedule in self.schedules:
            if not isinstance(schedule, Schedule):
                raise ValueError(
                    "Argument `schedules` must hold keras_kd.schedules "
                    f"objects. Received: {schedule!r}"
                )
        self.boundaries = _check_boundaries(
            boundaries, len(self.schedules) - 1, fractions
        )

    def __call__(self, step):
        if self.fractions or any(s.fractions for s in self.schedules):
            raise ValueError(
                "This Join holds fractions of the run: call "
                "`resolve(total_steps)` first (LiveValueScheduler does it at "
                "the start of training)."
            )
        return self.value(ops.cast(step, "float32"))

    def resolve(self, total_steps):
        boundaries = (
            _scale(self.boundaries, total_steps)
            if self.fractions
            else self.boundaries
        )
        return Join(
            [s.resolve(total_steps) for s in self.schedules], boundaries
        )

    def value(self, step):
        result = self.schedules[0].value(step)
        for boundary, schedule in zip(self.boundaries, self.schedules[1:]):
            result = ops.where(
                step >= boundary, schedule.value(step - boundary), result
            )
        return result

    def get_config(self):
        return {
            "schedules": [
                keras.saving.serialize_keras_object(s) for s in self.schedules
            ],
            "boundaries": self.boundaries,
            **super().get_config(),
        }
