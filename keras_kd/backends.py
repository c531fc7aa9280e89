"""Which Keras backend runs, and what keras_kd does on TensorFlow only.

The Distiller's loss (`compute_loss`: the student loss, every logit term,
sample and class weights, several teachers, cached teacher logits, live
values) is written in `keras.ops` and runs on TensorFlow, JAX and PyTorch.
On JAX and PyTorch, Keras's own train and test steps call it; on
TensorFlow, the Distiller's step adds what needs TensorFlow. The features in
`TENSORFLOW_ONLY` say so with an error on the other backends, naming the
backend.
"""

import keras

TENSORFLOW = "tensorflow"
JAX = "jax"

# What needs TensorFlow, and why (the error says it).
TENSORFLOW_ONLY = {
    "augmentation": "consistent augmentation splits Keras's layers into their "
    "draws and runs them in the TensorFlow step",
    "mixing": "mixing runs in the TensorFlow step with the augmentation",
    "teacher_precision": "the cheaper teacher copy is timed and synced in "
    "TensorFlow functions",
    "skip_nonfinite_steps": "skipping a non-finite step is part of the "
    "TensorFlow step",
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


def name():
    """The running Keras backend's name (`keras.backend.backend()`)."""
    return keras.backend.backend()


def is_tensorflow():
    """Whether Keras runs on TensorFlow."""
    return name() == TENSORFLOW


def require_tensorflow(feature):
    """Raises a `ValueError` naming `feature`, why and the backend, unless on
    TensorFlow.

    Args:
        feature: A key of `TENSORFLOW_ONLY`.
    """
    if is_tensorflow():
        return
    raise ValueError(
        f"`{feature}` needs Keras's TensorFlow backend ({TENSORFLOW_ONLY[feature]}); "
        f"this process runs Keras on {name()!r}. Set KERAS_BACKEND=tensorflow "
        f"to use it, or leave `{feature}` out."
    )


def refuse_on_jax(feature, why):
    """Raises a `ValueError` naming `feature` and `why` on the JAX backend."""
    if name() == JAX:
        raise ValueError(f"`{feature}` does not run on Keras's JAX backend: {why}.")


def sync_training_state(model):
    """Makes assignments to `model`'s variables reach the next step.

    During a JAX `fit`, Keras keeps the variables' values in its own state and
    writes them back at the end of each epoch only; a callback that assigns a
    variable between batches first writes that state back (Keras then reads
    it again before the next step). Other backends need nothing.
    """
    if name() == JAX and hasattr(model, "jax_state_sync"):
        model.jax_state_sync()
