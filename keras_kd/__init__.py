"""keras_kd: knowledge distillation for Keras 3 (TensorFlow; the Distiller also on JAX and PyTorch)."""

from keras_kd import augmentation
from keras_kd import callbacks
from keras_kd.cache import TeacherCache
from keras_kd import losses
from keras_kd import schedules
from keras_kd.chain import ChainResult
from keras_kd.chain import distill_chain
from keras_kd.distiller import Distiller
from keras_kd.ensemble import fuse
from keras_kd.evaluation import EvaluationReport
from keras_kd.evaluation import ModelEvaluation
from keras_kd.evaluation import evaluate_models
from keras_kd.evaluation import PairedComparison
from keras_kd.evaluation import macro_f1_score
from keras_kd.evaluation import mcnemar_test
from keras_kd.evaluation import plot_histories
from keras_kd.evaluation import summarize_reports
from keras_kd.export import ConversionError
from keras_kd.export import ExportReport
from keras_kd.export import export_tflite
from keras_kd.export import run_tflite
from keras_kd.export import verify_tflite
from keras_kd.learned_temperature import LearnedTemperature
from keras_kd import lifelong
from keras_kd.lifelong import learn_without_forgetting
from keras_kd.lifelong import multi_head_model
from keras_kd.replay import ReplayCache
from keras_kd import compat
from keras_kd import optimizers

__version__ = "0.2.0"


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

__all__ = [
    "ChainResult",
    "ConversionError",
    "Distiller",
    "EvaluationReport",
    "ExportReport",
    "TeacherCache",
    "ReplayCache",
    "LearnedTemperature",
    "ModelEvaluation",
    "augmentation",
    "callbacks",
    "compat",
    "distill_chain",
    "evaluate_models",
    "macro_f1_score",
    "mcnemar_test",
    "PairedComparison",
    "export_tflite",
    "fuse",
    "learn_without_forgetting",
    "lifelong",
    "multi_head_model",
    "losses",
    "optimizers",
    "plot_histories",
    "run_tflite",
    "schedules",
    "summarize_reports",
    "verify_tflite",
    "__version__",
]
