"""The tweet teacher on the phone: its TFLite size and LiteRT latency per tweet.

The teacher of `examples/text_classification.py` (MiniLM-L6 + the committed
fine-tuned layers) is exported without its tokenizer (keras-hub's WordPiece
ops are not LiteRT built-ins): the `.tflite` file takes WordPiece token ids
(0 = padding), as an app would feed it. It is run in the LiteRT
interpreter, batch 1, 1 thread, on the first test tweets; its predictions are
compared with the committed cached logits.

    python -m benchmarks.text_teacher_latency --text-dir ../shared/text [--tweets 200]
"""

import argparse
import json
import os
import sys
import tempfile

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402

import keras_kd  # noqa: E402

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "examples"))
import tweet_teacher  # noqa: E402


def ids_model(teacher):
    """The teacher from WordPiece token ids (0 = padding) to logits: no tokenizer."""
    backbone = next(l for l in teacher.layers if l.name.startswith("bert_backbone"))
    token_ids = keras.Input((tweet_teacher.SEQUENCE_LENGTH,), dtype="int32", name="token_ids")
    padding_mask = keras.ops.not_equal(token_ids, 0)
    sequence = backbone({
        "token_ids": token_ids,
        "padding_mask": padding_mask,
        "segment_ids": keras.ops.zeros_like(token_ids),
    })["sequence_output"]
    pooled = teacher.get_layer("mean_pooling")(sequence, padding_mask)
    return keras.Model(token_ids, teacher.get_layer("head")(pooled))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--text-dir")
    parser.add_argument("--tweets", type=int, default=200)
    parser.add_argument("--out", default="benchmarks/text_teacher_latency.json")
    args = parser.parse_args()
    text_dir = tweet_teacher.text_dir_from(args.text_dir)
    texts, _ = tweet_teacher.read_tweets(os.path.join(text_dir, "tweet_sentiment_test.csv"))
    texts = texts[: args.tweets]
    teacher = tweet_teacher.build_teacher(
        weights=os.path.join(tweet_teacher.TEACHER_DIR, "tuned_layers.npz"))
    preprocessor = next(l for l in teacher.layers if "preprocessor" in l.name)
    tokens = preprocessor(tf.constant(texts))
    inputs = np.asarray(tokens["token_ids"], "int32")
    model = ids_model(teacher)
    committed = np.load(os.path.join(tweet_teacher.TEACHER_DIR, "logits_test.npy"))[: len(texts)]
    np.testing.assert_allclose(model.predict(inputs, verbose=0), committed, atol=2e-2)
    results = {"tweets": len(texts), "parameters": int(model.count_params())}
    with tempfile.TemporaryDirectory() as folder:
        for quantization in (None, "dynamic"):
            path = os.path.join(folder, "teacher.tflite")
            keras_kd.export_tflite(model, path, quantization=quantization, sample=inputs[:16])
            outputs, latency = keras_kd.run_tflite(path, inputs)
            name = quantization or "float32"
            results[name] = {
                "bytes": os.path.getsize(path),
                "ms_per_tweet": latency,
                "agreement_with_cached_logits": float(
                    np.mean(np.argmax(outputs, -1) == np.argmax(committed, -1))),
            }
            print(f"{name}: {results[name]['bytes']:,} bytes, {latency:.2f} ms/tweet (LiteRT, 1 thread), "
                  f"top-1 agreement with the cached logits {results[name]['agreement_with_cached_logits']:.1%}")
    with open(args.out, "w") as f:
        json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
