"""
Title: A 10x smaller tweet language model, distilled, against the same model from scratch
Description: Train a 3.25M-parameter Gemma causal LM on tweets (SentencePiece
tokenizer trained in-process, no preset), distil it into a 330k-parameter
Gemma student with keras_kd's forward KL, reverse KL, generalized JSD and skew
KL and with Keras's own `keras.distillation`, compare each against the same
student trained from scratch under one protocol (same epoch cap, early stopping
on validation perplexity, as many tuning trials), test the gain per held-out
tweet, and run the best student as a float32 and two int8 `.tflite` files.

    python examples/lm_distillation.py --text-dir ../shared/text

(`make` exports `KERAS_KD_TEXT_DIR`, which stands for `--text-dir`.) The run
is resumable: every training's result is written as soon as it finishes, to
`progress.json` in the work folder and to `--results`; run the same command
again and it skips what is done. `--tiny` runs every step on a few hundred
tweets in about two minutes, without XLA (CI does). It needs the `[text]`
and `[litert]` extras.
"""

"""
## Setup
"""

import argparse
import contextlib
import functools
import hashlib
import inspect
import io
import json
import math
import os
import re
import shutil
import sys
import time

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

# Every step allocates vocabulary-sized buffers (32 x 48 x 4,000 float32 is
# 24.5 MB; XLA's temporary buffer for a whole step is larger). glibc's malloc
# maps each large one from the kernel and unmaps it when freed, so the next
# step page-faults it in again: in this run's keras.distillation training, 3.0
# million page faults in 20 s and 27% of the process's CPU time in the kernel.
# Keeping freed memory in the heap (one arena, never mmap, trim above 2 GB)
# stops that: no faults in 20 s, 1% in the kernel. It changes no number, only
# where memory comes from. glibc reads it at start-up, hence the restart;
# `KERAS_KD_KEEP_MALLOC=1` (or any `GLIBC_TUNABLES` of your own) skips it.
if (sys.platform.startswith("linux") and "GLIBC_TUNABLES" not in os.environ
        and os.environ.get("KERAS_KD_KEEP_MALLOC") != "1"):
    os.environ["GLIBC_TUNABLES"] = ("glibc.malloc.mmap_threshold=33554432:"
                                    "glibc.malloc.trim_threshold=2147483648:glibc.malloc.arena_max=1:"
                                    "glibc.malloc.mmap_max=0")
    os.execv(sys.executable, [sys.executable] + sys.argv)

import keras
import keras_hub
import numpy as np
import sentencepiece
import tensorflow as tf

import keras_kd
import tweet_teacher  # The tweet corpus's reader and folder lookup.

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SEQUENCE_LENGTH = 48
BATCH_SIZE = 32
EVALUATION_BATCH_SIZE = 128
VALIDATION_TWEETS = 2_000
SPLIT_SEED = 0
TEACHER = dict(vocabulary_size=4_000, num_layers=4, num_query_heads=4, num_key_value_heads=1,
               hidden_dim=256, intermediate_dim=1_024, head_dim=64)
STUDENT = dict(vocabulary_size=4_000, num_layers=2, num_query_heads=2, num_key_value_heads=1,
               hidden_dim=64, intermediate_dim=256, head_dim=32)
TEACHER_LEARNING_RATE = 2e-3
WARMUP_FRACTION = 0.02  # Of each training's steps, then cosine decay to 0 at the epoch cap.
PATIENCE = 2  # Epochs without a lower validation perplexity before stopping.
TEMPERATURE = 1.0  # keras_kd rows; keras.distillation keeps its own defaults.
ALPHA = 0.1
# The tuning grid: every row's trials are drawn from it, scratch's too.
TRIALS = (
    {"learning_rate": 1e-3, "dropout": 0.0},
    {"learning_rate": 3e-3, "dropout": 0.0},
    {"learning_rate": 3e-3, "dropout": 0.1},
)
PROMPTS = ("I love", "The flight was", "My new iPhone")
# (name, file, quantization, float_ops). Full-integer int8 three times: as the
# converter makes it, then with ops that int8 cannot hold kept in float32
# (`keras_kd.export_tflite(float_ops=...)`): the RMS normalizations' division,
# then also the attention scores' path (their mask's -1e9 sets their int8 scale).
ATTENTION_SCORE_OPS = ("BATCH_MATMUL", "RESHAPE", "SELECT_V2", "SOFTMAX")
LITERT_FORMATS = (
    ("float32", "float32", None, None),
    ("dynamic-range int8", "dynamic", "dynamic", None),
    ("full-integer int8", "int8", "int8", None),
    ("full-integer int8, division in float", "int8_div_float", "int8", ("DIV",)),
    ("full-integer int8, division and attention scores in float", "int8_div_attention_float", "int8",
     ("DIV", *ATTENTION_SCORE_OPS)),
)
LATENCY_RUNS = 100
TINY = dict(train_examples=300, validation_examples=100, test_examples=100, vocabulary_size=300,
            teacher_epochs=1, epochs=1, seeds=1, litert_examples=100,
            teacher=dict(num_layers=1, num_query_heads=2, num_key_value_heads=1, hidden_dim=32,
                         intermediate_dim=64, head_dim=16),
            student=dict(num_layers=1, num_query_heads=1, num_key_value_heads=1, hidden_dim=16,
                         intermediate_dim=32, head_dim=16))

parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
parser.add_argument("--text-dir", help="folder of tweet_sentiment_{train,test}.csv "
                    "(default: $KERAS_KD_TEXT_DIR)")
parser.add_argument("--work-dir", help="tokenizer, teacher, students, progress.json, .tflite files "
                    "(default: artifacts/lm_distillation, or artifacts/lm_distillation_tiny with --tiny)")
parser.add_argument("--results", help="results JSON; the table goes beside it as .md "
                    "(default: results/lm_distillation.json, or <work-dir>/lm_distillation.json with --tiny)")
parser.add_argument("--teacher-epochs", type=int, default=8, help="the teacher's epoch cap")
parser.add_argument("--epochs", type=int, default=5, help="every student row's epoch cap")
parser.add_argument("--seeds", type=int, default=3,
                    help="seeds for scratch, forward_kl and the best other divergence")
parser.add_argument("--train-examples", type=int, help="use only N training tweets (default: all)")
parser.add_argument("--test-examples", type=int, help="use only the first N test tweets (default: all)")
parser.add_argument("--validation-examples", type=int, default=VALIDATION_TWEETS,
                    help="training tweets held out to choose settings and stop trainings")
parser.add_argument("--vocabulary-size", type=int, default=TEACHER["vocabulary_size"],
                    help="SentencePiece pieces (the models' vocabulary)")
parser.add_argument("--litert-examples", type=int, default=500,
                    help="test tweets the .tflite files are measured on")
parser.add_argument("--retrain-teacher", action="store_true",
                    help="train the tokenizer's teacher again (and forget the students of the old one)")
parser.add_argument("--no-xla", action="store_true",
                    help="train without XLA (by default every row's step is compiled with jit_compile=True)")
parser.add_argument("--live-teacher", action="store_true",
                    help="run the teacher every step in the keras_kd rows instead of reading its cached logits")
parser.add_argument("--tiny", action="store_true", help="every step on a few hundred tweets (CI)")
if parser.parse_known_args()[0].tiny:  # Tiny defaults; flags given still win.
    parser.set_defaults(**{name: value for name, value in TINY.items() if name not in ("teacher", "student")})
args = parser.parse_args()
text_dir = tweet_teacher.text_dir_from(args.text_dir)
teacher_config, student_config = dict(TEACHER), dict(STUDENT)
if args.tiny:
    teacher_config.update(TINY["teacher"])
    student_config.update(TINY["student"])
for name in ("teacher_epochs", "epochs", "seeds", "validation_examples", "vocabulary_size",
             "litert_examples", "train_examples", "test_examples"):
    if getattr(args, name) is not None and getattr(args, name) < 1:
        raise SystemExit(f"Argument `--{name.replace('_', '-')}` must be >= 1. "
                         f"Received: {getattr(args, name)}")
teacher_config["vocabulary_size"] = student_config["vocabulary_size"] = args.vocabulary_size
work_dir = os.path.abspath(args.work_dir or os.path.join(
    ROOT, "artifacts", "lm_distillation_tiny" if args.tiny else "lm_distillation"))
results_path = os.path.abspath(args.results or (
    os.path.join(work_dir, "lm_distillation.json") if args.tiny
    else os.path.join(ROOT, "results", "lm_distillation.json")))
for folder in (work_dir, os.path.join(work_dir, "students"), os.path.join(work_dir, "nll"),
               os.path.join(work_dir, "litert"), os.path.dirname(results_path)):
    os.makedirs(folder, exist_ok=True)
# The same for every row: XLA changes the speed, not what is compared. Off in
# --tiny, where compiling each training's step would take longer than it runs.
xla = not (args.no_xla or args.tiny)
started = time.time()


def write_json(path, value):
    """Writes `value` as JSON through a temporary file, so `path` is always whole."""
    temporary = f"{path}.tmp"
    with open(temporary, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=1, sort_keys=True)
    os.replace(temporary, path)


def read_json(path, default=None):
    if not os.path.isfile(path):
        return default
    with open(path, encoding="utf-8") as f:
        return json.load(f)


"""
## The tweets: train, a validation split carved from it, and the held-out test file

Only the `text` column is used. The validation tweets choose every setting and
stop every training; the test file is read for the table only.
"""

train_texts, _ = tweet_teacher.read_tweets(os.path.join(text_dir, "tweet_sentiment_train.csv"))
test_texts, _ = tweet_teacher.read_tweets(os.path.join(text_dir, "tweet_sentiment_test.csv"))
order = np.random.default_rng(SPLIT_SEED).permutation(len(train_texts))
validation_texts = [train_texts[i] for i in order[: args.validation_examples]]
train_texts = [train_texts[i] for i in order[args.validation_examples:]][: args.train_examples]
test_texts = test_texts[: args.test_examples]

settings = {
    "train_tweets": len(train_texts), "validation_tweets": len(validation_texts),
    "test_tweets": len(test_texts), "sequence_length": SEQUENCE_LENGTH, "batch_size": BATCH_SIZE,
    "teacher": teacher_config, "student": student_config, "teacher_epochs": args.teacher_epochs,
    "teacher_learning_rate": TEACHER_LEARNING_RATE, "epochs": args.epochs, "seeds": args.seeds,
    "patience": PATIENCE, "warmup_fraction": WARMUP_FRACTION, "temperature": TEMPERATURE,
    "alpha": ALPHA, "trials": list(TRIALS), "split_seed": SPLIT_SEED,
    "litert_examples": min(args.litert_examples, len(test_texts)),
}
settings_path = os.path.join(work_dir, "settings.json")
previous = read_json(settings_path)
if previous is not None and previous != settings:
    changed = sorted(k for k in set(settings) | set(previous) if settings.get(k) != previous.get(k))
    raise SystemExit(
        f"The work folder {work_dir} was made with other settings ({', '.join(changed)} differ): "
        "its tokenizer, teacher and students belong to those. Pass another --work-dir, or delete "
        "that folder to start over.")
write_json(settings_path, settings)
print(f"{len(train_texts):,} training tweets, {len(validation_texts):,} validation, "
      f"{len(test_texts):,} test; work folder {work_dir}")

"""
## A SentencePiece tokenizer trained in-process, for `GemmaTokenizer`

Trained on the training tweets only, with the special pieces `GemmaTokenizer`
needs (`<pad>` = 0, so a padded position is a 0 token id). It is trained once
and saved in the work folder beside the teacher: the teacher is only valid
with it.
"""

proto_path = os.path.join(work_dir, "tokenizer.proto")
if not os.path.isfile(proto_path):
    model = io.BytesIO()
    sentencepiece.SentencePieceTrainer.train(
        sentence_iterator=iter(train_texts), model_writer=model, vocab_size=args.vocabulary_size,
        pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>", eos_piece="<eos>",
        bos_piece="<bos>", unk_piece="<unk>",
        user_defined_symbols=["<start_of_turn>", "<end_of_turn>"],
        model_type="unigram", character_coverage=0.9995, num_threads=2, minloglevel=2,
    )
    with open(f"{proto_path}.tmp", "wb") as f:
        f.write(model.getvalue())
    os.replace(f"{proto_path}.tmp", proto_path)
    print(f"Tokenizer: SentencePiece, {args.vocabulary_size} pieces, trained on the training tweets")
with open(proto_path, "rb") as f:
    proto = f.read()
tokenizer = keras_hub.models.GemmaTokenizer(proto=proto)
preprocessor = keras_hub.models.GemmaCausalLMPreprocessor(tokenizer, sequence_length=SEQUENCE_LENGTH)


def preprocess(texts):
    """The preprocessor's `(x, y, sample_weight)` for `texts`, as numpy arrays.

    Args:
        texts: A list of strings.

    Returns:
        `({"token_ids", "padding_mask"}, y, sample_weight)`; `sample_weight`
        is float32, 0 at padded positions.
    """
    parts = [preprocessor(tf.constant(texts[i: i + 1024])) for i in range(0, len(texts), 1024)]
    x = {key: np.concatenate([np.asarray(p[0][key]) for p in parts])
         for key in ("token_ids", "padding_mask")}
    y = np.concatenate([np.asarray(p[1]) for p in parts])
    weight = np.concatenate([np.asarray(p[2]) for p in parts]).astype("float32")
    return x, y, weight


train_data, validation_data, test_data = (preprocess(t) for t in (train_texts, validation_texts, test_texts))
settings["train_tokens"] = int(train_data[2].sum())
print(f"{settings['train_tokens']:,} real target tokens in the training tweets "
      f"({train_data[2].mean():.0%} of the positions)")


def batches(data, seed=None):
    """Batches of `data`, reshuffled each epoch when `seed` is given."""
    dataset = tf.data.Dataset.from_tensor_slices(data)
    if seed is not None:
        dataset = dataset.shuffle(len(data[1]), seed=seed, reshuffle_each_iteration=True)
    return dataset.batch(BATCH_SIZE).prefetch(tf.data.AUTOTUNE)


"""
## Measurements: perplexity, next-token accuracy, NLL per held-out tweet

Perplexity is `exp` of the mean negative log-likelihood over the real target
tokens (weights = the preprocessor's `sample_weight`), pooled over all tweets.
The log-softmax is taken in float32 batch by batch, the sums in float64; no
more than one batch of logits is held.
"""


def token_scores(logits, y):
    """Per-position NLL of `y` and whether the arg-max logit is `y`."""
    log_probs = keras.ops.log_softmax(keras.ops.cast(logits, "float32"), axis=-1)
    nll = -keras.ops.take_along_axis(log_probs, keras.ops.expand_dims(y, -1), axis=-1)[..., 0]
    return nll, keras.ops.equal(keras.ops.cast(keras.ops.argmax(logits, -1), "int32"), y)


class Scores:
    """Token statistics accumulated in float64, per tweet and pooled."""

    def __init__(self):
        self.nll, self.hits, self.tokens, self.per_sequence = 0.0, 0.0, 0.0, []

    def add(self, nll, hits, weight):
        weight = np.asarray(weight, "float64")
        per_token = np.asarray(nll, "float64") * weight
        self.nll += per_token.sum()
        self.hits += (np.asarray(hits, "float64") * weight).sum()
        self.tokens += weight.sum()
        self.per_sequence.append(per_token.sum(1) / np.maximum(weight.sum(1), 1.0))

    def summary(self):
        return {"perplexity": math.exp(self.nll / self.tokens), "accuracy": self.hits / self.tokens,
                "tokens": int(self.tokens)}


def scorer(model):
    """`token_scores` of `model`'s logits, as one traced function."""
    ids = tf.TensorSpec((None, None), tf.int32)
    return tf.function(
        lambda x, y: token_scores(model(x, training=False), y),
        input_signature=[{"token_ids": ids, "padding_mask": tf.TensorSpec((None, None), tf.bool)}, ids],
    )


def measure(model, data, per_sequence=False, scores_of=None):
    """Perplexity and next-token accuracy of a CausalLM on preprocessed `data`.

    Args:
        model: A `CausalLM` (or any model mapping `{"token_ids",
            "padding_mask"}` to logits).
        data: `(x, y, sample_weight)` numpy arrays.
        per_sequence: Bool, also return each tweet's mean NLL. Defaults to
            `False`.
        scores_of: `scorer(model)`, to reuse its trace. Defaults to `None`:
            a new one.

    Returns:
        A dict with `perplexity`, `accuracy` and `tokens`, and
        `per_sequence` (a float64 array) when asked.
    """
    scores_of = scores_of or scorer(model)
    x, y, weight = data
    scores = Scores()
    for start in range(0, len(y), EVALUATION_BATCH_SIZE):
        part = slice(start, start + EVALUATION_BATCH_SIZE)
        nll, hits = scores_of({key: value[part] for key, value in x.items()}, y[part])
        scores.add(nll, hits, weight[part])
    result = scores.summary()
    if per_sequence:
        result["per_sequence"] = np.concatenate(scores.per_sequence)
    return result


class ValidationPerplexity(keras.callbacks.Callback):
    """Puts the student's validation perplexity in each epoch's logs.

    `EarlyStopping(monitor="val_perplexity")` placed after it stops on it;
    every row, whatever trains it, is stopped on the same number.

    Args:
        student: The model whose perplexity is measured.
        data: Validation `(x, y, sample_weight)` numpy arrays.
    """

    def __init__(self, student, data):
        super().__init__()
        self.student, self.data, self.history = student, data, []
        self.scores_of = scorer(student)

    def on_epoch_end(self, epoch, logs=None):
        perplexity = measure(self.student, self.data, scores_of=self.scores_of)["perplexity"]
        self.history.append(perplexity)
        if logs is not None:
            logs["val_perplexity"] = perplexity
        print(f"    epoch {epoch + 1}: validation perplexity {perplexity:.2f}", flush=True)


"""
## Models from config, and one training recipe

AdamW with a short linear warm-up and cosine decay to 0 at the epoch cap;
early stopping on validation perplexity, restoring the best epoch's weights.
"""


def causal_lm(config, seed, dropout=0.0):
    """A `GemmaCausalLM` from `config` sharing the tokenizer's preprocessor."""
    keras.utils.set_random_seed(seed)
    backbone = keras_hub.models.GemmaBackbone(**config, dropout=dropout)
    return keras_hub.models.GemmaCausalLM(backbone, preprocessor)


def optimizer(learning_rate, epochs):
    steps = epochs * math.ceil(len(train_data[1]) / BATCH_SIZE)
    warmup = max(1, int(WARMUP_FRACTION * steps))
    schedule = keras.optimizers.schedules.CosineDecay(
        0.0, steps - warmup, warmup_target=learning_rate, warmup_steps=warmup)
    return keras.optimizers.AdamW(schedule)


@contextlib.contextmanager
def without_preprocessor(lm):
    """`CausalLM.fit` preprocesses what it gets; these batches already are."""
    lm.preprocessor = None
    try:
        yield lm
    finally:
        lm.preprocessor = preprocessor


def fit(model, student, epochs, seed, train_batches=None):
    """Trains `model` (the student itself or a distiller around it) with early
    stopping on the student's validation perplexity.

    Args:
        train_batches: Optional function of the seed returning the training
            batches. Defaults to `batches(train_data, seed)`.

    Returns:
        A dict: `epochs_run`, `best_epoch`, `validation_history`, `wall_s`.
    """
    validation = ValidationPerplexity(student, validation_data)
    stopping = keras.callbacks.EarlyStopping(
        monitor="val_perplexity", mode="min", patience=PATIENCE, restore_best_weights=True)
    keras.utils.set_random_seed(seed)
    start = time.perf_counter()
    data = train_batches(seed) if train_batches else batches(train_data, seed=seed)
    model.fit(data, epochs=epochs, callbacks=[validation, stopping], verbose=0)
    history = validation.history
    return {"epochs_run": len(history), "best_epoch": int(np.argmin(history)) + 1,
            "validation_history": history, "wall_s": time.perf_counter() - start}


sparse = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

"""
## The teacher: trained once, saved with its tokenizer's fingerprint

The fingerprint is the sha256 of the tokenizer proto, the weights file and
the teacher's config. A teacher whose fingerprint does not match is refused
(`--retrain-teacher` trains it again).
"""

teacher_weights = os.path.join(work_dir, "teacher.weights.h5")
fingerprint_path = os.path.join(work_dir, "teacher.fingerprint.json")
progress_path = os.path.join(work_dir, "progress.json")


def fingerprint():
    digest = hashlib.sha256(proto)
    with open(teacher_weights, "rb") as f:
        digest.update(f.read())
    digest.update(json.dumps(teacher_config, sort_keys=True).encode())
    return digest.hexdigest()


if args.retrain_teacher:
    for path in (teacher_weights, fingerprint_path, progress_path):
        if os.path.exists(path):
            os.remove(path)
    for folder in ("students", "nll"):  # Distilled from the old teacher.
        shutil.rmtree(os.path.join(work_dir, folder))
        os.makedirs(os.path.join(work_dir, folder))
progress = read_json(progress_path, {"trainings": {}})
for record in progress["trainings"].values():  # Trained before the cache existed: a live teacher.
    record.setdefault("teacher_logits", None if record["row"] == "scratch" else "live")
teacher = causal_lm(teacher_config, seed=0)
if os.path.isfile(teacher_weights) and os.path.isfile(fingerprint_path):
    saved = read_json(fingerprint_path)
    if saved["sha256"] != fingerprint():
        raise SystemExit(
            f"The teacher in {work_dir} does not match its tokenizer: the sha256 of tokenizer.proto, "
            f"teacher.weights.h5 and the teacher's config is {fingerprint()}, its fingerprint file "
            f"says {saved['sha256']}. A teacher is only valid with the tokenizer it was trained "
            "with: restore those files, or pass --retrain-teacher to train it again.")
    teacher.backbone.load_weights(teacher_weights)
    print(f"teacher: loaded from {teacher_weights} (fingerprint matches its tokenizer)")
else:
    print(f"teacher: {teacher.count_params():,} parameters, training for up to "
          f"{args.teacher_epochs} epochs", flush=True)
    teacher.compile(optimizer=optimizer(TEACHER_LEARNING_RATE, args.teacher_epochs), loss=sparse,
                    weighted_metrics=[], jit_compile=xla)
    with without_preprocessor(teacher):
        record = fit(teacher, teacher, args.teacher_epochs, seed=0)
    teacher.backbone.save_weights(teacher_weights)
    write_json(fingerprint_path, {"sha256": fingerprint(),
                                  "of": "tokenizer.proto + teacher.weights.h5 + teacher config"})
    progress = {"teacher": record, "trainings": {}}  # Students of an older teacher are void.
    write_json(progress_path, progress)
teacher.trainable = False
teacher_scores = measure(teacher, test_data)
progress["teacher"] = dict(progress.get("teacher", {}), parameters=teacher.count_params(),
                           validation_perplexity=measure(teacher, validation_data)["perplexity"],
                           test_perplexity=teacher_scores["perplexity"],
                           test_accuracy=teacher_scores["accuracy"])
print(f"teacher: validation perplexity {progress['teacher']['validation_perplexity']:.2f}, "
      f"test perplexity {teacher_scores['perplexity']:.2f}")

"""
## The teacher's logits, computed once

The training tweets are the same every epoch (no augmentation) and the teacher
is frozen, so its logits are too: `keras_kd.TeacherCache` runs it once over
them and writes its raw logits to a `.npy` file in the work folder (tweets ×
48 × vocabulary, float32: 22.7 GB at full size). The keras_kd rows then read
each batch's logits instead of running the teacher; `keras.distillation` has
no such path, its teacher runs every step. `TeacherCache.attach_batched`
shuffles the tweets' row numbers exactly as `batches` shuffles the tweets (a
`shuffle`'s order depends on its seed and size only), so the cached rows see
the same tweets in the same order as the others, and it reads each batch's
rows from the file with one `pread` per row: through a memory map, random rows
of a file bigger than free memory fault in page by page, and that left the
cached training no faster than the live teacher. With `pread` and the malloc
setting above, a cached forward-KL training at the chosen setting took
544-583 s in the full run (3 seeds), and keras.distillation
with its live teacher 949 s. `--live-teacher` runs the
teacher every step instead.
"""


@functools.cache
def teacher_cache():
    """The `TeacherCache` of the training tweets, computed on first use."""
    path = os.path.join(work_dir, f"teacher_logits.{fingerprint()[:16]}.npy")
    if os.path.isfile(path + ".json"):
        return keras_kd.TeacherCache.load(path)
    for name in os.listdir(work_dir):  # An older teacher's logits, or a killed run's half.
        if name.startswith(("teacher_logits.", ".teacher_logits.")):
            os.remove(os.path.join(work_dir, name))
    start = time.perf_counter()
    cache = keras_kd.TeacherCache.compute(teacher, tf.data.Dataset.from_tensor_slices(train_data[0]),
                                          batch_size=EVALUATION_BATCH_SIZE, path=path, verbose=0)
    progress["teacher_cache"] = {"wall_s": time.perf_counter() - start,
                                 "bytes": os.path.getsize(path), "path": os.path.basename(path)}
    save_progress()
    print(f"teacher logits cached in {progress['teacher_cache']['wall_s']:.0f} s "
          f"({progress['teacher_cache']['bytes'] / 1e9:.1f} GB)", flush=True)
    return cache


def cached_batches(seed):
    """`batches(train_data, seed)` with each batch's teacher logits attached.

    `attach_batched` checks the tweets' fingerprint against the cache's and
    shuffles row numbers like `batches` shuffles tweets; one batch of a copy
    is then checked against the live teacher (iterating the dataset `fit`
    gets would move its shuffle on an epoch).
    """
    def dataset():
        return teacher_cache().attach_batched(
            tf.data.Dataset.from_tensor_slices(train_data), BATCH_SIZE, shuffle_seed=seed
        ).prefetch(tf.data.AUTOTUNE)

    attached, _, _ = next(iter(dataset()))
    live = np.asarray(teacher(attached[keras_kd.data.batch_format.INPUTS_KEY], training=False))
    difference = float(np.abs(live - np.asarray(attached[keras_kd.data.batch_format.LOGITS_KEY])).max())
    if difference > 1e-3:
        raise SystemExit(f"The cached teacher logits do not match the teacher on a training batch "
                         f"(max |difference| {difference:.3g}): delete {teacher_cache().path} and rerun.")
    return dataset()


"""
## The rows: one student, six ways of training it

Each row builds what `fit` trains around the same student: the student
itself (`CausalLM.fit` on the labels), a `keras_kd.Distiller` with one
divergence, or `keras.distillation.Distiller` with its defaults
(`LogitsDistillation()`, `student_loss_weight`). All train on the same
preprocessed batches, in the same order for the same seed.
"""


def scratch(student, learning_rate):
    student.compile(optimizer=optimizer(learning_rate, args.epochs), loss=sparse, weighted_metrics=[],
                    jit_compile=xla)
    return student


def keras_kd_row(term):
    def build(student, learning_rate):
        distiller = keras_kd.Distiller(teacher, student, temperature=TEMPERATURE, alpha=ALPHA,
                                       terms=[term()])
        distiller.compile(optimizer=optimizer(learning_rate, args.epochs), loss=sparse, jit_compile=xla)
        return distiller
    return build


# Keras's defaults, read from its signatures for the table.
KERAS_DEFAULTS = {name: parameter.default for cls in (keras.distillation.Distiller,
                  keras.distillation.LogitsDistillation)
                  for name, parameter in inspect.signature(cls).parameters.items()
                  if name in ("student_loss_weight", "temperature", "loss")}


def keras_distillation(student, learning_rate):
    distiller = keras.distillation.Distiller(
        teacher=teacher, student=student, distillation_losses=keras.distillation.LogitsDistillation())
    distiller.compile(optimizer=optimizer(learning_rate, args.epochs), loss=sparse, jit_compile=xla)
    return distiller


ROWS = {
    "scratch": scratch,
    "forward_kl": keras_kd_row(keras_kd.losses.KLDivergence),
    "reverse_kl": keras_kd_row(keras_kd.losses.ReverseKL),
    "jsd": keras_kd_row(lambda: keras_kd.losses.GeneralizedJSD(beta=0.5)),
    "skew_kl": keras_kd_row(lambda: keras_kd.losses.SkewKL(skew=0.1)),
    "keras_distillation": keras_distillation,
}
OTHER_DIVERGENCES = ("reverse_kl", "jsd", "skew_kl")
KERAS_KD_ROWS = ("forward_kl", *OTHER_DIVERGENCES)


def key_of(row, trial, seed):
    return f"{row}-seed{seed}-lr{trial['learning_rate']:g}-dropout{trial['dropout']:g}"


def student_from(key, trial, seed):
    """The trained student of training `key`, loaded from the work folder."""
    student = causal_lm(student_config, seed, trial["dropout"])
    student.backbone.load_weights(os.path.join(work_dir, "students", f"{key}.weights.h5"))
    return student


def save_progress():
    progress["settings"] = settings
    write_json(progress_path, progress)
    write_json(results_path, progress)


def train(row, trial, seed):
    """Trains row `row` at `trial` and `seed`, or returns its saved result.

    Returns:
        The training's record: settings, validation and test perplexity,
        test accuracy, epochs and wall time.
    """
    key = key_of(row, trial, seed)
    if key in progress["trainings"]:
        return progress["trainings"][key]
    print(f"  {key}", flush=True)
    student = causal_lm(student_config, seed, trial["dropout"])
    model = ROWS[row](student, trial["learning_rate"])
    cached = row in KERAS_KD_ROWS and not args.live_teacher
    if row == "scratch":
        with without_preprocessor(student):
            record = fit(model, student, args.epochs, seed)
    else:
        record = fit(model, student, args.epochs, seed, cached_batches if cached else None)
    scores = measure(student, test_data, per_sequence=True)
    np.save(os.path.join(work_dir, "nll", f"{key}.npy"), scores.pop("per_sequence"))
    student.backbone.save_weights(os.path.join(work_dir, "students", f"{key}.weights.h5"))
    record.update(row=row, seed=seed, trial=dict(trial), key=key, xla=xla,
                  teacher_logits=None if row == "scratch" else "cached" if cached else "live",
                  validation_perplexity=min(record["validation_history"]),
                  test_perplexity=scores["perplexity"], test_accuracy=scores["accuracy"],
                  parameters=student.count_params())
    progress["trainings"][key] = record
    save_progress()
    print(f"  {key}: validation perplexity {record['validation_perplexity']:.2f} "
          f"({record['wall_s']:.0f} s)", flush=True)
    return record


"""
## The protocol, on validation only

1. `forward_kl` (seed 0) tries every setting of `TRIALS`; the lowest
   validation perplexity chooses the distilled rows' setting.
2. The other divergences and `keras.distillation` train at that setting.
3. Scratch gets as many trials as the best distilled row had behind its
   setting: all of `TRIALS`.
4. Scratch, `forward_kl` and the best other divergence (on validation) get
   `--seeds` seeds; the rest keep seed 0.
"""


def best(records):
    return min(records, key=lambda r: r["validation_perplexity"])


print("Tuning forward_kl (seed 0):")
chosen = best([train("forward_kl", trial, 0) for trial in TRIALS])["trial"]
distilled = {"forward_kl": progress["trainings"][key_of("forward_kl", chosen, 0)]}
for row in (*OTHER_DIVERGENCES, "keras_distillation"):
    print(f"{row} at forward_kl's setting (lr {chosen['learning_rate']:g}, dropout {chosen['dropout']:g}):")
    distilled[row] = train(row, chosen, 0)
best_distilled_row = best(distilled.values())["row"]
print(f"Tuning scratch with the {len(TRIALS)} trials behind {best_distilled_row}:")
scratch_chosen = best([train("scratch", trial, 0) for trial in TRIALS])["trial"]
best_other = best([distilled[row] for row in OTHER_DIVERGENCES])["row"]
row_trials = {row: chosen for row in distilled}
row_trials["scratch"] = scratch_chosen
row_seeds = {row: [0] for row in row_trials}
for row in ("scratch", "forward_kl", best_other):
    row_seeds[row] = list(range(args.seeds))
    for seed in row_seeds[row][1:]:
        print(f"{row}, seed {seed}:")
        train(row, row_trials[row], seed)
progress["selection"] = {
    "distilled_setting": chosen, "scratch_setting": scratch_chosen,
    "trials_per_tuned_row": len(TRIALS), "best_distilled_row": best_distilled_row,
    "best_other_divergence": best_other,
}

"""
## The table: held-out perplexity, accuracy, and a paired test per tweet

The paired test's unit is a held-out tweet: its mean NLL per real token,
averaged over a row's seeds, minus scratch's. A negative mean difference is a
gain for the distilled row.
"""

try:
    from scipy import stats
except ImportError:  # A normal approximation: thousands of tweets.
    stats = None


def paired_t_test(differences):
    """Two-sided paired t-test of `differences` against 0.

    Returns:
        A dict: `mean`, `se`, `t`, `p`, `n`.
    """
    n = len(differences)
    mean, se = float(np.mean(differences)), float(np.std(differences, ddof=1) / math.sqrt(n))
    t = mean / se
    p = float(2 * stats.t.sf(abs(t), n - 1)) if stats else math.erfc(abs(t) / math.sqrt(2))
    return {"mean": mean, "se": se, "t": t, "p": p, "n": n}


def mean_se(values):
    values = np.asarray(values, "float64")
    se = float(np.std(values, ddof=1) / math.sqrt(len(values))) if len(values) > 1 else None
    return float(values.mean()), se


def records_of(row):
    return [progress["trainings"][key_of(row, row_trials[row], seed)] for seed in row_seeds[row]]


def sequence_nll(row):
    return np.mean([np.load(os.path.join(work_dir, "nll", f"{r['key']}.npy")) for r in records_of(row)], 0)


scratch_nll = sequence_nll("scratch")
rows = []
for row in ROWS:
    records = records_of(row)
    perplexity, perplexity_se = mean_se([r["test_perplexity"] for r in records])
    accuracy, accuracy_se = mean_se([r["test_accuracy"] for r in records])
    rows.append({
        "row": row, "seeds": len(records), "trial": row_trials[row],
        "test_perplexity_mean": perplexity, "test_perplexity_se": perplexity_se,
        "test_accuracy_mean": accuracy, "test_accuracy_se": accuracy_se,
        "validation_perplexity_mean": mean_se([r["validation_perplexity"] for r in records])[0],
        "paired_vs_scratch": None if row == "scratch" else paired_t_test(sequence_nll(row) - scratch_nll),
        "wall_s_mean": mean_se([r["wall_s"] for r in records])[0],
        "epochs_run": [r["epochs_run"] for r in records], "parameters": records[0]["parameters"],
        "teacher_logits": [r["teacher_logits"] for r in records],
    })
    print(f"{row}: test perplexity {perplexity:.2f}, accuracy {accuracy:.2%} ({len(records)} seeds)")
progress["rows"] = rows
save_progress()


def chosen_student(row):
    """The seed of `row` with the lowest validation perplexity, loaded."""
    record = best(records_of(row))
    return student_from(record["key"], record["trial"], record["seed"]), record


def pad_probability(model, data):
    """Mean probability `model` gives `<pad>` (id 0) where the target is a real token.

    A student trained on the padding's labels (`keras.distillation` does not
    use `sample_weight`) learns to predict `<pad>`; this says how much of its
    probability that takes from the real next token.
    """
    probability_of_pad = tf.function(lambda x: tf.nn.softmax(tf.cast(model(x, training=False), "float32"))[..., 0])
    x, y, weight = data
    total = 0.0
    for start in range(0, len(y), EVALUATION_BATCH_SIZE):
        part = slice(start, start + EVALUATION_BATCH_SIZE)
        total += float((np.asarray(probability_of_pad({k: v[part] for k, v in x.items()})) * weight[part]).sum())
    return total / float(weight.sum())


pad_probabilities = {"teacher": pad_probability(teacher, test_data)}
for row in ROWS:
    pad_probabilities[row] = pad_probability(chosen_student(row)[0], test_data)
progress["pad_probability_at_real_tokens"] = pad_probabilities
print("probability on <pad> at real target tokens (test): "
      + ", ".join(f"{name} {value:.2%}" for name, value in pad_probabilities.items()))


"""
## Generations: the same prompts, greedy, for teacher, scratch and distilled
"""

scratch_student, scratch_record = chosen_student("scratch")
distilled_student, distilled_record = chosen_student(best_distilled_row)
generations = {}
for name, lm in (("teacher", teacher), (f"scratch ({scratch_record['key']})", scratch_student),
                 (f"{best_distilled_row} ({distilled_record['key']})", distilled_student)):
    lm.compile(sampler="greedy")
    generations[name] = [str(text) for text in lm.generate(list(PROMPTS), max_length=30)]
    for text in generations[name]:
        print(f"{name}: {text!r}")
progress["generations"] = generations

"""
## The distilled student on the phone: float32 and int8 `.tflite` files

The exported forward pass takes `token_ids` only, at the fixed context of 48
tokens; the padding mask is derived inside (`token_ids != 0`, `<pad>` is 0).
No KV cache: one call scores a whole context. `keras_kd.export_tflite`
converts with built-in ops only and verifies each file in LiteRT; below each
file is measured on the first `--litert-examples` test tweets against the
Keras student, over real tokens.

Full-integer int8 is made three times. Two kinds of activation in a Gemma
block do not fit int8: the RMS normalizations divide by a root-mean-square
that can round to the zero point (LiteRT's int8 DIV kernel then refuses to
run), and the attention scores are masked with -1e9, which sets their int8
range so that every real score rounds to the same step. `float_ops` keeps
those ops in float32 and everything else int8.
"""


def phone_model(lm):
    """`token_ids` (batch, 48) int32 -> logits, the mask derived from the ids."""
    token_ids = keras.Input((SEQUENCE_LENGTH,), dtype="int32", name="token_ids")
    padding_mask = keras.ops.not_equal(token_ids, 0)
    logits = lm({"token_ids": token_ids, "padding_mask": padding_mask})
    return keras.Model(token_ids, logits, name="lm_student_on_phone")


def median_latency_ms(path, token_ids):
    """Median milliseconds of one forward pass (batch 1, 1 thread) in LiteRT."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path, num_threads=1)
    interpreter.allocate_tensors()
    index = interpreter.get_input_details()[0]["index"]
    times = []
    for example in token_ids[: LATENCY_RUNS + 1]:
        interpreter.set_tensor(index, example[None])
        start = time.perf_counter()
        interpreter.invoke()
        times.append(time.perf_counter() - start)
    return 1000 * float(np.median(times[1:]))  # The first call warms up.


def attention_score_scale(path):
    """The int8 step of the attention scores entering SOFTMAX, or None in float."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=path)
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    for op in interpreter._get_ops_details():
        if op["op_name"] == "SOFTMAX":
            scores = tensors[op["inputs"][0]]
            return float(scores["quantization"][0]) if scores["dtype"] == np.int8 else None
    return None


on_phone = phone_model(distilled_student)
count = settings["litert_examples"]
subset = tuple(part[:count] if not isinstance(part, dict) else {k: v[:count] for k, v in part.items()}
               for part in test_data)
subset_ids = subset[0]["token_ids"]
calibration = train_data[0]["token_ids"][:256]
keras_subset = measure(distilled_student, subset)
litert = []
for name, file, quantization, float_ops in LITERT_FORMATS:
    path = os.path.join(work_dir, "litert", f"student_{file}.tflite")
    try:
        report = keras_kd.export_tflite(on_phone, path, quantization=quantization,
                                        representative_data=calibration, sample=subset_ids[:32],
                                        float_ops=float_ops)
    except keras_kd.ConversionError as error:  # Reported as a row: a result, not a crash.
        litert.append({"format": name, "file": file, "quantization": quantization,
                       "float_ops": float_ops, "error": str(error).splitlines()[0]})
        print(f"LiteRT {name}: {litert[-1]['error']}")
        continue
    scores, agree, max_diff = Scores(), 0.0, 0.0
    for start in range(0, count, 64):
        part = slice(start, start + 64)
        logits, _ = keras_kd.run_tflite(path, subset_ids[part])
        expected = np.asarray(on_phone(subset_ids[part]))
        nll, hits = token_scores(logits, subset[1][part])
        weight = subset[2][part]
        scores.add(nll, hits, weight)
        agree += float((weight * (logits.argmax(-1) == expected.argmax(-1))).sum())
        max_diff = max(max_diff, float(np.abs(logits - expected).max()))
    summary = scores.summary()
    litert.append({
        "format": name, "file": file, "quantization": quantization, "float_ops": float_ops,
        "attention_score_scale": attention_score_scale(path), "bytes": report.bytes,
        "perplexity": summary["perplexity"], "accuracy": summary["accuracy"],
        "keras_perplexity": keras_subset["perplexity"], "top1_agreement": agree / summary["tokens"],
        "max_abs_diff": max_diff, "median_latency_ms": median_latency_ms(path, subset_ids),
        "examples": count, "tokens": summary["tokens"],
    })
    print(f"LiteRT {name}: perplexity {summary['perplexity']:.2f} (Keras {keras_subset['perplexity']:.2f}), "
          f"top-1 agreement {litert[-1]['top1_agreement']:.2%}, max |diff| {max_diff:.3g}, "
          f"{report.bytes:,} bytes, {litert[-1]['median_latency_ms']:.2f} ms")
float32_row = litert[0]
if "error" in float32_row:
    raise SystemExit(f"The float32 .tflite file does not run: {float32_row['error']}")
if float32_row["top1_agreement"] < 0.99:
    raise SystemExit(f"The float32 .tflite file disagrees with Keras on "
                     f"{1 - float32_row['top1_agreement']:.2%} of the tokens: the export is wrong.")
progress["litert"] = litert
progress["litert_source"] = distilled_record["key"]

"""
## Writing the results

`results/lm_distillation.md` holds the table; every number comes from this
run's `progress.json`.
"""


def plus_minus(mean, se, fmt):
    return fmt.format(mean) + ("" if se is None else " ± " + fmt.format(se))


def p_text(p):
    if p == 0.0:  # Below the smallest double: say so rather than print 0.
        return "< 1e-300"
    return f"{p:.2g}" if p >= 1e-4 else f"{p:.1e}"


def row_line(r):
    """One table row of `rows`."""
    paired = r["paired_vs_scratch"]
    paired_text = "" if paired is None else (
        f"{paired['mean']:+.4f} ± {paired['se']:.4f}, p {'' if paired['p'] == 0.0 else '= '}{p_text(paired['p'])}")
    accuracy_se = None if r["test_accuracy_se"] is None else 100 * r["test_accuracy_se"]
    return (f"| {r['row']} | {plus_minus(r['test_perplexity_mean'], r['test_perplexity_se'], '{:.2f}')} | "
            f"{plus_minus(100 * r['test_accuracy_mean'], accuracy_se, '{:.2f}')}% | {paired_text} | "
            f"{r['seeds']} | {r['trial']['learning_rate']:g}, {r['trial']['dropout']:g} | "
            f"{r['wall_s_mean']:.0f} s{teacher_text(r['teacher_logits'])} |")


def teacher_text(modes):
    """How the row's teacher ran: nothing for scratch, else live / cached logits."""
    counts = {mode: modes.count(mode) for mode in ("live", "cached") if mode in modes}
    if not counts:
        return ""
    if len(counts) == 1:
        return " (live teacher)" if "live" in counts else " (cached logits)"
    return f" ({counts['live']} live teacher, {counts['cached']} cached logits)"


def kernel_error(r):
    """The LiteRT kernel's own words in a failed row's error."""
    found = re.search(r"interpreter: (.*?)\.* Nothing was written", r["error"])
    return f"`{found.group(1)}`" if found else r["error"]


def litert_line(r):
    if "error" in r:
        return f"| {r['format']} | fails in LiteRT: {kernel_error(r)} | | | | | |"
    return (f"| {r['format']} | {r['perplexity']:.2f} | {r['keras_perplexity']:.2f} | "
            f"{r['top1_agreement']:.2%} | {r['max_abs_diff']:.3g} | {r['bytes']:,} | "
            f"{r['median_latency_ms']:.2f} ms |")


def int8_notes(rows, distillation_gain):
    """What the full-integer int8 rows show, in words, from their numbers.

    Args:
        rows: The LiteRT rows.
        distillation_gain: 1 - the best distilled row's mean test perplexity
            over scratch's.
    """
    by_file = {r["file"]: r for r in rows}
    notes = []
    plain, div, both = by_file["int8"], by_file["int8_div_float"], by_file["int8_div_attention_float"]
    if "error" in plain:
        notes.append(f"- As the converter makes it, the full-integer file does not run: {kernel_error(plain)}. "
                     "A DIV in this model is an RMS normalization's division by a root-mean-square, "
                     "here rounded to its int8 zero point.")
    else:
        notes.append(f"- As the converter makes it, the full-integer file runs: perplexity "
                     f"{plain['perplexity']:.2f}.")
    if "error" not in div:
        scale = ("" if div["attention_score_scale"] is None else
                 f"; the attention scores' int8 step there is {div['attention_score_scale']:.3g}")
        notes.append(f"- With the division in float32 (`float_ops=('DIV',)`): perplexity "
                     f"{div['perplexity']:.2f}, top-1 agreement {div['top1_agreement']:.2%}{scale}.")
    if "error" not in both:
        cost = both["perplexity"] / both["keras_perplexity"] - 1
        notes.append(f"- With the attention scores' ops in float32 too (`float_ops={('DIV', *ATTENTION_SCORE_OPS)}`, "
                     f"which keeps every RESHAPE float as well; every layer with weights, the embedding, "
                     f"the MLP and the residual adds stay int8): "
                     f"perplexity {both['perplexity']:.2f} against Keras's {both['keras_perplexity']:.2f}, "
                     f"{cost:+.1%}, top-1 agreement {both['top1_agreement']:.2%}. For scale: distillation "
                     f"lowered the mean perplexity by {distillation_gain:.1%} against scratch.")
    return notes


teacher_record = progress["teacher"]
by_row = {r["row"]: r for r in rows}
students_s = sum(r["wall_s"] for r in progress["trainings"].values())
progress["student_training_s"] = students_s
progress["this_run_s"] = time.time() - started
lines = [
    "# A distilled tweet language model against the same model from scratch",
    "",
    "Written by `examples/lm_distillation.py`" + (" --tiny" if args.tiny else "") + ".",
    "",
    "| row | held-out perplexity (mean ± s.e.) | next-token accuracy | paired ΔNLL per token vs "
    "scratch (mean ± s.e., p) | seeds | setting (lr, dropout) | wall time per training |",
    "|---|---|---|---|---|---|---|",
    f"| teacher ({teacher_record['parameters']:,} parameters) | {teacher_record['test_perplexity']:.2f} | "
    f"{teacher_record['test_accuracy']:.2%} | | 1 | {TEACHER_LEARNING_RATE:g}, 0 | "
    f"{teacher_record.get('wall_s', float('nan')):.0f} s |",
    *[row_line(r) for r in rows],
    "",
    f"Student: {rows[0]['parameters']:,} parameters. keras_kd rows: `T = {TEMPERATURE:g}`, "
    f"`alpha = {ALPHA:g}`. keras.distillation: its defaults, `LogitsDistillation()` (temperature "
    f"{KERAS_DEFAULTS['temperature']:g}, loss `{KERAS_DEFAULTS['loss']!r}`) and "
    f"`student_loss_weight = {KERAS_DEFAULTS['student_loss_weight']:g}`. Its default loss string "
    f"resolves to the plain `kl_divergence` function, applied to logits / T clipped to [1e-7, 1] "
    f"rather than to probabilities (`tests/test_peer.py::test_default_string_loss_is_wrong_there_and_right_here`); "
    f"it does not use `sample_weight`, so padding counts in both its terms; its teacher runs every step, while keras_kd rows marked \"cached logits\" read "
    f"the teacher's logits from a `keras_kd.TeacherCache` computed once (same tweets, same order). "
    f"The distilled setting was chosen among {len(TRIALS)} trials of forward_kl, "
    f"scratch's among the same {len(TRIALS)}; the best other divergence on validation: {best_other}. "
    f"Paired test: per held-out tweet, its mean NLL per real token averaged over the row's seeds "
    f"minus scratch's; two-sided paired t-test over the {len(scratch_nll):,} test tweets "
    f"({'scipy' if stats else 'normal approximation'}); negative is a gain.",
    "",
    "Mean probability each model gives `<pad>` where the held-out target is a real token (each row's "
    "seed with the lowest validation perplexity): "
    + ", ".join(f"{name} {value:.2%}" for name, value in pad_probabilities.items()) + ".",
    "",
    f"## {best_distilled_row} ({distilled_record['key']}) in LiteRT, on the first {count} test tweets",
    "",
    "| file | perplexity | Keras perplexity | top-1 agreement with Keras | max abs logit diff | bytes "
    "| median latency, one 48-token pass |",
    "|---|---|---|---|---|---|---|",
    *[litert_line(r) for r in litert],
    "",
    f"Agreement and perplexity over the {litert[0]['tokens']:,} real tokens of those tweets; latency "
    f"is the median of {LATENCY_RUNS} passes, batch 1, 1 thread.",
    "",
    *int8_notes(litert, 1 - by_row[best_distilled_row]["test_perplexity_mean"]
                / by_row["scratch"]["test_perplexity_mean"]),
    "",
    "## Generations (greedy, `max_length=30`)",
    "",
]
for name, texts in generations.items():
    lines += [f"- **{name}**"] + [f"  - `{text}`" for text in texts]
lines += [
    "",
    f"Budget: {settings['train_tweets']:,} training tweets ({settings['train_tokens']:,} real target "
    f"tokens), {settings['validation_tweets']:,} validation, {settings['test_tweets']:,} test; sequence "
    f"{SEQUENCE_LENGTH}, batch {BATCH_SIZE}, vocabulary {args.vocabulary_size:,}; teacher cap "
    f"{args.teacher_epochs} epochs, student cap {args.epochs} epochs (patience {PATIENCE}); "
    f"{len(progress['trainings'])} student trainings, {students_s / 60:.1f} min in all"
    + (f", plus {progress['teacher_cache']['wall_s'] / 60:.1f} min to cache the teacher's logits once "
       f"({progress['teacher_cache']['bytes'] / 1e9:.1f} GB on disk)" if "teacher_cache" in progress else "")
    + "; the teacher's "
    f"one-time training {teacher_record.get('wall_s', float('nan')) / 60:.1f} min; this run "
    f"{progress['this_run_s'] / 60:.1f} min; XLA {'on' if xla else 'off'}; {os.cpu_count()} CPU cores.",
]
save_progress()
markdown = os.path.splitext(results_path)[0] + ".md"
with open(f"{markdown}.tmp", "w", encoding="utf-8") as f:
    f.write("\n".join(lines) + "\n")
os.replace(f"{markdown}.tmp", markdown)
print("\n".join(lines))
print(f"Results: {results_path} and {markdown}")
