"""Drop-in names for code written against `keras.distillation`.

Code written for `keras.distillation` runs on keras_kd after changing only its
import:

```python
# from keras.distillation import Distiller, LogitsDistillation
from keras_kd import Distiller, LogitsDistillation
```

The `Distiller` accepts `distillation_losses`, `distillation_loss_weights` and
`student_loss_weight`, and converts `LogitsDistillation` (ours or Keras's) into
the equivalent keras_kd term, which computes the loss correctly: `T² · KL` on
log-softmax, where `keras.distillation`'s default string loss applies the
plain `kl_divergence` function to clipped probabilities without `T²`.
"""

import keras

from keras_kd.losses.base import DistillationTerm
from keras_kd.losses.feature_hint import FeatureHint
from keras_kd.losses.kl_divergence import KLDivergence
from keras_kd.losses.soft_target_crossentropy import SoftTargetCrossentropy

_TERM_FOR_LOSS = {
    "kl_divergence": KLDivergence,
    "kld": KLDivergence,
    "kullback_leibler_divergence": KLDivergence,
    "categorical_crossentropy": SoftTargetCrossentropy,
}


def _loss_name(loss):
    if isinstance(loss, str):
        return loss
    if isinstance(loss, keras.losses.Loss):
        # Built-in loss objects are named after their function.
        return loss.name
    return getattr(loss, "__name__", repr(loss))


def LogitsDistillation(temperature=3.0, loss="kl_divergence"):
    """Returns the keras_kd term for a `keras.distillation.LogitsDistillation`.

    Args:
        temperature: Positive float, the term's own temperature. Defaults to
            `3.0`, as in `keras.distillation`.
        loss: `"kl_divergence"` (or a `keras.losses.KLDivergence`) for the
            `KLDivergence` term, `"categorical_crossentropy"` for the
            `SoftTargetCrossentropy` term. Defaults to `"kl_divergence"`.

    Returns:
        A `keras_kd.losses.DistillationTerm` with its own live temperature.

    Example:

    ```python
    term = keras_kd.LogitsDistillation(temperature=2.0)
    distiller = keras_kd.Distiller(teacher, student, distillation_losses=term)
    ```
    """
    name = _loss_name(loss)
    term_class = _TERM_FOR_LOSS.get(name)
    if term_class is None:
        raise ValueError(
            "Argument `loss` of `LogitsDistillation` must be one of "
            f"{sorted(_TERM_FOR_LOSS)} (or the matching keras.losses object). "
            f"Received: loss={loss!r}. For another comparison of logits, "
            "use a keras_kd.losses term such as `LogitMSE`, or subclass "
            "`keras_kd.losses.DistillationTerm`."
        )
    return term_class(temperature=temperature)


def FeatureDistillation(loss="mse", teacher_layer_name=None, student_layer_name=None):
    """The keras_kd term equal to `keras.distillation.FeatureDistillation`.

    Its mean squared error between two layers' outputs of the same shape is
    `keras_kd.losses.FeatureHint(teacher_layer, student_layer,
    adapter="none")`; use `FeatureHint` directly for an adapter between
    shapes that differ.

    Args:
        loss: `"mse"` (or `keras.losses.MeanSquaredError()` / its function).
            Defaults to `"mse"`.
        teacher_layer_name: Name of the teacher layer.
        student_layer_name: Name of the student layer.

    Returns:
        A `keras_kd.losses.FeatureHint`.
    """
    if _loss_name(loss) not in ("mse", "mean_squared_error"):
        raise ValueError(
            "Only the mean squared error of `FeatureDistillation` has a "
            f"keras_kd equivalent (`FeatureHint`). Received: loss={loss!r}"
        )
    if teacher_layer_name is None or student_layer_name is None:
        raise ValueError(
            "Arguments `teacher_layer_name` and `student_layer_name` are "
            "required. Received: teacher_layer_name="
            f"{teacher_layer_name!r}, student_layer_name={student_layer_name!r}"
        )
    return FeatureHint(teacher_layer_name, student_layer_name, adapter="none", name="feature")


def to_term(loss):
    """Converts one entry of `distillation_losses` to a keras_kd term.

    Args:
        loss: A `keras_kd.losses.DistillationTerm`, or a
            `keras.distillation.LogitsDistillation` /
            `keras.distillation.FeatureDistillation` object.

    Returns:
        A `keras_kd.losses.DistillationTerm`.
    """
    if isinstance(loss, DistillationTerm):
        return loss
    peer_class = type(loss).__name__
    if peer_class == "LogitsDistillation" and hasattr(loss, "temperature"):
        return LogitsDistillation(temperature=loss.temperature, loss=loss.loss)
    if peer_class == "FeatureDistillation":
        return FeatureDistillation(
            loss.loss, loss.teacher_layer_name, loss.student_layer_name
        )
    raise ValueError(
        "Each distillation loss must be a `keras_kd.losses.DistillationTerm` "
        "or a `keras.distillation.LogitsDistillation`. "
        f"Received: {loss!r} of type {peer_class}"
    )
