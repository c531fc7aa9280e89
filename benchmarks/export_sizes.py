"""TFLite export of a trained digits student in every quantization mode.

Trains a 64-512-256-10 MLP (167k parameters) on scikit-learn's digits for a
few seconds, exports it with `keras_kd.export_tflite` in each mode and prints
each report (bytes, size relative to float32, max |Δ| and top-1 agreement
against Keras through the LiteRT interpreter, latency per example with one
thread), and the .tflite file's own test accuracy.

    python benchmarks/export_sizes.py [--out benchmarks/export_sizes.json]
"""

import argparse
import dataclasses
import os
import tempfile

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402

import keras_kd  # noqa: E402
from benchmarks import common  # noqa: E402


def tflite_accuracy(path, x, y):
    outputs, _ = keras_kd.run_tflite(path, x)
    return float(np.mean(np.argmax(outputs, -1) == y))


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="benchmarks/export_sizes.json")
    args = parser.parse_args()
    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")
    x_train, x_test, y_train, y_test = train_test_split(
        x, digits.target, test_size=0.2, stratify=digits.target, random_state=0
    )
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(512, activation="relu"),
         keras.layers.Dense(256, activation="relu"), keras.layers.Dense(10)]
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    model.fit(x_train, y_train, epochs=10, batch_size=64, verbose=0)
    keras_accuracy = float(np.mean(np.argmax(model.predict(x_test, verbose=0), -1) == y_test))
    print(f"{model.count_params():,} parameters, Keras test accuracy {keras_accuracy:.3f}")
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for quantization in (None, "dynamic", "float16", "int8"):
            report = keras_kd.export_tflite(
                model, os.path.join(folder, f"{quantization}.tflite"),
                quantization=quantization, representative_data=x_train, sample=x_test,
            )
            row = dataclasses.asdict(report)
            row["tflite_accuracy"] = tflite_accuracy(report.path, x_test, y_test)
            rows.append(row)
    float_bytes = rows[0]["bytes"]
    print("| quantization | bytes | × float32 | max abs diff | top-1 agreement | accuracy | ms/example |")
    print("|---|---|---|---|---|---|---|")
    for row in rows:
        print(
            f"| {row['quantization'] or 'float32'} | {row['bytes']:,} | {row['bytes'] / float_bytes:.2f} "
            f"| {row['max_abs_diff']:.2g} | {row['top1_agreement']:.1%} | {row['tflite_accuracy']:.3f} "
            f"| {row['latency_ms']:.3f} |"
        )
    common.write_json(args.out, {"machine": common.machine(), "keras_accuracy": keras_accuracy, "rows": rows})


if __name__ == "__main__":
    main()
