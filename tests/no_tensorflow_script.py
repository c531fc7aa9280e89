"""Uses keras_kd on this process's Keras backend as if only `pip install
keras-kd` (Keras and numpy) were installed, and prints what happened as JSON.

Run by `tests/test_backends.py` (JAX and PyTorch) and `tests/test_install.py`
(JAX) in its own process: `sys.modules["tensorflow"] = None` makes every
`import tensorflow` fail as it does on a machine without it (e.g. a GPU
machine with JAX only); so for the other extras' packages. Each optional
feature's error is recorded: an `ImportError` naming the extra to install.
"""

import contextlib
import io
import json
import os
import sys
import tempfile

# What the extras bring (setup.cfg): TensorFlow, tfds, LiteRT, matplotlib.
for missing in ("tensorflow", "tensorflow_datasets", "tf_keras", "ai_edge_litert", "matplotlib"):
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


def _main_demo():
    from keras_kd import __main__

    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        try:
            __main__.main(["demo", "--output", folder])
        except SystemExit as exit:
            print(f"exit {exit.code}", file=stderr)
    raise ImportError(stderr.getvalue())


folder = tempfile.mkdtemp()
features = {
    "TeacherCache": lambda: keras_kd.TeacherCache.compute(distiller.teacher, x),
    "ReplayCache": lambda: keras_kd.ReplayCache.compute(
        distiller.teacher, x, keras.layers.RandomFlip("horizontal"), views=2),
    "XLACompile": lambda: keras_kd.callbacks.XLACompile(),
    "LearnedTemperature": lambda: keras_kd.Distiller(
        _cnn(8, 1), _cnn(4, 2), temperature=keras_kd.LearnedTemperature()),
    "teacher_precision": lambda: keras_kd.Distiller(_cnn(8, 1), _cnn(4, 2), teacher_precision="float16"),
    "export_tflite": lambda: keras_kd.export_tflite(distiller.student, os.path.join(folder, "s.tflite")),
    "run_tflite": lambda: keras_kd.run_tflite(os.path.join(folder, "s.tflite"), x),
    "evaluate_models": lambda: keras_kd.evaluate_models({"student": distiller.student}, (x, y)),
    "plot_histories": lambda: keras_kd.plot_histories({"run": history}, os.path.join(folder, "p.png")),
    "keras_kd.demo": lambda: __import__("keras_kd.demo"),
    "python -m keras_kd demo": _main_demo,
}
errors = {}
for feature, use in features.items():
    try:
        use()
        errors[feature] = None
    except ImportError as error:
        errors[feature] = str(error)
    except Exception as error:  # noqa: BLE001 - recorded for the test.
        errors[feature] = f"{type(error).__name__}: {error}"
print(json.dumps({
    "backend": keras.backend.backend(),
    "history": history,
    "evaluation": evaluation,
    "tensorflow_imported": sys.modules["tensorflow"] is not None,
    "teacher_cache_error": errors["TeacherCache"],
    "errors": errors,
    "files": sorted(os.listdir(folder)),
}))
