"""keras_kd: knowledge distillation for Keras 3.

The public API is what this module exports (grouped as README's feature
list) and the public subpackages: `keras_kd.losses`, `keras_kd.callbacks`,
`keras_kd.schedules`, `keras_kd.optimizers`, `keras_kd.data`,
`keras_kd.methods` and `keras_kd.deployment`. `keras_kd._step` (the
Distiller's step and its parts) and `keras_kd._internal` are internals; see
docs/architecture.md.
"""

__version__ = "0.3.0"

from keras_kd._internal import moved_modules as _moved_modules

_moved_modules.install()  # Old module paths (keras_kd.cache, ...) keep importing.

# The Distiller and its loss.
from keras_kd.distiller import Distiller  # noqa: E402
from keras_kd import losses  # noqa: E402
from keras_kd.losses.learned_temperature import LearnedTemperature  # noqa: E402
# Live values, schedules and callbacks.
from keras_kd import callbacks  # noqa: E402
from keras_kd import schedules  # noqa: E402
# Cached teacher logits, augmentation, replayed views.
from keras_kd import data  # noqa: E402
from keras_kd.data.cache import TeacherCache  # noqa: E402
from keras_kd.data.replay import ReplayCache  # noqa: E402
from keras_kd.data import augmentation  # noqa: E402
# Methods built on the Distiller.
from keras_kd import methods  # noqa: E402
from keras_kd.methods.ensemble import fuse  # noqa: E402
from keras_kd.methods.chain import ChainResult  # noqa: E402
from keras_kd.methods.chain import distill_chain  # noqa: E402
from keras_kd.methods import lifelong  # noqa: E402
from keras_kd.methods.lifelong import learn_without_forgetting  # noqa: E402
from keras_kd.methods.lifelong import multi_head_model  # noqa: E402
from keras_kd.methods import compat  # noqa: E402
# Your optimizer trains; FusedAdam if you choose it.
from keras_kd import optimizers  # noqa: E402
# Deployment: LiteRT export and evaluation reports.
from keras_kd import deployment  # noqa: E402
from keras_kd.deployment.export import ConversionError  # noqa: E402
from keras_kd.deployment.export import ExportReport  # noqa: E402
from keras_kd.deployment.export import export_tflite  # noqa: E402
from keras_kd.deployment.export import run_tflite  # noqa: E402
from keras_kd.deployment.export import verify_tflite  # noqa: E402
from keras_kd.deployment.evaluation import EvaluationReport  # noqa: E402
from keras_kd.deployment.evaluation import ModelEvaluation  # noqa: E402
from keras_kd.deployment.evaluation import PairedComparison  # noqa: E402
from keras_kd.deployment.evaluation import evaluate_models  # noqa: E402
from keras_kd.deployment.evaluation import macro_f1_score  # noqa: E402
from keras_kd.deployment.evaluation import mcnemar_test  # noqa: E402
from keras_kd.deployment.evaluation import plot_histories  # noqa: E402
from keras_kd.deployment.evaluation import summarize_reports  # noqa: E402


def LogitsDistillation(temperature=3.0, loss="kl_divergence"):  # noqa: N802
    """Deprecated: use `keras_kd.losses.KLDivergence(temperature=...)`, or
    `keras_kd.compat.LogitsDistillation` (Keras's own class) with
    `keras_kd.compat.Distiller`. Returns the equivalent keras_kd term."""
    _deprecated("keras_kd.LogitsDistillation", "keras_kd.losses.KLDivergence(temperature=...)")
    return compat.logits_term(temperature, loss)


def FeatureDistillation(loss="mse", teacher_layer_name=None, student_layer_name=None):  # noqa: N802
    """Deprecated: use `keras_kd.losses.FeatureHint(..., adapter="none")`, or
    `keras_kd.compat.FeatureDistillation` (Keras's own class). Returns the
    equivalent keras_kd term."""
    _deprecated("keras_kd.FeatureDistillation", 'keras_kd.losses.FeatureHint(..., adapter="none")')
    return compat.feature_term(loss, teacher_layer_name, student_layer_name)


def _deprecated(old, new):
    import warnings

    warnings.warn(
        f"`{old}` is deprecated: it returned a keras_kd term under a "
        f"keras.distillation class name. Use `{new}`, or keras.distillation's "
        "own classes from `keras_kd.compat` with `keras_kd.compat.Distiller`.",
        DeprecationWarning,
        stacklevel=3,
    )


def __getattr__(name):
    """`keras_kd.<old module>` for modules that moved (see `moved_modules`)."""
    return _moved_modules.module_attribute(name)


__all__ = [
    # The Distiller and its loss.
    "Distiller",
    "losses",
    "LearnedTemperature",
    # Live values, schedules and callbacks.
    "callbacks",
    "schedules",
    # Cached teacher logits, augmentation, replayed views.
    "data",
    "TeacherCache",
    "ReplayCache",
    "augmentation",
    # Methods built on the Distiller.
    "methods",
    "fuse",
    "ChainResult",
    "distill_chain",
    "lifelong",
    "learn_without_forgetting",
    "multi_head_model",
    "compat",
    # Optimizers.
    "optimizers",
    # Deployment and evaluation.
    "deployment",
    "ConversionError",
    "ExportReport",
    "export_tflite",
    "run_tflite",
    "verify_tflite",
    "EvaluationReport",
    "ModelEvaluation",
    "PairedComparison",
    "evaluate_models",
    "macro_f1_score",
    "mcnemar_test",
    "plot_histories",
    "summarize_reports",
    "__version__",
]
