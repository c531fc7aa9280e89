"""keras.distillation's spellings, for code migrated by changing only its import.

```python
# from keras.distillation import Distiller, LogitsDistillation
from keras_kd.methods.compat import Distiller, LogitsDistillation
```

`LogitsDistillation` and `FeatureDistillation` here are Keras's own classes.
`keras_kd.compat.Distiller` takes keras.distillation's arguments
(`distillation_losses`, `distillation_loss_weights`, `student_loss_weight`,
which defaults to `0.5` as there), reads back what it was given, logs
keras.distillation's `total_loss` and `distillation_loss` too, and trains
with keras_kd's loss: each Keras distillation loss is converted to the
equivalent keras_kd term (`to_term`), which computes `T² · KL` on log-softmax
where keras.distillation's default string loss applies the plain
`kl_divergence` function to clipped probabilities without `T²`.
"""

import keras
import numpy as np
from keras.distillation import FeatureDistillation
from keras.distillation import LogitsDistillation

from keras_kd import distiller
from keras_kd._step import distiller_config
from keras_kd._internal import checks
from keras_kd.losses.base import DistillationTerm
from keras_kd.losses.feature_hint import FeatureHint
from keras_kd.losses.kl_divergence import KLDivergence
from keras_kd.losses.soft_target_crossentropy import SoftTargetCrossentropy

__all__ = ["Distiller", "FeatureDistillation", "LogitsDistillation", "to_term"]

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
        return loss.name  # Built-in loss objects are named after their function.
    return getattr(loss, "__name__", repr(loss))


def logits_term(temperature=3.0, loss="kl_divergence", name=None):
    """The keras_kd term equal to `LogitsDistillation(temperature, loss)`.

    Args:
        temperature: Positive float, the term's own temperature. Defaults to
            `3.0`, as in keras.distillation.
        loss: `"kl_divergence"` (or a `keras.losses.KLDivergence`) for
            `KLDivergence`, `"categorical_crossentropy"` for
            `SoftTargetCrossentropy`. Defaults to `"kl_divergence"`.
        name: Optional name of the term. Defaults to the term's own.

    Returns:
        A `keras_kd.losses.DistillationTerm` with its own live temperature.
    """
    term_class = _TERM_FOR_LOSS.get(_loss_name(loss))
    if term_class is None:
        raise ValueError(
            "Argument `loss` of `LogitsDistillation` must be one of "
            f"{sorted(_TERM_FOR_LOSS)} (or the matching keras.losses object). "
            f"Received: loss={loss!r}. For another comparison of logits, "
            "use a keras_kd.losses term such as `LogitMSE`, or subclass "
            "`keras_kd.losses.DistillationTerm`."
        )
    return term_class(temperature=temperature, name=name)


def feature_term(loss="mse", teacher_layer_name=None, student_layer_name=None, name="feature"):
    """The keras_kd term equal to `FeatureDistillation(loss, ...)`: a
    `keras_kd.losses.FeatureHint` without adapter (same shapes only; use
    `FeatureHint` directly for an adapter between shapes that differ)."""
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
    return FeatureHint(teacher_layer_name, student_layer_name, adapter="none", name=name)


def to_term(loss, name=None):
    """Converts one entry of `distillation_losses` to a keras_kd term.

    Args:
        loss: A `keras_kd.losses.DistillationTerm` (returned as it is), or a
            `keras.distillation.LogitsDistillation` /
            `keras.distillation.FeatureDistillation`.
        name: Optional name for a converted term.

    Returns:
        A `keras_kd.losses.DistillationTerm`.
    """
    if isinstance(loss, DistillationTerm):
        return loss
    if isinstance(loss, LogitsDistillation):
        return logits_term(loss.temperature, loss.loss, name=name)
    if isinstance(loss, FeatureDistillation):
        return feature_term(
            loss.loss, loss.teacher_layer_name, loss.student_layer_name,
            name=name or "feature",
        )
    raise ValueError(
        "Each distillation loss must be a `keras_kd.losses.DistillationTerm` "
        "or a `keras.distillation.LogitsDistillation` / `FeatureDistillation`; "
        "a loss of your own is written as a `DistillationTerm` subclass (one "
        f"`compute` method). Received: {loss!r} of type {type(loss).__name__}"
    )


def _default_name(loss):
    """The name `to_term` gives `loss`, or `None` if it cannot convert it."""
    if isinstance(loss, LogitsDistillation):
        term_class = _TERM_FOR_LOSS.get(_loss_name(loss.loss))
        return None if term_class is None else term_class.default_name
    return "feature" if isinstance(loss, FeatureDistillation) else None


def _unique_terms(losses):
    """Each loss as a keras_kd term.

    keras_kd terms keep their own names; a converted loss takes its term's
    name, or `_1`, `_2`... when that is taken (as Keras names layers), so that
    each term has its own live weight and log entry.
    """
    used = {loss.name for loss in losses if isinstance(loss, DistillationTerm)}
    terms = []
    for loss in losses:
        if isinstance(loss, DistillationTerm):
            terms.append(loss)
            continue
        base = _default_name(loss)
        name, index = base, 0
        while name is not None and name in used:
            index += 1
            name = f"{base}_{index}"
        used.add(name)
        terms.append(to_term(loss, name=name))
    return terms


def _as_given(current, given):
    """`given` (a Python float) while the float32 variable still holds it."""
    current = keras.ops.convert_to_numpy(current)
    return given if current == np.float32(given) else float(current)


@keras.saving.register_keras_serializable(package="keras_kd.compat")
class Distiller(distiller.Distiller):
    """`keras_kd.Distiller` with keras.distillation's arguments and logs.

    Args:
        teacher: The trained teacher `keras.Model` (or a list of them).
        student: The student `keras.Model`.
        distillation_losses: A `keras.distillation.LogitsDistillation` or
            `FeatureDistillation`, a keras_kd term, or a list of them.
            Defaults to `None` (keras_kd's `KLDivergence` at `temperature`).
        distillation_loss_weights: Optional list of floats, one weight per
            distillation loss. Defaults to `None` (all `1.0`).
        student_loss_weight: Float in [0, 1], the weight of the student loss.
            Defaults to `0.5`, as in keras.distillation.
        **kwargs: Other `keras_kd.Distiller` arguments (`temperature`,
            `teacher_returns`, `skip_nonfinite_steps`, `name`...).

    Example:

    ```python
    from keras_kd.methods.compat import Distiller, LogitsDistillation

    distiller = Distiller(
        teacher, student,
        distillation_losses=LogitsDistillation(temperature=3.0),
        student_loss_weight=0.5,
    )
    ```
    """

    extra_logged_losses = ("total_loss", "distillation_loss")

    def __init__(
        self,
        teacher,
        student,
        distillation_losses=None,
        distillation_loss_weights=None,
        student_loss_weight=0.5,
        **kwargs,
    ):
        for argument in ("alpha", "terms"):
            if argument in kwargs:
                raise ValueError(
                    f"Argument `{argument}` is keras_kd.Distiller's spelling; "
                    "keras_kd.compat.Distiller takes keras.distillation's "
                    "`student_loss_weight` and `distillation_losses`. "
                    f"Received: {argument}={kwargs[argument]!r}"
                )
        losses = _as_list(distillation_losses)
        if distillation_losses is not None and not losses:
            raise ValueError(
                "Argument `distillation_losses` must hold at least one "
                "distillation loss. Received: distillation_losses=[]"
            )
        terms = _unique_terms(losses) if losses else [KLDivergence()]
        if distillation_loss_weights is not None:
            weights = _loss_weights(distillation_loss_weights, len(terms))
            for term, weight in zip(terms, weights):
                term.weight.assign(weight)
        alpha = checks.check_alpha(student_loss_weight, "student_loss_weight")
        super().__init__(teacher, student, alpha=alpha, terms=terms, **kwargs)
        self._student_loss_weight = alpha
        self._distillation_losses = losses or list(self.terms)
        self._given_weights = (
            weights if distillation_loss_weights is not None
            else [float(keras.ops.convert_to_numpy(term.weight)) for term in terms]
        )

    @property
    def distillation_losses(self):
        """The distillation losses as given (keras.distillation objects stay theirs)."""
        return list(self._distillation_losses)

    @property
    def distillation_loss_weights(self):
        """One weight per distillation loss: as given, or its live value once changed."""
        return [
            _as_given(term.weight, given) for term, given in zip(self.terms, self._given_weights)
        ]

    @property
    def student_loss_weight(self):
        """The weight of the student loss: as given, or the live `alpha` once changed."""
        return _as_given(self.alpha, self._student_loss_weight)

    @student_loss_weight.setter
    def student_loss_weight(self, value):
        self._student_loss_weight = self.set_live_value("alpha", value)

    def get_config(self):
        config = super().get_config()
        config.pop("alpha")
        config["student_loss_weight"] = self.student_loss_weight
        config.pop("terms")
        config["distillation_losses"] = [
            keras.saving.serialize_keras_object(_with_live_values(loss, term))
            for loss, term in zip(self._distillation_losses, self.terms)
        ]
        config["distillation_loss_weights"] = self.distillation_loss_weights
        return config

    @classmethod
    def from_config(cls, config, custom_objects=None):
        entries = distiller_config.SERIALIZED_ENTRIES + ("distillation_losses",)
        return cls(**distiller_config.constructor_arguments(config, custom_objects, entries))


def _as_list(losses):
    if losses is None:
        return []
    return list(losses) if isinstance(losses, (list, tuple)) else [losses]


def _with_live_values(loss, term):
    """A `LogitsDistillation` with its term's current temperature (for configs)."""
    if not isinstance(loss, LogitsDistillation):
        return loss  # Features have no live value; keras_kd terms save their own.
    return LogitsDistillation(_as_given(term.temperature, loss.temperature), loss.loss)


def _loss_weights(weights, count):
    if weights is None:
        return [1.0] * count
    weights = list(weights)
    if len(weights) != count:
        raise ValueError(
            "Argument `distillation_loss_weights` must have one weight "
            f"per distillation loss ({count}). Received: "
            f"distillation_loss_weights={weights}"
        )
    return [checks.check_weight(w, "distillation_loss_weights") for w in weights]
