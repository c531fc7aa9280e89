"""XLACompile: the running step is really XLA-compiled, "auto" follows the device, and
an op XLA lacks does not stop training."""

import os
import pathlib
import re
import subprocess
import sys
import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_kd
from keras_kd._step import xla
from tests.conftest import make_data, make_mlp

ROOT = pathlib.Path(__file__).resolve().parents[1]
SPARSE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _compiled_modules(mode, dump_dir):
    env = dict(os.environ, XLA_FLAGS=f"--xla_dump_to={dump_dir}", PYTHONPATH=str(ROOT))
    result = subprocess.run(
        [sys.executable, str(ROOT / "tests" / "xla_fit_script.py"), mode],
        env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "trained 4" in result.stdout
    return {name.split(".")[1] for name in os.listdir(dump_dir)} if os.path.isdir(dump_dir) else set()


def test_the_running_train_step_is_xla_compiled(tmp_path):
    """XLA writes a module for each program it compiles: Keras's train step shows up only with XLA on."""
    with_xla = _compiled_modules("on", tmp_path / "on")
    without = _compiled_modules("off", tmp_path / "off")
    assert any("one_step_on_data" in name for name in with_xla), sorted(with_xla)
    assert not any("one_step_on_data" in name for name in without)


def _fake_devices(monkeypatch, gpus):
    real = tf.config.list_physical_devices

    def list_physical_devices(device_type=None):
        fake = [tf.config.PhysicalDevice(f"/physical_device:GPU:{i}", "GPU") for i in range(gpus)]
        if device_type == "GPU":
            return fake
        return real(device_type) + (fake if device_type is None else [])

    monkeypatch.setattr(tf.config, "list_physical_devices", list_physical_devices)


@pytest.mark.parametrize("gpus, expected", [(0, False), (1, True), (2, True)])
def test_auto_turns_xla_on_where_a_gpu_is_visible(monkeypatch, gpus, expected):
    _fake_devices(monkeypatch, gpus)
    assert xla.resolve_jit_compile("auto") is expected
    assert xla.resolve_jit_compile(True) is True and xla.resolve_jit_compile(False) is False
    distiller = keras_kd.Distiller(make_mlp(16, seed=1), make_mlp(8, seed=2))
    distiller.compile(optimizer="sgd", loss=SPARSE, jit_compile=not expected)
    callback = keras_kd.callbacks.XLACompile("auto")
    x, y = make_data(n=32)
    distiller.fit(x, y, batch_size=16, epochs=1, callbacks=[callback], verbose=0)
    assert callback.jit_compile is expected and distiller.jit_compile is expected


def test_bad_mode():
    with pytest.raises(ValueError, match=r"Argument `mode` must be one of \('auto', True, False\). Received: mode='yes'"):
        keras_kd.callbacks.XLACompile("yes")


class _AsString(keras.layers.Layer):
    """Uses an op XLA cannot compile (AsString) without changing the values."""

    def call(self, x):
        length = tf.strings.length(tf.strings.as_string(x))
        return x + 0.0 * tf.cast(length, x.dtype)


def test_an_op_xla_lacks_falls_back_without_losing_a_batch():
    keras.utils.set_random_seed(4)
    student = keras.Sequential(
        [keras.Input((12,)), _AsString(), keras.layers.Dense(5)], name="needs_as_string"
    )
    distiller = keras_kd.Distiller(make_mlp(16, seed=1), student, alpha=0.5)
    distiller.compile(optimizer="sgd", loss=SPARSE)
    x, y = make_data(n=64)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = distiller.fit(
            x, y, batch_size=16, epochs=2, validation_data=(x, y),
            callbacks=[keras_kd.callbacks.XLACompile(True)], verbose=0,
        )
    messages = [str(w.message) for w in caught if "XLA cannot compile" in str(w.message)]
    assert len(messages) == 1  # Once, though the train and test steps both fell back.
    assert re.match(r"XLA cannot compile \['AsString'\] in the step of 'distiller'; training goes on without XLA", messages[0])
    assert int(distiller.optimizer.iterations.numpy()) == 8  # Every batch trained.
    assert distiller.jit_compile is False
    assert np.all(np.isfinite(history.history["loss"]))


def test_xla_first_call_is_timed():
    distiller = keras_kd.Distiller(make_mlp(16, seed=1), make_mlp(8, seed=2))
    distiller.compile(optimizer="sgd", loss=SPARSE, jit_compile=True)
    x, y = make_data(n=32)
    distiller.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert distiller.xla_first_call_seconds > 0
