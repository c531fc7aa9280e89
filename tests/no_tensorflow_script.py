"""Uses keras_kd on this process's Keras backend as if TensorFlow were not
installed, and prints what happened as JSON.

Run by `tests/test_backends.py` (JAX and PyTorch) in its own process:
`sys.modules["tensorflow"] = None` makes every `import tensorflow` fail as
it does on a machine without it (e.g. a GPU machine with JAX only).
"""

import json
import sys

for missing in ("tensorflow", "tensorflow_datasets", "tf_keras"):
    sys.modules[missing] = None

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_kd  # noqa: E402


def _cnn(filters, seed):
    keras.utils.set_random_seed(seed)
    return keras.Sequential([
        keras.Input((8, 8, 1)), keras.layers.Conv2D(filters, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(3),
    ])


rng = np.random.default_rng(0)
x = rng.random((32, 8, 8, 1)).astype("float32")
y = rng.integers(0, 3, 32).astype("int32")
distiller = keras_kd.Distiller(
    _cnn(8, 1), _cnn(4, 2), augmentation=keras.layers.RandomFlip("horizontal", seed=1), mixing="mixup",
    terms=[keras_kd.losses.KLDivergence(), keras_kd.losses.LogitMSE(weight=0.1)],
)
distiller.compile(
    optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"],
)
history = distiller.fit(x, y, batch_size=8, epochs=2, verbose=0).history
evaluation = distiller.evaluate(x, y, verbose=0, return_dict=True)
try:
    keras_kd.TeacherCache.compute(distiller.teacher, x)
    needs_tensorflow = None
except ImportError as error:
    needs_tensorflow = str(error)
print(json.dumps({
    "backend": keras.backend.backend(),
    "history": history,
    "evaluation": evaluation,
    "tensorflow_imported": sys.modules["tensorflow"] is not None,
    "teacher_cache_error": needs_tensorflow,
}))
