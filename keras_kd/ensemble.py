"""Several teachers: one soft target from their softened probabilities."""

import math

import keras
from keras import ops

from keras_kd import checks


def resolve_teachers(teacher, teacher_weights):
    """Returns the teachers as a list and their weights, normalized to sum 1.

    Args:
        teacher: A `keras.Model`, or a list of them.
        teacher_weights: `None` (equal weights) or one non-negative float per
            teacher, not all 0.

    Returns:
        `(teachers, weights)`.
    """
    teachers = list(teacher) if isinstance(teacher, (list, tuple)) else [teacher]
    if not teachers:
        raise ValueError("Argument `teacher` must hold at least one model. Received: teacher=[]")
    if teacher_weights is None:
        weights = [1.0] * len(teachers)
    else:
        weights = [float(w) for w in teacher_weights]
        if len(weights) != len(teachers) or not all(
            math.isfinite(w) and w >= 0 for w in weights
        ) or sum(weights) <= 0:
            raise ValueError(
                "Argument `teacher_weights` must hold one finite weight >= 0 "
                f"per teacher ({len(teachers)}), not all 0. Received: "
                f"teacher_weights={teacher_weights!r}"
            )
    total = sum(weights)
    return teachers, [w / total for w in weights]


def mixture_logits(teacher_logits, weights, temperature):
    """Logits whose softened distribution is the teachers' weighted mixture.

    The soft target of several teachers is `p = Σ_k w_k · softmax(t_k / T)`
    (a mixture of probabilities, not of logits). This returns `T · log p`:
    softened at the same `T` by any logit term, it gives back exactly `p`,
    so every term works unchanged. Computed with a log-sum-exp in float32;
    classes all teachers mask with `-inf` stay masked.

    Args:
        teacher_logits: List of `(batch, classes)` tensors, one per teacher.
        weights: List of floats summing to 1.
        temperature: Scalar, the temperature of the term that will use them.

    Returns:
        A float32 tensor `(batch, classes)`.
    """
    temperature = ops.cast(temperature, "float32")
    log_mixture = ops.logsumexp(
        ops.stack(
            [
                math.log(weight)
                + ops.log_softmax(ops.cast(logits, "float32") / temperature, axis=-1)
                for logits, weight in zip(teacher_logits, weights)
                if weight > 0
            ]
        ),
        axis=0,
    )
    return temperature * log_mixture


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
