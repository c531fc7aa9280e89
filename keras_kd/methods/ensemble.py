"""Several teachers: one soft target from their softened probabilities."""

import math

import keras
from keras import ops

from keras_kd._internal import checks
from keras_kd._step import several_teachers

__all__ = [
    "WeightedSum",
    "fuse",
]


# Step parts kept importable here for code written against this module.
resolve_teachers = several_teachers.resolve_teachers
mixture_logits = several_teachers.mixture_logits


@keras.saving.register_keras_serializable(package="keras_kd")
class WeightedSum(keras.layers.Layer):
    """`Σ_k w_k · inputs[k]` with fixed weights: the fusion layer.

    Args:
        weights: List of floats, one per input.
        **kwargs: Other `keras.layers.Layer` arguments.
    """

    def __init__(self, weights, **kwargs):
        super().__init__(**kwargs)
        self.fusion_weights = [float(w) for w in weights]

    def call(self, inputs):
        return sum(w * x for w, x in zip(self.fusion_weights, inputs))

    def compute_output_shape(self, input_shape):
        return input_shape[0]

    def get_config(self):
        config = super().get_config()
        config["weights"] = self.fusion_weights
        return config


def fuse(models, weights=None, name="fusion"):
    """A Keras model averaging the probabilities of several models.

    For a server that keeps both teacher and student (or several students):
    `softmax` of each model's logits, weighted, summed. The result is an
    ordinary Functional model: it saves, loads (`safe_mode=True`) and exports
    like any other. Its output is **probabilities**.

    Args:
        models: List of `keras.Model`s with the same input and output shapes,
            each outputting logits.
        weights: Optional list of non-negative floats, one per model
            (normalized to sum 1). Defaults to equal weights.
        name: The model's name. Defaults to `"fusion"`.

    Returns:
        A `keras.Model` from the shared input to the fused probabilities.

    Example:

    ```python
    server_model = keras_kd.fuse([teacher, distiller.student], weights=[0.7, 0.3])
    probabilities = server_model.predict(x_test)
    ```
    """
    models, weights = resolve_teachers(models, weights)
    checks.check_teacher_shapes(models)
    inputs = keras.Input(models[0].inputs[0].shape[1:], dtype=models[0].inputs[0].dtype)
    probabilities = [keras.layers.Softmax(dtype="float32")(model(inputs)) for model in models]
    return keras.Model(inputs, WeightedSum(weights, dtype="float32")(probabilities), name=name)
