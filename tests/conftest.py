"""Shared set-up: the TensorFlow backend, two logical CPUs, tiny models."""

import os

os.environ.setdefault("KERAS_BACKEND", "tensorflow")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

# Two logical CPU devices, so MirroredStrategy can run 2 replicas on a CPU
# machine. This must happen before TensorFlow initialises its devices.
_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0],
    [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()],
)

NUM_FEATURES = 12
NUM_CLASSES = 5


def make_mlp(hidden, seed, num_classes=NUM_CLASSES, name=None, final_activation=None):
    """A tiny Sequential MLP with deterministic initial weights."""
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [
            keras.Input((NUM_FEATURES,)),
            keras.layers.Dense(hidden, activation="relu", name="hidden"),
            keras.layers.Dense(num_classes, activation=final_activation, name="logits"),
        ],
        name=name,
    )


def make_data(n=64, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, NUM_FEATURES)).astype("float32")
    y = rng.integers(0, NUM_CLASSES, size=n).astype("int64")
    return x, y


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    keras.mixed_precision.set_dtype_policy("float32")
    yield
    keras.mixed_precision.set_dtype_policy("float32")
    keras.backend.clear_session()


@pytest.fixture
def teacher():
    return make_mlp(32, seed=1, name="teacher")


@pytest.fixture
def student():
    return make_mlp(8, seed=2, name="student")


@pytest.fixture
def data():
    return make_data()


@pytest.fixture(scope="session")
def two_replicas():
    """One MirroredStrategy over the 2 logical CPUs, shared by all tests.

    One object for the whole session: separate MirroredStrategy objects over
    the same devices restart their collective instance keys, and TensorFlow
    then mixes up collectives of different models (a shape-mismatch abort).
    """
    devices = tf.config.list_logical_devices("CPU")
    assert len(devices) >= 2
    strategy = tf.distribute.MirroredStrategy([d.name for d in devices[:2]])
    assert strategy.num_replicas_in_sync == 2
    return strategy
