"""Sequence outputs (batch, time, classes): Keras masks and 2-D sample weights."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_kd
from tests import reference

VOCABULARY = 20
CLASSES = 5
SPARSE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _tagger(width, seed):
    """Token ids (0 = padding) -> per-token logits, with the padding mask."""
    keras.utils.set_random_seed(seed)
    ids = keras.Input((None,), dtype="int32")
    hidden = keras.layers.Embedding(VOCABULARY, width, mask_zero=True)(ids)
    hidden = keras.layers.Dense(width, activation="tanh")(hidden)
    return keras.Model(ids, keras.layers.Dense(CLASSES)(hidden))


def _batch(lengths, time, seed=0):
    rng = np.random.default_rng(seed)
    x = np.zeros((len(lengths), time), "int32")
    y = np.zeros((len(lengths), time), "int32")
    for row, length in enumerate(lengths):
        x[row, :length] = rng.integers(1, VOCABULARY, length)
        y[row, :length] = rng.integers(0, CLASSES, length)
    return x, y


def _distiller(temperature=2.0, alpha=0.3):
    distiller = keras_kd.Distiller(
        _tagger(16, 1), _tagger(8, 2), temperature=temperature, alpha=alpha,
        terms=[keras_kd.losses.KLDivergence(), keras_kd.losses.LogitMSE(weight=0.1)],
    )
    distiller.compile(
        optimizer=keras.optimizers.SGD(0.1), loss=SPARSE, weighted_metrics=["accuracy"]
    )
    return distiller


def _masked_mean(values, valid, weights):
    """Keras's reduction with a mask: Σ values·weights over valid / #valid."""
    return np.sum(np.where(valid, values * weights, 0.0)) / np.sum(valid)


@pytest.mark.parametrize("weighted", [False, True])
def test_sequence_loss_and_accuracy_match_numpy(weighted):
    x, y = _batch([7, 3, 5, 1, 6], time=7)
    valid = x != 0
    weights = (
        np.random.default_rng(5).uniform(0, 2, x.shape).astype("float32")
        if weighted else np.ones(x.shape, "float32")
    )
    distiller = _distiller()
    t = np.asarray(distiller.teacher(x), np.float64)
    s = np.asarray(distiller.student(x), np.float64)
    flat = lambda a: a.reshape((-1,) + a.shape[2:])  # noqa: E731
    kl = reference.kl(flat(t), flat(s), 2.0).reshape(x.shape)
    mse = reference.logit_mse(flat(t), flat(s)).reshape(x.shape)
    crossentropy = reference.sparse_crossentropy(flat(y), flat(s)).reshape(x.shape)
    expected = {
        "student_loss": _masked_mean(crossentropy, valid, weights),
        "kl_loss": _masked_mean(kl, valid, weights),
        "logit_mse_loss": _masked_mean(mse, valid, weights),
        "accuracy": _masked_mean(np.argmax(s, -1) == y, valid, weights) / _masked_mean(
            np.ones(x.shape), valid, weights),
    }
    expected["loss"] = 0.3 * expected["student_loss"] + 0.7 * (
        expected["kl_loss"] + 0.1 * expected["logit_mse_loss"])
    history = distiller.fit(
        x, y, sample_weight=weights if weighted else None, batch_size=len(x),
        epochs=1, verbose=0,
    )
    for key, value in expected.items():
        np.testing.assert_allclose(
            history.history[key][0], value, rtol=2e-5, atol=1e-7, err_msg=key)


def test_padded_batch_equals_the_same_sequences_unpadded():
    unpadded, y = _batch([4, 4, 4], time=4)
    padded = np.pad(unpadded, ((0, 0), (0, 5)))
    y_padded = np.pad(y, ((0, 0), (0, 5)), constant_values=CLASSES - 1)
    results = {}
    for name, (x, labels) in {"unpadded": (unpadded, y), "padded": (padded, y_padded)}.items():
        distiller = _distiller()
        logs = distiller.evaluate(x, labels, batch_size=3, verbose=0, return_dict=True)
        distiller.fit(x, labels, batch_size=3, epochs=1, verbose=0, shuffle=False)
        results[name] = logs, [w.numpy() for w in distiller.student.weights]
    for key in ("loss", "student_loss", "kl_loss", "logit_mse_loss", "accuracy"):
        np.testing.assert_allclose(
            results["padded"][0][key], results["unpadded"][0][key], rtol=1e-6, err_msg=key)
    # One training step from the same weights lands on the same weights.
    for after_padded, after_unpadded in zip(results["padded"][1], results["unpadded"][1]):
        np.testing.assert_allclose(after_padded, after_unpadded, rtol=1e-5, atol=1e-7)


def test_cached_sequence_logits_with_garbage_at_padded_positions():
    x, y = _batch([6, 2, 4, 6], time=6)
    distiller = _distiller()
    logits = np.asarray(distiller.teacher(x), "float32")
    garbage = logits.copy()
    garbage[x == 0] = np.nan  # What a cache may hold where there are no tokens.
    cached = keras_kd.TeacherCache.compute(distiller.teacher, x, verbose=0)
    np.testing.assert_allclose(np.asarray(cached.logits), logits, rtol=1e-6, atol=1e-6)
    attached = cached.attach(x)
    attached[keras_kd.cache.LOGITS_KEY] = garbage
    before = [w.numpy() for w in distiller.student.weights]
    logs = distiller.evaluate(attached, y, batch_size=4, verbose=0, return_dict=True)
    online = distiller.evaluate(x, y, batch_size=4, verbose=0, return_dict=True)
    np.testing.assert_allclose(logs["loss"], online["loss"], rtol=1e-6)
    history = distiller.fit(attached, y, batch_size=4, epochs=1, verbose=0)
    assert history.history["skipped_steps"] == [0.0]
    after = [w.numpy() for w in distiller.student.weights]
    assert all(np.all(np.isfinite(w)) for w in after)
    assert any(not np.array_equal(a, b) for a, b in zip(after, before))


def test_one_sample_weight_per_sequence_weighs_all_its_positions():
    x, y = _batch([5, 2, 4], time=5)
    per_sequence = np.asarray([0.5, 2.0, 1.0], "float32")
    per_position = np.repeat(per_sequence[:, None], x.shape[1], axis=1)
    losses = []
    for weights in (per_sequence, per_sequence[:, None], per_position, None):
        distiller = _distiller()
        history = distiller.fit(
            x, y, sample_weight=weights, batch_size=3, epochs=1, verbose=0)
        losses.append(history.history["loss"][0])
    np.testing.assert_allclose(losses[:3], [losses[2]] * 3, rtol=1e-6)
    assert abs(losses[2] - losses[3]) > 1e-3 * losses[3]  # The weights matter.


def test_a_per_example_feature_term_on_sequence_outputs_uses_mean_valid_weights():
    x, y = _batch([7, 3, 5, 1, 6], time=7)
    valid = x != 0
    weights = np.random.default_rng(6).uniform(0, 2, x.shape).astype("float32")
    teacher, student = _tagger(16, 1), _tagger(16, 2)
    name = lambda model: model.layers[1].name  # noqa: E731 - the Embedding.
    distiller = keras_kd.Distiller(
        teacher, student, alpha=0.0,
        terms=[keras_kd.losses.FeatureHint(name(teacher), name(student), adapter="none", name="hint")])
    embedded = [np.asarray(m.layers[1](x), np.float64) for m in (teacher, student)]
    # FeatureHint gives one value per example: the mean over time and width.
    per_example = ((embedded[0] - embedded[1]) ** 2).reshape(len(x), -1).mean(-1)
    example_weight = (weights * valid).sum(-1) / valid.sum(-1)
    distiller.compile(optimizer="sgd", loss=SPARSE)
    logs = distiller.evaluate(x, y, sample_weight=weights, verbose=0, return_dict=True)
    np.testing.assert_allclose(logs["hint_loss"], np.mean(per_example * example_weight), rtol=1e-5)


def test_sample_weights_of_changing_rank_retrace_cleanly():
    x, y = _batch([7, 3, 5, 1], time=7)
    weights = np.asarray([0.5, 2.0, 1.0, 0.0], "float32")
    distiller = _distiller()
    column = distiller.evaluate(x, y, sample_weight=weights[:, None], verbose=0, return_dict=True)
    flat = distiller.evaluate(x, y, sample_weight=weights, verbose=0, return_dict=True)
    plain = distiller.evaluate(x, y, verbose=0, return_dict=True)
    for key in ("loss", "kl_loss"):
        np.testing.assert_allclose(column[key], flat[key], rtol=1e-6)
        assert abs(flat[key] - plain[key]) > 1e-3 * plain[key]


def test_a_nonfinite_term_value_at_a_padded_position_counts_for_nothing():
    from keras_kd._step import reduction

    values = tf.constant([[1.0, 2.0, np.inf], [3.0, np.nan, 4.0]])
    mask = tf.constant([[True, True, False], [True, False, True]])
    assert float(reduction.reduce_term(values, None, mask)) == pytest.approx((1 + 2 + 3 + 4) / 4)
    weights = tf.constant([[1.0], [0.5]])
    expected = (1 + 2 + 0.5 * 3 + 0.5 * 4) / 4
    assert float(reduction.reduce_term(values, weights, mask)) == pytest.approx(expected)
