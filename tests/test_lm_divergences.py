"""The divergences for sequences (issue #38): ReverseKL, GeneralizedJSD, SkewKL,
SkewReverseKL, each against a float64 numpy reference written here, on masked
token sequences through the Distiller, on TensorFlow and on JAX.

Run with KERAS_BACKEND=tensorflow or KERAS_BACKEND=jax; nothing here needs a
TensorFlow-only API.
"""

import keras
import numpy as np
import pytest

import keras_kd
from keras_kd import losses

VOCABULARY = 11
TEMPERATURE = 2.0


# float64 references, from probabilities (not log space) -----------------------


def _softmax64(logits, temperature):
    z = np.asarray(logits, np.float64) / temperature
    finite_max = np.max(np.where(np.isfinite(z), z, -np.inf), axis=-1, keepdims=True)
    e = np.exp(z - finite_max)
    return e / e.sum(-1, keepdims=True)


def _kl64(a, b):
    """Σ a · log(a / b) over the last axis, with 0 · log(0 / b) = 0."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(a > 0, a * (np.log(a) - np.log(b)), 0.0).sum(-1)


def forward_kl_ref(t, s, temperature, **_):
    p, q = _softmax64(t, temperature), _softmax64(s, temperature)
    return temperature**2 * _kl64(p, q)


def reverse_kl_ref(t, s, temperature, **_):
    p, q = _softmax64(t, temperature), _softmax64(s, temperature)
    return temperature**2 * _kl64(q, p)


def jsd_ref(t, s, temperature, beta=0.5):
    p, q = _softmax64(t, temperature), _softmax64(s, temperature)
    if beta == 0.0:
        return temperature**2 * _kl64(p, q)
    if beta == 1.0:
        return temperature**2 * _kl64(q, p)
    m = beta * p + (1 - beta) * q
    return temperature**2 * (beta * _kl64(p, m) + (1 - beta) * _kl64(q, m))


def skew_kl_ref(t, s, temperature, skew=0.1):
    p, q = _softmax64(t, temperature), _softmax64(s, temperature)
    return temperature**2 * _kl64(p, skew * p + (1 - skew) * q)


def skew_reverse_kl_ref(t, s, temperature, skew=0.1):
    p, q = _softmax64(t, temperature), _softmax64(s, temperature)
    return temperature**2 * _kl64(q, skew * q + (1 - skew) * p)


# (term factory, reference, live value name or None, a value to assign)
TERMS = {
    "reverse_kl": (losses.ReverseKL, reverse_kl_ref, None),
    "jsd": (losses.GeneralizedJSD, jsd_ref, "beta"),
    "skew_kl": (losses.SkewKL, skew_kl_ref, "skew"),
    "skew_reverse_kl": (losses.SkewReverseKL, skew_reverse_kl_ref, "skew"),
}
LIVE_DEFAULTS = {"beta": 0.5, "skew": 0.1}


# Tiny token models and batches -------------------------------------------------


def _lm(width, seed):
    """Token ids (0 = padding) -> next-token logits, with the padding mask.

    Initialised wide (logits of a few units), so the divergences are O(1),
    not the ~1e-4 of two near-uniform models.
    """
    keras.utils.set_random_seed(seed)
    normal = keras.initializers.RandomNormal(stddev=1.0)
    return keras.Sequential(
        [
            keras.Input((None,), dtype="int32"),
            keras.layers.Embedding(VOCABULARY, width, mask_zero=True, embeddings_initializer=normal),
            keras.layers.Dense(VOCABULARY, kernel_initializer=normal),
        ]
    )


def _tokens(lengths, time, seed=0):
    rng = np.random.default_rng(seed)
    x = np.zeros((len(lengths), time), "int32")
    for row, length in enumerate(lengths):
        x[row, :length] = rng.integers(1, VOCABULARY, length)
    return x


def _logits(seed, shape=(6, VOCABULARY), scale=3.0):
    return (np.random.default_rng(seed).normal(size=shape) * scale).astype("float32")


def _numpy(value):
    return np.asarray(keras.ops.convert_to_numpy(value), np.float64)


def _compute(term, teacher, student, temperature=TEMPERATURE):
    return _numpy(
        term.compute(
            keras.ops.convert_to_tensor(teacher),
            keras.ops.convert_to_tensor(student),
            None,
            keras.ops.convert_to_tensor(temperature, "float32"),
        )
    )


def _gradient(term, teacher, student, temperature=TEMPERATURE):
    """d Σ term(teacher, student) / d student, on the running backend."""
    backend = keras.backend.backend()
    t = keras.ops.convert_to_tensor(teacher)
    temperature = keras.ops.convert_to_tensor(temperature, "float32")
    if backend == "tensorflow":
        import tensorflow as tf

        s = tf.constant(student)
        with tf.GradientTape() as tape:
            tape.watch(s)
            value = tf.reduce_sum(term.compute(t, s, None, temperature))
        return tape.gradient(value, s).numpy()
    if backend == "jax":
        import jax

        def total(s):
            return jax.numpy.sum(term.compute(t, s, None, temperature))

        return np.asarray(jax.grad(total)(jax.numpy.asarray(student)))
    pytest.skip(f"No gradient helper for the {backend} backend.")


def _masked_mean(values, valid, weights=None):
    """Keras's reduction with a mask: Σ values·weights over valid / #valid."""
    weights = np.ones(values.shape) if weights is None else weights
    return np.sum(np.where(valid, values * weights, 0.0)) / np.sum(valid)


def _next_tokens(x):
    """Labels as a keras-hub preprocessor gives them: the next token ids.

    The terms do not read them (alpha is 0 and no student loss is compiled);
    they are passed because Keras drops `sample_weight` when `y` is None.
    """
    return np.where(x != 0, np.roll(x, -1, axis=1), 0)


def _evaluate(distiller, x, sample_weight=None):
    return distiller.evaluate(
        x, _next_tokens(x), sample_weight=sample_weight, batch_size=len(x),
        verbose=0, return_dict=True,
    )


def _pair():
    return _lm(8, seed=1), _lm(6, seed=2)


# Each term against its reference, through the Distiller ------------------------


@pytest.mark.parametrize("name", sorted(TERMS))
@pytest.mark.parametrize("per_token_weights", [False, True])
def test_term_equals_the_float64_reference_over_real_positions(name, per_token_weights):
    term_class, reference, live = TERMS[name]
    teacher, student = _pair()
    kwargs = {} if live is None else {live: 0.3}
    term = term_class(**kwargs)
    distiller = keras_kd.Distiller(
        teacher, student, temperature=TEMPERATURE, alpha=0.0, terms=[term]
    )
    distiller.compile(optimizer="sgd")
    x = _tokens([7, 3, 5, 1, 6], time=7)
    valid = x != 0
    weights = None
    if per_token_weights:
        # Instruction data: the first two tokens (the prompt) do not count.
        weights = np.ones(x.shape, "float32")
        weights[:, :2] = 0.0
    t, s = _numpy(teacher(x)), _numpy(student(x))
    values = reference(t, s, TEMPERATURE, **kwargs)
    expected = _masked_mean(values, valid, weights)
    loss = distiller.compute_loss(
        x=x, y=None, sample_weight=weights, training=False
    )
    np.testing.assert_allclose(_numpy(loss), expected, rtol=1e-5)
    logs = _evaluate(distiller, x, sample_weight=weights)
    np.testing.assert_allclose(logs[f"{name}_loss"], expected, rtol=1e-5)
    np.testing.assert_allclose(logs["loss"], expected, rtol=1e-5)


def test_tokens_at_padded_positions_change_nothing():
    teacher, student = _pair()
    distiller = keras_kd.Distiller(
        teacher, student, temperature=TEMPERATURE, alpha=0.0,
        terms=[losses.GeneralizedJSD(), losses.ReverseKL()],
    )
    distiller.compile(optimizer="sgd")
    x = _tokens([4, 2, 3], time=4)
    shorter = _evaluate(distiller, x)
    longer = _evaluate(distiller, np.pad(x, ((0, 0), (0, 3))))
    for key in ("jsd_loss", "reverse_kl_loss", "loss"):
        np.testing.assert_allclose(longer[key], shorter[key], rtol=1e-6, err_msg=key)


def test_one_training_step_with_every_term_at_its_special_values_is_finite():
    teacher, student = _pair()
    terms = [
        losses.GeneralizedJSD(beta=0.0, name="jsd0"),
        losses.GeneralizedJSD(beta=1.0, name="jsd1"),
        losses.SkewKL(skew=0.0),
        losses.SkewReverseKL(skew=0.0),
        losses.ReverseKL(),
    ]
    distiller = keras_kd.Distiller(teacher, student, temperature=TEMPERATURE, alpha=0.0, terms=terms)
    distiller.compile(optimizer=keras.optimizers.SGD(0.1))
    x = _tokens([5, 2, 4], time=5)
    before = [_numpy(w) for w in student.trainable_weights]
    history = distiller.fit(x, _next_tokens(x), batch_size=3, epochs=1, verbose=0)
    assert history.history["skipped_steps"] == [0.0]
    after = [_numpy(w) for w in student.trainable_weights]
    assert all(np.all(np.isfinite(w)) for w in after)
    assert all(not np.array_equal(a, b) for a, b in zip(after, before))


# The special and limiting values ----------------------------------------------


def test_jsd_ends_are_forward_and_reverse_kl_exactly():
    teacher, student = _logits(0), _logits(1)
    kl = _compute(losses.KLDivergence(), teacher, student)
    reverse = _compute(losses.ReverseKL(), teacher, student)
    np.testing.assert_allclose(_compute(losses.GeneralizedJSD(beta=0.0), teacher, student), kl, rtol=1e-6)
    np.testing.assert_allclose(_compute(losses.GeneralizedJSD(beta=1.0), teacher, student), reverse, rtol=1e-6)
    np.testing.assert_allclose(_compute(losses.SkewKL(skew=0.0), teacher, student), kl, rtol=1e-6)
    np.testing.assert_allclose(_compute(losses.SkewReverseKL(skew=0.0), teacher, student), reverse, rtol=1e-6)
    # And the float64 references agree with them.
    np.testing.assert_allclose(kl, forward_kl_ref(teacher, student, TEMPERATURE), rtol=1e-5)
    np.testing.assert_allclose(reverse, reverse_kl_ref(teacher, student, TEMPERATURE), rtol=1e-5)


def test_jsd_ends_through_the_distiller_equal_kl_and_reverse_kl():
    x = _tokens([5, 2, 4], time=5)
    results = {}
    for key, terms in {
        "kl": [losses.KLDivergence()],
        "jsd0": [losses.GeneralizedJSD(beta=0.0)],
        "reverse": [losses.ReverseKL()],
        "jsd1": [losses.GeneralizedJSD(beta=1.0)],
    }.items():
        distiller = keras_kd.Distiller(*_pair(), temperature=TEMPERATURE, alpha=0.0, terms=terms)
        distiller.compile(optimizer="sgd")
        results[key] = _evaluate(distiller, x)["loss"]
    np.testing.assert_allclose(results["jsd0"], results["kl"], rtol=1e-6)
    np.testing.assert_allclose(results["jsd1"], results["reverse"], rtol=1e-6)


def test_scaled_jsd_tends_to_forward_kl_and_reverse_kl():
    teacher, student = _logits(2), _logits(3)
    small, large = 1e-4, 1.0 - 1e-4
    forward = forward_kl_ref(teacher, student, TEMPERATURE)
    reverse = reverse_kl_ref(teacher, student, TEMPERATURE)
    near_zero = _compute(losses.GeneralizedJSD(beta=small), teacher, student) / small
    near_one = _compute(losses.GeneralizedJSD(beta=large), teacher, student) / (1.0 - large)
    np.testing.assert_allclose(near_zero, forward, rtol=1e-2)
    np.testing.assert_allclose(near_one, reverse, rtol=1e-2)
    # The float64 reference itself, with the general formula, does the same,
    # and the float32 term follows it there (float32 rounding is ~0.4% of a
    # divergence of order beta).
    np.testing.assert_allclose(jsd_ref(teacher, student, TEMPERATURE, small) / small, forward, rtol=1e-2)
    np.testing.assert_allclose(near_zero * small, jsd_ref(teacher, student, TEMPERATURE, small), rtol=1e-2)
    np.testing.assert_allclose(
        near_one * (1.0 - large), jsd_ref(teacher, student, TEMPERATURE, large), rtol=1e-2)


@pytest.mark.parametrize(
    "term_class, kwargs",
    [
        (losses.GeneralizedJSD, {"beta": 0.0}),
        (losses.GeneralizedJSD, {"beta": 1.0}),
        (losses.GeneralizedJSD, {"beta": 0.5}),
        (losses.SkewKL, {"skew": 0.0}),
        (losses.SkewReverseKL, {"skew": 0.0}),
        (losses.SkewKL, {"skew": 0.1}),
        (losses.SkewReverseKL, {"skew": 0.1}),
        (losses.ReverseKL, {}),
    ],
)
def test_values_and_gradients_are_finite_at_the_special_values(term_class, kwargs):
    term = term_class(**kwargs)
    teacher, student = _logits(4), _logits(5)
    value = _compute(term, teacher, student)
    gradient = _gradient(term, teacher, student)
    assert np.all(np.isfinite(value)) and np.all(value >= -1e-6)
    assert np.all(np.isfinite(gradient))
    # At a perfect match every divergence is 0.
    np.testing.assert_allclose(_compute(term, teacher, teacher), 0.0, atol=1e-5)


@pytest.mark.parametrize("name", sorted(TERMS))
def test_classes_masked_in_both_models_contribute_zero(name):
    term_class, reference, _ = TERMS[name]
    teacher, student = _logits(6), _logits(7)
    teacher[:, [1, 4]] = -np.inf
    student[:, [1, 4]] = -np.inf
    term = term_class()
    value, gradient = _compute(term, teacher, student), _gradient(term, teacher, student)
    assert np.all(np.isfinite(value)) and np.all(np.isfinite(gradient))
    np.testing.assert_allclose(value, reference(teacher, student, TEMPERATURE), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(gradient[:, [1, 4]], 0.0)


@pytest.mark.parametrize(
    "term_class, reference, kwargs",
    [
        (losses.GeneralizedJSD, jsd_ref, {"beta": 0.5}),
        (losses.GeneralizedJSD, jsd_ref, {"beta": 0.0}),
        (losses.SkewKL, skew_kl_ref, {"skew": 0.1}),
        (losses.SkewKL, skew_kl_ref, {"skew": 0.0}),
        (losses.SkewReverseKL, skew_reverse_kl_ref, {"skew": 0.1}),
    ],
)
def test_teacher_masked_classes_give_the_finite_value_the_math_gives(term_class, reference, kwargs):
    term = term_class(**kwargs)
    teacher, student = _logits(8), _logits(9)
    teacher[:, 0] = -np.inf  # The student still gives class 0 mass.
    value, gradient = _compute(term, teacher, student), _gradient(term, teacher, student)
    assert np.all(np.isfinite(value)) and np.all(np.isfinite(gradient))
    np.testing.assert_allclose(value, reference(teacher, student, TEMPERATURE, **kwargs), rtol=1e-5)


def test_reverse_kl_is_infinite_not_nan_where_only_the_teacher_masks_a_class():
    teacher, student = _logits(10), _logits(11)
    teacher[:, 0] = -np.inf
    for term in (losses.ReverseKL(), losses.GeneralizedJSD(beta=1.0), losses.SkewReverseKL(skew=0.0)):
        value = _compute(term, teacher, student)
        assert np.all(np.isposinf(value)), term.name


# Live beta and skew -----------------------------------------------------------


class _Counted:
    """Counts the traces of a term's `compute` (one per trace of the step)."""

    def __init__(self, term):
        self.calls = 0
        compute = term.compute

        def counted(*args, **kwargs):
            self.calls += 1
            return compute(*args, **kwargs)

        term.compute = counted


@pytest.mark.parametrize("name", ["jsd", "skew_kl", "skew_reverse_kl"])
def test_assigning_the_live_value_changes_the_next_evaluate_without_retracing(name):
    term_class, reference, live = TERMS[name]
    teacher, student = _pair()
    term = term_class()
    counter = _Counted(term)
    distiller = keras_kd.Distiller(teacher, student, temperature=TEMPERATURE, alpha=0.0, terms=[term])
    distiller.compile(optimizer="sgd")
    x = _tokens([6, 4, 2, 5], time=6)
    valid = x != 0
    t, s = _numpy(teacher(x)), _numpy(student(x))
    before = _evaluate(distiller, x)["loss"]
    function, traces = distiller.test_function, counter.calls
    assert traces >= 1
    new_value = 0.9 if live == "beta" else 0.4
    setattr(term, live, new_value)  # Checked, then assigned.
    after = _evaluate(distiller, x)["loss"]
    assert distiller.test_function is function
    assert counter.calls == traces  # Not traced again.
    np.testing.assert_allclose(
        before, _masked_mean(reference(t, s, TEMPERATURE, **{live: LIVE_DEFAULTS[live]}), valid), rtol=1e-5)
    np.testing.assert_allclose(
        after, _masked_mean(reference(t, s, TEMPERATURE, **{live: new_value}), valid), rtol=1e-5)
    # The ends of beta are chosen in the graph too: no retrace for them.
    if live == "beta":
        for end, ref in ((0.0, forward_kl_ref), (1.0, reverse_kl_ref)):
            term.beta.assign(end)
            loss = _evaluate(distiller, x)["loss"]
            np.testing.assert_allclose(loss, _masked_mean(ref(t, s, TEMPERATURE), valid), rtol=1e-5)
        assert counter.calls == traces


@pytest.mark.parametrize(
    "make, message",
    [
        (lambda: losses.GeneralizedJSD(beta=1.5), r"Argument `beta` must be in \[0, 1\]. Received: beta=1.5"),
        (lambda: losses.GeneralizedJSD(beta=-0.1), r"Argument `beta` must be in \[0, 1\]. Received: beta=-0.1"),
        (lambda: losses.GeneralizedJSD(beta=float("nan")), r"Argument `beta` must be in \[0, 1\]"),
        (lambda: losses.GeneralizedJSD(beta="half"), r"Argument `beta` must be a number. Received: beta='half'"),
        (lambda: losses.SkewKL(skew=1.0), r"Argument `skew` must be in \[0, 1\). Received: skew=1.0"),
        (lambda: losses.SkewReverseKL(skew=-0.5), r"Argument `skew` must be in \[0, 1\). Received: skew=-0.5"),
    ],
)
def test_bad_live_values_are_refused_in_keras_voice(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_assigning_a_bad_live_value_is_refused_and_keeps_the_old_one():
    jsd, skew = losses.GeneralizedJSD(beta=0.25), losses.SkewKL(skew=0.2)
    with pytest.raises(ValueError, match=r"Received: beta=2.0"):
        jsd.beta = 2.0
    with pytest.raises(ValueError, match=r"Received: skew=1"):
        skew.skew = 1
    assert float(_numpy(jsd.beta)) == 0.25
    np.testing.assert_allclose(float(_numpy(skew.skew)), 0.2, rtol=1e-7)
    variable, check = jsd.own_live_values()["beta"]
    assert variable is jsd.beta and check(0.75, "jsd_beta") == 0.75
    with pytest.raises(ValueError, match=r"Argument `jsd_beta` must be in \[0, 1\]"):
        check(3.0, "jsd_beta")


# Serialization ----------------------------------------------------------------


@pytest.mark.parametrize("name", sorted(TERMS))
def test_config_round_trip(name):
    term_class, _, live = TERMS[name]
    kwargs = {} if live is None else {live: 0.3}
    term = term_class(weight=0.25, temperature=3.0, name="custom", **kwargs)
    term.weight.assign(0.75)
    if live is not None:
        getattr(term, live).assign(0.6)  # The live value is what the config saves.
    assert term_class.default_name == name
    assert term_class().name == name
    config = keras.saving.serialize_keras_object(term)
    restored = keras.saving.deserialize_keras_object(config)
    assert type(restored) is term_class
    assert restored.name == "custom"
    assert restored.get_config() == term.get_config()
    assert float(_numpy(restored.weight)) == 0.75
    if live is not None:
        np.testing.assert_allclose(float(_numpy(getattr(restored, live))), 0.6, rtol=1e-7)
    same = term_class.from_config(term.get_config())
    assert same.get_config() == term.get_config()


def test_a_saved_distiller_keeps_its_terms_and_their_live_values(tmp_path):
    teacher, student = _pair()
    terms = [losses.GeneralizedJSD(beta=0.2), losses.SkewReverseKL(skew=0.3), losses.ReverseKL(weight=0.5)]
    distiller = keras_kd.Distiller(teacher, student, temperature=TEMPERATURE, alpha=0.0, terms=terms)
    distiller.compile(optimizer="sgd")
    x = _tokens([5, 3, 4], time=5)
    terms[0].beta = 0.7
    terms[1].skew = 0.05
    logs = _evaluate(distiller, x)
    path = str(tmp_path / "lm_divergences.keras")
    distiller.save(path)
    loaded = keras.saving.load_model(path)
    by_name = {term.name: term for term in loaded.terms}
    assert isinstance(by_name["jsd"], losses.GeneralizedJSD)
    np.testing.assert_allclose(float(_numpy(by_name["jsd"].beta)), 0.7, rtol=1e-7)
    np.testing.assert_allclose(float(_numpy(by_name["skew_reverse_kl"].skew)), 0.05, rtol=1e-6)
    reloaded = _evaluate(loaded, x)
    for key in ("jsd_loss", "skew_reverse_kl_loss", "reverse_kl_loss", "loss"):
        np.testing.assert_allclose(reloaded[key], logs[key], rtol=1e-6, err_msg=key)


def test_term_live_values_are_live_variables_a_scheduler_can_name():
    teacher, student = _pair()
    terms = [keras_kd.losses.GeneralizedJSD(beta=0.0), keras_kd.losses.SkewKL(skew=0.1)]
    distiller = keras_kd.Distiller(teacher, student, alpha=0.0, terms=terms)
    distiller.compile(optimizer="sgd")
    assert {"jsd_beta", "skew_kl_skew"} <= set(distiller.live_variables)
    with pytest.raises(ValueError, match=r"Argument `jsd_beta` must be in \[0, 1\]"):
        distiller.set_live_value("jsd_beta", 1.5)
    scheduler = keras_kd.callbacks.LiveValueScheduler(
        schedules={"jsd_beta": keras_kd.schedules.Linear(0.0, 1.0, 1), "skew_kl_skew": keras_kd.schedules.Constant(0.4)},
    )
    x = _tokens([5, 3, 6, 2], 6)
    distiller.fit(x, _next_tokens(x), epochs=2, batch_size=4, verbose=0, callbacks=[scheduler])
    assert float(_numpy(terms[0].beta)) == pytest.approx(1.0)
    assert float(_numpy(terms[1].skew)) == pytest.approx(0.4)
