"""Which Keras backend runs, and what keras_kd does on TensorFlow only.

The Distiller's loss (`compute_loss`: the student loss, every logit term,
sample and class weights, several teachers, cached teacher logits, live
values) and its consistent augmentation and mixing are written in
`keras.ops` and Keras layers, and run on TensorFlow, JAX and PyTorch. On JAX
and PyTorch, Keras's own train and test steps call them; on TensorFlow, the
Distiller's step adds what needs TensorFlow. The features in
`TENSORFLOW_ONLY` say so with an error on the other backends, naming the
backend. `import keras_kd` does not import TensorFlow (`tf` below is
imported on first use), so keras_kd runs where TensorFlow is not installed.
"""

import importlib

import keras

from keras_kd._internal import optional as _optional

TENSORFLOW = "tensorflow"
JAX = "jax"
TORCH = "torch"

# What needs TensorFlow, and why (the error says it).
TENSORFLOW_ONLY = {
    "teacher_precision": "the cheaper teacher copy is timed and synced in "
    "TensorFlow functions",
    "LearnedTemperature": "its gradient reversal is a tf.custom_gradient",
    "TeacherCache": "the cache is a tf.data pipeline (its attached dataset "
    "still feeds a JAX or PyTorch fit: compute it with TensorFlow installed)",
    "ReplayCache": "replayed views are drawn in the TensorFlow step",
    "XLACompile": "the XLA rebuild of the step is TensorFlow's (JAX always "
    "compiles with XLA)",
    "tf.distribute": "tf.distribute strategies exist only on TensorFlow "
    "(use keras.distribution on JAX)",
    "export_tflite": "keras_kd converts with TensorFlow's LiteRT converter "
    "(save the model as .keras here and export it from a TensorFlow process: "
    "the file loads there)",
}


class _LazyTensorFlow:
    """The `tensorflow` module, imported when first used.

    `import keras_kd` then works where TensorFlow is not installed (e.g. a
    JAX or PyTorch machine): everything in `keras.ops` runs there, and a
    TensorFlow-only feature raises an `ImportError` naming the extra that
    installs it (`keras-kd[tensorflow]`).
    """

    _module = None

    def __getattr__(self, attribute):
        if self._module is None:
            try:
                module = importlib.import_module(TENSORFLOW)
            except ImportError as error:
                raise ImportError(
                    "This keras_kd feature needs TensorFlow, which is not "
                    f"installed (Keras runs on {name()!r}). Install it with "
                    "`pip install keras-kd[tensorflow]`, or use the features "
                    "that run on every backend (see docs/backends.md)."
                ) from error
            type(self)._module = module
        return getattr(self._module, attribute)

    def __repr__(self):
        return "<lazily imported tensorflow>"


tf = _LazyTensorFlow()


def name():
    """The running Keras backend's name (`keras.backend.backend()`)."""
    return keras.backend.backend()


def is_tensorflow():
    """Whether Keras runs on TensorFlow."""
    return name() == TENSORFLOW


def invalid_argument_errors():
    """The errors a backend raises for operands of the wrong shape or type
    (TensorFlow adds its `InvalidArgumentError` to `ValueError`)."""
    if is_tensorflow():
        return (ValueError, tf.errors.InvalidArgumentError)
    return (ValueError,)


# The setup.cfg extra that installs what a TensorFlow-only feature needs.
EXTRAS = {"export_tflite": "litert"}


def require_tensorflow(feature):
    """Raises unless Keras runs on TensorFlow: an `ImportError` naming the
    extra to install where TensorFlow is not installed, else a `ValueError`
    naming `feature`, why and the backend.

    Args:
        feature: A key of `TENSORFLOW_ONLY`.
    """
    if is_tensorflow():
        return
    if not _optional.available(TENSORFLOW):
        raise _optional.missing_error(
            EXTRAS.get(feature, "tensorflow"),
            f"`{feature}`",
            why=f": {TENSORFLOW_ONLY[feature]}",
            then=f" and set KERAS_BACKEND=tensorflow (this process runs Keras on {name()!r})",
        )
    raise ValueError(
        f"`{feature}` needs Keras's TensorFlow backend ({TENSORFLOW_ONLY[feature]}); "
        f"this process runs Keras on {name()!r}. Set KERAS_BACKEND=tensorflow "
        f"to use it, or leave `{feature}` out."
    )


def refuse_on_jax(feature, why):
    """Raises a `ValueError` naming `feature` and `why` on the JAX backend."""
    if name() == JAX:
        raise ValueError(f"`{feature}` does not run on Keras's JAX backend: {why}.")


def refuse_on_torch(feature, why):
    """Raises a `ValueError` naming `feature` and `why` on the PyTorch backend."""
    if name() == TORCH:
        raise ValueError(f"`{feature}` does not run on Keras's PyTorch backend: {why}.")


def sync_training_state(model):
    """Makes assignments to `model`'s variables reach the next step.

    During a JAX `fit`, Keras keeps the variables' values in its own state and
    writes them back at the end of each epoch only; a callback that assigns a
    variable between batches first writes that state back (Keras then reads
    it again before the next step). Other backends need nothing.
    """
    if name() == JAX and hasattr(model, "jax_state_sync"):
        model.jax_state_sync()
