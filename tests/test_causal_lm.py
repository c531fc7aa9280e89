"""keras-hub causal LM pairs, called as keras-hub users call them.

Tiny GPT-2 pairs built from config (tests/lm_models.py). Runs on TensorFlow
(with the suite) and on JAX (`make test-backends`, LM_JAX_TESTS). Proves: raw
strings and their preprocessed form give the same loss, equal to a float64
numpy reference over the real tokens; padding changes nothing; a
prompt/response dict leaves the prompt out; `generate` works after training;
save/load with one shared preprocessor or two keeps training identically and
generates the same tokens; bad pairs are refused before any step.
"""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_kd
from tests import lm_models

SPARSE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
TEMPERATURE = 2.0
ALPHA = 0.3


def _distiller(shared=True, **kwargs):
    teacher, student = lm_models.pair(shared=shared)
    distiller = keras_kd.Distiller(teacher, student, alpha=ALPHA, temperature=TEMPERATURE, **kwargs)
    return distiller.compile(optimizer=keras.optimizers.Adam(1e-2), loss=SPARSE)


@pytest.fixture(scope="module")
def evaluated():
    """One distiller for the tests that only evaluate (its step traced once)."""
    return _distiller()


def _log_softmax(z):
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _reference(teacher, student, x, y, sample_weight):
    """Float64 `(kl_loss, student_loss, loss)` as Keras reduces a weighted
    loss (`sum_over_batch_size`: the weighted sum over all positions), as
    `CausalLM.fit` reduces its own loss; padded positions weigh 0."""
    t = np.asarray(keras.ops.convert_to_numpy(teacher(x)), "float64")
    s = np.asarray(keras.ops.convert_to_numpy(student(x)), "float64")
    w = np.asarray(keras.ops.convert_to_numpy(sample_weight), "float64")
    p, q = _log_softmax(t / TEMPERATURE), _log_softmax(s / TEMPERATURE)
    kl = TEMPERATURE**2 * (np.exp(p) * (p - q)).sum(-1)
    labels = np.asarray(keras.ops.convert_to_numpy(y))
    ce = -np.take_along_axis(_log_softmax(s), labels[..., None], -1)[..., 0]
    kl_loss, ce_loss = (kl * w).sum() / w.size, (ce * w).sum() / w.size
    return kl_loss, ce_loss, ALPHA * ce_loss + (1 - ALPHA) * kl_loss


def test_raw_strings_and_their_preprocessed_form_give_the_reference_loss(evaluated):
    distiller = evaluated
    x, y, sample_weight = distiller.student.preprocessor(lm_models.TEXTS)
    from_strings = distiller.evaluate(lm_models.TEXTS, batch_size=8, return_dict=True, verbose=0)
    preprocessed = distiller.evaluate(x, y, sample_weight=sample_weight, batch_size=8, return_dict=True, verbose=0)
    kl, ce, total = _reference(distiller.teacher, distiller.student, x, y, sample_weight)
    for logs in (from_strings, preprocessed):
        np.testing.assert_allclose(logs["kl_loss"], kl, rtol=1e-4, atol=1e-7)
        np.testing.assert_allclose(logs["student_loss"], ce, rtol=1e-5)
        np.testing.assert_allclose(logs["loss"], total, rtol=1e-5)
    # About half the positions are padding here: averaging over them as if
    # they were tokens (keras.distillation) would give another number.
    assert np.asarray(sample_weight).mean() < 0.7


def test_token_ids_at_padded_positions_change_nothing(evaluated):
    distiller = evaluated
    x, y, sample_weight = distiller.student.preprocessor(lm_models.TEXTS)
    before = distiller.evaluate(x, y, sample_weight=sample_weight, batch_size=8, return_dict=True, verbose=0)
    padded = ~np.asarray(sample_weight, bool)
    garbage = dict(x, token_ids=np.where(padded, 7, np.asarray(x["token_ids"])))
    labels = np.where(padded, 3, np.asarray(y))
    after = distiller.evaluate(garbage, labels, sample_weight=sample_weight, batch_size=8, return_dict=True, verbose=0)
    for name in ("loss", "kl_loss", "student_loss"):
        np.testing.assert_allclose(after[name], before[name], rtol=1e-6)


def test_prompt_positions_can_be_left_out_with_a_per_token_weight(evaluated):
    distiller = evaluated
    x, y, sample_weight = distiller.student.preprocessor(lm_models.TEXTS)
    prompt_length = 2  # E.g. instruction data: only the response counts.
    response = np.asarray(sample_weight) & (np.arange(lm_models.SEQUENCE_LENGTH) >= prompt_length)
    logs = distiller.evaluate(x, y, sample_weight=response, batch_size=8, return_dict=True, verbose=0)
    kl, ce, total = _reference(distiller.teacher, distiller.student, x, y, response)
    np.testing.assert_allclose(logs["kl_loss"], kl, rtol=1e-4, atol=1e-7)
    np.testing.assert_allclose(logs["loss"], total, rtol=1e-5)
    everything = distiller.evaluate(x, y, sample_weight=sample_weight, batch_size=8, return_dict=True, verbose=0)
    assert abs(everything["kl_loss"] - logs["kl_loss"]) > 1e-3 * everything["kl_loss"]


def test_fit_on_strings_then_the_student_generates():
    distiller = _distiller()
    strings = tf.data.Dataset.from_tensor_slices(lm_models.TEXTS).batch(4)
    history = distiller.fit(strings, validation_data=strings, epochs=3, verbose=0).history
    assert history["loss"][-1] < history["loss"][0]
    assert {"val_loss", "val_kl_loss"} <= set(history)  # (+ skipped_steps where steps are checked)
    history = distiller.fit(lm_models.TEXTS, batch_size=4, validation_split=0.25, epochs=1, verbose=0).history
    assert np.isfinite(history["val_loss"][0])
    assert isinstance(distiller.student, keras_kd_causal_lm_class())
    generated = distiller.student.generate("a b", max_length=lm_models.SEQUENCE_LENGTH)
    assert isinstance(generated, str) and generated.startswith("a b")
    logits = distiller.predict(lm_models.TEXTS[:3], verbose=0)
    assert logits.shape == (3, lm_models.SEQUENCE_LENGTH, 10)


def keras_kd_causal_lm_class():
    import keras_hub

    return keras_hub.models.GPT2CausalLM


@pytest.mark.parametrize("shared", [True, False], ids=["one_preprocessor", "two_preprocessors"])
def test_save_load_keeps_training_identically_and_generates_the_same(shared, tmp_path):
    distiller = _distiller(shared=shared)
    distiller.fit(lm_models.TEXTS, batch_size=4, epochs=1, verbose=0, shuffle=False)
    path = os.path.join(tmp_path, "lm_distiller.keras")
    distiller.save(path)
    loaded = keras.saving.load_model(path)
    if shared:
        assert loaded.teacher.preprocessor is loaded.student.preprocessor
    for model in (distiller, loaded):
        model.fit(lm_models.TEXTS, batch_size=4, epochs=1, verbose=0, shuffle=False)
    for a, b in zip(distiller.student.weights, loaded.student.weights):
        np.testing.assert_allclose(keras.ops.convert_to_numpy(a), keras.ops.convert_to_numpy(b), atol=1e-6)
    assert loaded.student.generate("a b", max_length=8) == distiller.student.generate("a b", max_length=8)


def test_raw_strings_without_a_student_preprocessor_are_refused():
    teacher, _ = lm_models.pair()
    student = lm_models.gpt2(1, 8, 1, preprocessor_=None)
    distiller = keras_kd.Distiller(teacher, student, alpha=0.0).compile(optimizer="adam")
    with pytest.raises(ValueError, match=r"raw strings, but the student .* has no `preprocessor`"):
        distiller.fit(lm_models.TEXTS, epochs=1, verbose=0)


def test_an_unbatched_dataset_of_strings_is_refused_naming_batch():
    distiller = _distiller()
    with pytest.raises(ValueError, match=r"not batched.*dataset\.batch\(32\)"):
        distiller.fit(tf.data.Dataset.from_tensor_slices(lm_models.TEXTS), epochs=1, verbose=0)


def test_vocabularies_of_different_sizes_are_refused():
    teacher, _ = lm_models.pair()
    student = lm_models.gpt2(1, 8, 1, vocabulary_size=12)
    with pytest.raises(ValueError, match=r"teacher's vocabulary has 10 tokens and the student's 12"):
        keras_kd.Distiller(teacher, student)


def test_different_tokenizers_are_refused():
    teacher, _ = lm_models.pair()
    other = dict(lm_models.VOCABULARY)
    other["Ġab"], other["ab"] = other["ab"], other["Ġab"]  # Same size, other ids.
    student = lm_models.gpt2(1, 8, 1, lm_models.preprocessor(tokens=lm_models.tokenizer(other)))
    with pytest.raises(ValueError, match=r"different tokenizers .* teacher's tokenizer"):
        keras_kd.Distiller(teacher, student)


def test_a_student_sequence_longer_than_the_teacher_positions_is_refused():
    teacher = lm_models.gpt2(2, 16, 0, lm_models.preprocessor(), max_sequence_length=8)
    student = lm_models.gpt2(1, 8, 1, lm_models.preprocessor(sequence_length=12))
    with pytest.raises(ValueError, match=r"sequences of 12 tokens, longer than the teacher's max_sequence_length=8"):
        keras_kd.Distiller(teacher, student)


def test_a_teacher_that_is_not_a_causal_lm_is_allowed():
    _, student = lm_models.pair()
    token_ids = keras.Input((None,), dtype="int32", name="token_ids")
    padding_mask = keras.Input((None,), dtype="bool", name="padding_mask")
    hidden = keras.layers.Embedding(10, 8)(token_ids)
    teacher = keras.Model({"token_ids": token_ids, "padding_mask": padding_mask}, keras.layers.Dense(10)(hidden))
    distiller = keras_kd.Distiller(teacher, student, alpha=0.0).compile(optimizer="adam")
    history = distiller.fit(lm_models.TEXTS, batch_size=4, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"][0])


@pytest.mark.upstream
def test_keras_distillation_averages_over_padding_on_the_same_pair():
    """The peer ignores `sample_weight`: token ids at padded positions move
    both its losses (keras_kd's stay put, test above)."""
    teacher, student = lm_models.pair()
    x, y, sample_weight = student.preprocessor(lm_models.TEXTS)
    peer = keras.distillation.Distiller(
        teacher=teacher, student=student, student_loss_weight=ALPHA,
        distillation_losses=keras.distillation.LogitsDistillation(
            temperature=TEMPERATURE, loss=keras.losses.KLDivergence()
        ),
    )
    peer.compile(optimizer="adam", loss=SPARSE)
    padded = ~np.asarray(sample_weight, bool)
    garbage = dict(x, token_ids=np.where(padded, 7, np.asarray(x["token_ids"])))
    before = peer.evaluate(x, y, sample_weight=sample_weight, batch_size=8, return_dict=True, verbose=0)
    after = peer.evaluate(
        garbage, np.where(padded, 3, np.asarray(y)), sample_weight=sample_weight,
        batch_size=8, return_dict=True, verbose=0,
    )
    assert abs(after["distillation_loss"] / before["distillation_loss"] - 1) > 0.05
    assert abs(after["student_loss"] - before["student_loss"]) > 1e-3
