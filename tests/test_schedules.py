"""Schedules: values against closed forms, inside XLA, in fractions of a run."""

import math

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_kd import schedules

STEPS = np.arange(0, 40, dtype=np.float64)


def _expected_cosine(start, end, duration, step):
    progress = min(step / duration, 1.0)
    return end + (start - end) * 0.5 * (1 + math.cos(math.pi * progress))


CASES = [
    (schedules.Constant(3.0), lambda s: 3.0),
    (schedules.Linear(1.0, 5.0, duration=20), lambda s: 1.0 + 4.0 * min(s / 20, 1.0)),
    (schedules.Cosine(8.0, 2.0, duration=30), lambda s: _expected_cosine(8.0, 2.0, 30, s)),
    (schedules.Exponential(8.0, rate=0.5, decay_steps=10), lambda s: 8.0 * 0.5 ** (s / 10)),
    (schedules.Exponential(1.0, rate=2.0, decay_steps=5, end=10.0), lambda s: min(2.0 ** (s / 5), 10.0)),
    (schedules.PiecewiseConstant([10, 25], [4.0, 2.0, 1.0]), lambda s: 4.0 if s < 10 else 2.0 if s < 25 else 1.0),
    (
        schedules.Join([schedules.Linear(0.0, 4.0, duration=10), schedules.Cosine(4.0, 1.0, duration=20)], [10]),
        lambda s: 4.0 * s / 10 if s < 10 else _expected_cosine(4.0, 1.0, 20, s - 10),
    ),
]
IDS = ["constant", "linear", "cosine", "exponential", "exponential_capped", "piecewise", "join"]


@pytest.mark.parametrize("schedule, expected", CASES, ids=IDS)
def test_values_eagerly_and_under_xla(schedule, expected):
    wanted = np.array([expected(s) for s in STEPS])
    eager = np.array([float(schedule(int(s))) for s in STEPS])
    np.testing.assert_allclose(eager, wanted, rtol=1e-5, atol=1e-6)

    compiled = tf.function(lambda steps: tf.map_fn(schedule, steps), jit_compile=True)
    xla_values = compiled(tf.constant(STEPS, tf.float32)).numpy()
    np.testing.assert_allclose(xla_values, wanted, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("schedule, _", CASES, ids=IDS)
def test_config_round_trip(schedule, _):
    restored = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(schedule))
    assert type(restored) is type(schedule)
    assert restored.get_config() == schedule.get_config()
    np.testing.assert_allclose([float(restored(s)) for s in (0, 7, 33)], [float(schedule(s)) for s in (0, 7, 33)])


def test_fractions_of_the_run_scale_to_any_length():
    warm_up_then_decay = schedules.Join(
        [schedules.Linear(1.0, 4.0, duration=0.1, fractions=True),
         schedules.Cosine(4.0, 1.0, duration=0.9, fractions=True)],
        boundaries=[0.1],
        fractions=True,
    )
    for total in (10, 2400):
        resolved = warm_up_then_decay.resolve(total)
        # The same shape at the same fraction of the run, whatever its length.
        np.testing.assert_allclose(
            [float(resolved(f * total)) for f in (0.0, 0.05, 0.1, 0.55, 1.0)],
            [1.0, 2.5, 4.0, 2.5, 1.0],
            atol=1e-5,
        )
    with pytest.raises(ValueError, match=r"written in fractions of the run: call `resolve\(total_steps\)` first"):
        schedules.Linear(1.0, 2.0, duration=0.5, fractions=True)(3)
    with pytest.raises(ValueError, match=r"This Join holds fractions of the run"):
        warm_up_then_decay(3)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: schedules.Linear(1, 2, duration=0), r"Argument `duration` must be > 0. Received: duration=0"),
        (lambda: schedules.Cosine(1, 2, duration=1.5, fractions=True), r"Argument `duration` is a fraction of the run \(fractions=True\) and must be in \(0, 1\]"),
        (lambda: schedules.Exponential(1, rate=0, decay_steps=3), r"Argument `rate` must be > 0"),
        (lambda: schedules.PiecewiseConstant([5, 3], [1, 2, 3]), r"Argument `boundaries` must be non-negative and strictly increasing"),
        (lambda: schedules.PiecewiseConstant([5], [1, 2, 3]), r"Argument `boundaries` must have 2 entries"),
        (lambda: schedules.Join([schedules.Constant(1.0), 2.0], [3]), r"Argument `schedules` must hold keras_kd.schedules objects"),
        (lambda: schedules.Linear(1, 2, duration=0.5, fractions=True).resolve(0), r"Argument `total_steps` must be an int > 0"),
    ],
)
def test_bad_arguments(build, message):
    with pytest.raises(ValueError, match=message):
        build()
