"""Run by tests/test_xla.py in a subprocess with XLA_FLAGS=--xla_dump_to=DIR."""

import os
import sys

os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402

import keras_kd  # noqa: E402
from tests.conftest import make_data, make_mlp  # noqa: E402

mode = {"on": True, "off": False}[sys.argv[1]]
x, y = make_data(n=64)
distiller = keras_kd.Distiller(make_mlp(16, seed=1), make_mlp(8, seed=2))
distiller.compile(
    optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
)
distiller.fit(
    x, y, batch_size=16, epochs=1, verbose=0,
    callbacks=[keras_kd.callbacks.XLACompile(mode)],
)
print("trained", int(distiller.optimizer.iterations.numpy()))
