"""The three callbacks together, and the examples, run top to bottom."""

import os
import pathlib
import re
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
from sklearn.datasets import load_digits

import keras_kd

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _mlp(units, name):
    return keras.Sequential(
        [keras.Input((64,))]
        + [keras.layers.Dense(u, activation="relu") for u in units]
        + [keras.layers.Dense(10)],
        name=name,
    )


@pytest.mark.slow
def test_annealing_xla_and_int8_export_together(tmp_path):
    digits = load_digits()
    x = (digits.data / 16.0).astype("float32")
    y = digits.target
    order = np.random.default_rng(0).permutation(len(x))  # Writers mixed across splits.
    x, y = x[order], y[order]
    x_train, y_train, x_test, y_test = x[:1400], y[:1400], x[1400:], y[1400:]
    keras.utils.set_random_seed(0)
    teacher = _mlp([256, 256], "teacher")
    teacher.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    teacher.fit(x_train, y_train, epochs=15, batch_size=64, verbose=0)

    train = tf.data.Dataset.from_tensor_slices((x_train, y_train)).shuffle(1400, seed=0).batch(64)
    distiller = keras_kd.Distiller(teacher, _mlp([64], "student"), temperature=8.0, alpha=0.3)
    distiller.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    path = tmp_path / "student_int8.tflite"
    export = keras_kd.callbacks.TFLiteExport(
        path, quantization="int8", representative_data=train, sample=x_test, verbose=0
    )
    history = distiller.fit(
        train,
        epochs=10,
        callbacks=[
            keras_kd.callbacks.LiveValueScheduler(
                keras_kd.schedules.Cosine(8.0, 2.0, duration=1.0, fractions=True), per="batch"
            ),
            keras_kd.callbacks.XLACompile(True),
            export,
        ],
        verbose=0,
    ).history

    assert distiller.jit_compile is True and distiller.xla_first_call_seconds > 0
    assert history["temperature"][0] < 8.0 and history["temperature"][-1] == pytest.approx(2.0, abs=0.05)
    assert history["kl_loss"][-1] < history["kl_loss"][0]
    # The exported file, evaluated through LiteRT on held-out digits.
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    given, output = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    predictions = []
    for example in x_test:
        interpreter.set_tensor(given["index"], example[None])
        interpreter.invoke()
        predictions.append(np.argmax(interpreter.get_tensor(output["index"])))
    tflite_accuracy = np.mean(np.array(predictions) == y_test)
    keras_accuracy = np.mean(np.argmax(distiller.student.predict(x_test, verbose=0), -1) == y_test)
    assert export.report.top1_agreement >= 0.95
    assert tflite_accuracy >= 0.9 and abs(tflite_accuracy - keras_accuracy) <= 0.03


@pytest.mark.slow
def test_quickstart_example_runs():
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "quickstart.py")],
        env=env, capture_output=True, text=True, timeout=600, cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    accuracies = re.findall(r"test accuracy (\d\.\d+)", result.stdout)
    assert len(accuracies) == 2 and all(float(a) > 0.8 for a in accuracies)
