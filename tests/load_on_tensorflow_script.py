"""Loads a Distiller saved on another Keras backend, on TensorFlow, and
trains it on; prints what it found as JSON.

Run by `tests/test_backends.py` (JAX and PyTorch runs) in its own process:
`python load_on_tensorflow_script.py <file.keras> <arrays.npz>`.
"""

import json
import os
import sys

os.environ["KERAS_BACKEND"] = "tensorflow"

import keras  # noqa: E402
import numpy as np  # noqa: E402

import keras_kd  # noqa: E402, F401 - registers the Distiller.

path, arrays = sys.argv[1], np.load(sys.argv[2])
distiller = keras.saving.load_model(path)
predictions = distiller.predict(arrays["x"], verbose=0)
iterations = int(distiller.optimizer.iterations.numpy())
history = distiller.fit(arrays["x"], arrays["y"], batch_size=8, epochs=1, verbose=0).history
print(json.dumps({
    "backend": keras.backend.backend(),
    "max_prediction_difference": float(np.max(np.abs(predictions - arrays["predictions"]))),
    "temperature": float(distiller.temperature.numpy()),
    "iterations_loaded": iterations,
    "iterations_after": int(distiller.optimizer.iterations.numpy()),
    "loss": history["loss"],
}))
