"""Each term against the float64 numpy reference, at ordinary and extreme values."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_kd
from tests import reference

TERMS = [
    (keras_kd.losses.KLDivergence, reference.kl),
    (keras_kd.losses.SoftTargetCrossentropy, reference.soft_crossentropy),
    (keras_kd.losses.LogitMSE, lambda t, s, temperature: reference.logit_mse(t, s)),
]


def _logits(seed, scale, shape=(16, 7)):
    return (np.random.default_rng(seed).normal(size=shape) * scale).astype("float32")


def _value_and_gradient(term, teacher, student, temperature):
    student = tf.constant(student)
    with tf.GradientTape() as tape:
        tape.watch(student)
        value = term.compute(tf.constant(teacher), student, None, tf.constant(temperature))
    return value.numpy(), tape.gradient(value, student).numpy()


@pytest.mark.parametrize("term_class, numpy_fn", TERMS)
@pytest.mark.parametrize("temperature", [0.5, 1.0, 4.0, 20.0])
@pytest.mark.parametrize("scale", [1.0, 30.0, 1e4])
def test_term_matches_numpy(term_class, numpy_fn, temperature, scale):
    teacher, student = _logits(0, scale), _logits(1, scale)
    value, gradient = _value_and_gradient(term_class(), teacher, student, temperature)
    expected = numpy_fn(teacher, student, temperature)
    assert value.shape == (16,)
    assert np.all(np.isfinite(value)) and np.all(np.isfinite(gradient))
    # float32 log-probabilities carry ~1e-7 absolute error; T² scales it up.
    atol = 1e-6 * temperature**2 * max(1.0, scale)
    np.testing.assert_allclose(value, expected, rtol=2e-5, atol=atol)


@pytest.mark.parametrize("term_class, numpy_fn", TERMS)
def test_masked_classes_are_zero_not_nan(term_class, numpy_fn):
    teacher, student = _logits(2, 3.0), _logits(3, 3.0)
    teacher[:, [1, 4]] = -np.inf
    student[:, [1, 4]] = -np.inf
    value, gradient = _value_and_gradient(term_class(), teacher, student, 2.0)
    assert np.all(np.isfinite(value)) and np.all(np.isfinite(gradient))
    np.testing.assert_allclose(value, numpy_fn(teacher, student, 2.0), rtol=1e-5, atol=1e-5)
    # A class masked in both models gets no gradient.
    np.testing.assert_array_equal(gradient[:, [1, 4]], 0.0)


def test_teacher_masked_class_alone_is_finite():
    teacher, student = _logits(4, 2.0), _logits(5, 2.0)
    teacher[:, 0] = -np.inf
    term = keras_kd.losses.KLDivergence()
    value, gradient = _value_and_gradient(term, teacher, student, 3.0)
    np.testing.assert_allclose(value, reference.kl(teacher, student, 3.0), rtol=1e-5)
    assert np.all(np.isfinite(gradient))


@pytest.mark.parametrize("term_class, numpy_fn", TERMS)
def test_float16_student_logits_are_compared_in_float32(term_class, numpy_fn):
    teacher = _logits(6, 5.0)
    student16 = _logits(7, 5.0).astype("float16")
    value = term_class().compute(
        tf.constant(teacher), tf.constant(student16), None, tf.constant(2.0)
    )
    assert value.dtype == tf.float32
    expected = numpy_fn(teacher, student16.astype("float64"), 2.0)
    np.testing.assert_allclose(value.numpy(), expected, rtol=1e-5, atol=1e-5)


def test_kl_is_zero_at_a_perfect_match_and_soft_ce_is_the_entropy():
    logits = _logits(8, 2.0)
    kl, _ = _value_and_gradient(keras_kd.losses.KLDivergence(), logits, logits, 2.0)
    np.testing.assert_allclose(kl, 0.0, atol=1e-5)
    ce, _ = _value_and_gradient(
        keras_kd.losses.SoftTargetCrossentropy(), logits, logits, 2.0
    )
    p = np.exp(reference.log_softmax(logits / 2.0))
    entropy = -(p * np.log(p)).sum(-1)
    np.testing.assert_allclose(ce, 4.0 * entropy, rtol=1e-5)


@pytest.mark.parametrize("term_class, _", TERMS)
def test_term_config_round_trip(term_class, _):
    term = term_class(weight=0.25, temperature=3.0, name="custom")
    term.weight.assign(0.75)  # The live value is what the config saves.
    config = keras.saving.serialize_keras_object(term)
    restored = keras.saving.deserialize_keras_object(config)
    assert type(restored) is term_class
    assert restored.name == "custom"
    assert float(restored.weight.numpy()) == 0.75
    assert float(restored.temperature.numpy()) == 3.0
    assert restored.get_config() == term.get_config()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"weight": -1.0}, r"Argument `kl.weight` must be a finite number >= 0. Received: kl.weight=-1.0"),
        ({"weight": float("nan")}, r"Argument `kl.weight` must be a finite number >= 0"),
        ({"temperature": 0.0}, r"Argument `temperature` must be a finite number > 0. Received: temperature=0.0"),
        ({"temperature": "hot"}, r"Argument `temperature` must be a number. Received: temperature='hot'"),
    ],
)
def test_bad_term_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        keras_kd.losses.KLDivergence(**kwargs)


def test_base_term_says_what_to_implement():
    term = keras_kd.losses.DistillationTerm()
    with pytest.raises(NotImplementedError, match=r"must implement `compute"):
        term.compute(None, None, None, None)
