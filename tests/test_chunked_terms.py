"""The loss at vocabulary scale (issue #40): computed chunk by chunk of
positions from the final hidden states, it equals the unchunked loss.

Each test builds two Distillers over the same teacher and two students with
the same weights, one chunked (`chunk_size=3` over 8 positions: chunks of 3,
3 and 2) and one not (`chunk_size=None`), and takes one real training step of
each (`train_on_batch`, SGD with learning rate 1, so a weight's change is its
gradient): every logged loss part and every weight change agree. Padding and
a prompt left out by a per-token weight are in the batch. Pairs: a tied GPT-2,
an untied Llama and a Gemma with a soft-capped projection; the fallback to
full logits (with a warning naming the model) for a Gemma4 with
`final_logit_cap` and for a teacher that is not a CausalLM.

Runs on TensorFlow (with the suite) and on JAX (`make test-backends`).
"""

import warnings

import keras
import keras_hub
import numpy as np
import pytest

import keras_kd
from keras_kd import losses

VOCABULARY = 13
POSITIONS = 8
CHUNK = 3
WIDTH = 8
TEMPERATURE = 2.0
ALPHA = 0.3
RTOL, ATOL = 1e-5, 1e-6


def _gpt2(seed, layers=1, vocabulary=VOCABULARY):
    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.GPT2Backbone(
        vocabulary_size=vocabulary, num_layers=layers, num_heads=2, hidden_dim=WIDTH,
        intermediate_dim=2 * WIDTH, max_sequence_length=16, dropout=0.0,
    )
    return keras_hub.models.GPT2CausalLM(backbone, None)


def _llama(seed, layers=1):
    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.LlamaBackbone(
        vocabulary_size=VOCABULARY, num_layers=layers, num_query_heads=2, num_key_value_heads=1,
        hidden_dim=WIDTH, intermediate_dim=2 * WIDTH, tie_word_embeddings=False,
    )
    return keras_hub.models.LlamaCausalLM(backbone, None)


def _gemma(seed, layers=1):
    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.GemmaBackbone(
        vocabulary_size=VOCABULARY, num_layers=layers, num_query_heads=2, num_key_value_heads=1,
        hidden_dim=WIDTH, intermediate_dim=2 * WIDTH, head_dim=WIDTH // 2, final_logit_soft_cap=3.0,
    )
    return keras_hub.models.GemmaCausalLM(backbone, None)


FAMILIES = {"gpt2_tied": _gpt2, "llama_untied": _llama, "gemma_soft_capped": _gemma}
DIVERGENCES = {
    "forward_kl": losses.KLDivergence,
    "reverse_kl": losses.ReverseKL,
    "jsd": lambda: losses.GeneralizedJSD(beta=0.5),
    "skew_kl": lambda: losses.SkewKL(skew=0.1),
    "skew_reverse_kl": lambda: losses.SkewReverseKL(skew=0.1),
}


def _batch():
    """Token ids with padding (rows of 8, 6, 4 and 7 real tokens), next-token
    labels, and weights: 0 at padding, and at the first 2 (prompt) positions
    of the first two rows."""
    rng = np.random.default_rng(0)
    lengths = np.array([8, 6, 4, 7])
    mask = np.arange(POSITIONS)[None] < lengths[:, None]
    ids = np.where(mask, rng.integers(1, VOCABULARY, (4, POSITIONS)), 0).astype("int32")
    x = {"token_ids": ids, "padding_mask": mask.astype("int32")}
    y = np.concatenate([ids[:, 1:], np.zeros((4, 1), "int32")], axis=1)
    weights = mask.astype("float32")
    weights[:2, :2] = 0.0
    return x, y, weights


def _sharpened(model, factor):
    """`model` with its token embeddings scaled by `factor`: peaked, unlike
    the near-uniform distributions of a freshly initialized tiny LM."""
    for variable in model.backbone.token_embedding.trainable_variables:
        variable.assign(variable * factor)
    return model


def _twins(family, layers=2):
    """A teacher, and two students with the same weights."""
    teacher = _sharpened(FAMILIES[family](0, layers=layers), 40.0)
    students = _sharpened(FAMILIES[family](1), 20.0), FAMILIES[family](1)
    students[1].set_weights(students[0].get_weights())
    return teacher, students


def _step(teacher, student, chunk_size, term, **compile_kwargs):
    """One training step: the logs and each weight's change (its gradient)."""
    distiller = keras_kd.Distiller(
        teacher, student, temperature=TEMPERATURE, alpha=ALPHA, terms=[term], chunk_size=chunk_size,
    )
    distiller.compile(
        optimizer=keras.optimizers.SGD(1.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[keras.metrics.SparseCategoricalAccuracy("accuracy")], **compile_kwargs,
    )
    before = [keras.ops.convert_to_numpy(w) for w in student.trainable_weights]
    x, y, weights = _batch()
    logs = distiller.train_on_batch(x, y, sample_weight=weights, return_dict=True)
    after = [keras.ops.convert_to_numpy(w) for w in student.trainable_weights]
    return distiller, {k: float(v) for k, v in logs.items()}, [a - b for a, b in zip(after, before)]


def _assert_same_step(chunked, full):
    (distiller, logs, changes), (_, full_logs, full_changes) = chunked, full
    assert distiller.chunked
    assert set(logs) == set(full_logs)
    for key in full_logs:
        np.testing.assert_allclose(logs[key], full_logs[key], rtol=RTOL, atol=ATOL, err_msg=key)
    scale = max(float(np.abs(c).max()) for c in full_changes)
    for change, full_change in zip(changes, full_changes):
        np.testing.assert_allclose(change, full_change, rtol=RTOL, atol=ATOL * scale)
    assert scale > 0


@pytest.mark.parametrize("divergence", sorted(DIVERGENCES))
def test_every_divergence_chunked_equals_full_logits_on_a_tied_gpt2(divergence):
    teacher, (student, twin) = _twins("gpt2_tied")
    term = DIVERGENCES[divergence]
    _assert_same_step(_step(teacher, student, CHUNK, term()), _step(teacher, twin, None, term()))


@pytest.mark.parametrize("family", ["llama_untied", "gemma_soft_capped"])
def test_an_untied_and_a_soft_capped_projection_chunked_equal_full_logits(family):
    teacher, (student, twin) = _twins(family)
    _assert_same_step(
        _step(teacher, student, CHUNK, losses.KLDivergence()),
        _step(teacher, twin, None, losses.KLDivergence()),
    )


def test_chunked_under_xla_equals_full_logits():
    if keras.backend.backend() != "tensorflow":
        pytest.skip("JAX always compiles with XLA: the tests above cover it")
    teacher, (student, twin) = _twins("gpt2_tied")
    _assert_same_step(
        _step(teacher, student, CHUNK, losses.KLDivergence(), jit_compile=True),
        _step(teacher, twin, None, losses.KLDivergence(), jit_compile=True),
    )


def test_the_chunked_loss_is_the_float64_reference():
    """Independent of the unchunked path: Hinton's KL and the cross-entropy
    in float64 numpy over the weighted positions (Keras's reduction divides
    by all batch × positions)."""
    teacher, (student, _) = _twins("gpt2_tied")
    x, y, weights = _batch()
    t = np.asarray(keras.ops.convert_to_numpy(teacher(x)), "float64")
    s = np.asarray(keras.ops.convert_to_numpy(student(x)), "float64")
    _, logs, _ = _step(teacher, student, CHUNK, losses.KLDivergence())

    def log_softmax(z):
        z = z - z.max(-1, keepdims=True)
        return z - np.log(np.exp(z).sum(-1, keepdims=True))

    p, q = log_softmax(t / TEMPERATURE), log_softmax(s / TEMPERATURE)
    kl = TEMPERATURE**2 * (np.exp(p) * (p - q)).sum(-1)
    ce = -np.take_along_axis(log_softmax(s), y[..., None], -1)[..., 0]
    np.testing.assert_allclose(logs["kl_loss"], (kl * weights).sum() / weights.size, rtol=1e-5)
    np.testing.assert_allclose(logs["student_loss"], (ce * weights).sum() / weights.size, rtol=1e-5)


def test_metrics_are_accumulated_chunk_by_chunk():
    teacher, (student, twin) = _twins("gpt2_tied")
    x, y, weights = _batch()
    results = []
    for model, chunk_size in ((student, CHUNK), (twin, None)):
        distiller = keras_kd.Distiller(teacher, model, alpha=ALPHA, chunk_size=chunk_size)
        distiller.compile(
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            metrics=[keras.metrics.SparseCategoricalAccuracy("accuracy"),
                     keras.metrics.SparseCategoricalCrossentropy("cross_entropy", from_logits=True)],
        )
        results.append(distiller.evaluate(x, y, sample_weight=weights, batch_size=2, return_dict=True, verbose=0))
    assert results[0].keys() == results[1].keys()
    for key in results[1]:
        np.testing.assert_allclose(results[0][key], results[1][key], rtol=RTOL, err_msg=key)


def _gemma4(seed):
    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.Gemma4Backbone(
        vocabulary_size=VOCABULARY, image_size=None, num_layers=1, num_query_heads=2,
        num_key_value_heads=1, hidden_dim=WIDTH, intermediate_dim=2 * WIDTH, head_dim=WIDTH // 2,
    )
    return keras_hub.models.Gemma4CausalLM(None, backbone, final_logit_cap=2.0, name="capped_gemma4")


def test_a_cap_after_the_projection_falls_back_to_full_logits_naming_the_model():
    with pytest.warns(UserWarning, match="capped_gemma4.*otherwise than"):
        distiller = keras_kd.Distiller(_gemma4(0), _gemma4(1), chunk_size=CHUNK)
    assert not distiller.chunked


def test_a_teacher_that_is_not_a_causal_lm_falls_back_to_full_logits():
    ids = keras.Input((None,), dtype="int32", name="token_ids")
    mask = keras.Input((None,), dtype="int32", name="padding_mask")
    logits = keras.layers.Dense(VOCABULARY)(keras.layers.Embedding(VOCABULARY, WIDTH)(ids))
    teacher = keras.Model({"token_ids": ids, "padding_mask": mask}, logits, name="plain_teacher")
    with pytest.warns(UserWarning, match="plain_teacher.*not a keras-hub CausalLM"):
        distiller = keras_kd.Distiller(teacher, _gpt2(1), chunk_size=CHUNK)
    assert not distiller.chunked
    x, y, weights = _batch()
    distiller.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    assert np.isfinite(distiller.train_on_batch(x, y, sample_weight=weights, return_dict=True)["loss"])


def test_auto_chunks_from_the_threshold_vocabulary_only():
    large = keras_kd._step.chunked_terms.AUTO_MIN_VOCABULARY
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        assert not keras_kd.Distiller(_gpt2(0), _gpt2(1)).chunked
        assert keras_kd.Distiller(_gpt2(0, vocabulary=large), _gpt2(1, vocabulary=large)).chunked
    assert not keras_kd.Distiller(_gpt2(0), _gpt2(1), chunk_size=None).chunked


@pytest.mark.parametrize("chunk_size", [0, -2, 1.5, "big", True])
def test_a_wrong_chunk_size_is_refused_naming_the_argument(chunk_size):
    with pytest.raises(ValueError, match=r"Argument `chunk_size` must be .*Received: chunk_size="):
        keras_kd.Distiller(_gpt2(0), _gpt2(1), chunk_size=chunk_size)


def test_the_chunk_size_is_saved_in_the_config():
    distiller = keras_kd.Distiller(_gpt2(0), _gpt2(1), chunk_size=CHUNK)
    restored = keras_kd.Distiller.from_config(distiller.get_config())
    assert restored.chunk_size == CHUNK and restored.chunked
