"""keras_kd: knowledge distillation for Keras 3 on TensorFlow."""

from keras_kd import callbacks
from keras_kd.cache import TeacherCache
from keras_kd import losses
from keras_kd import schedules
from keras_kd.chain import ChainResult
from keras_kd.chain import distill_chain
from keras_kd.compat import FeatureDistillation
from keras_kd.compat import LogitsDistillation
from keras_kd.distiller import Distiller
from keras_kd.ensemble import fuse
from keras_kd.evaluation import EvaluationReport
from keras_kd.evaluation import ModelEvaluation
from keras_kd.evaluation import evaluate_models
from keras_kd.evaluation import macro_f1_score
from keras_kd.evaluation import plot_histories
from keras_kd.evaluation import summarize_reports
from keras_kd.export import ConversionError
from keras_kd.export import ExportReport
from keras_kd.export import export_tflite
from keras_kd.export import run_tflite
from keras_kd.export import verify_tflite
from keras_kd.learned_temperature import LearnedTemperature

__version__ = "0.1.0"

__all__ = [
    "ChainResult",
    "ConversionError",
    "Distiller",
    "EvaluationReport",
    "ExportReport",
    "TeacherCache",
    "FeatureDistillation",
    "LearnedTemperature",
    "LogitsDistillation",
    "ModelEvaluation",
    "callbacks",
    "distill_chain",
    "evaluate_models",
    "macro_f1_score",
    "export_tflite",
    "fuse",
    "losses",
    "plot_histories",
    "run_tflite",
    "schedules",
    "summarize_reports",
    "verify_tflite",
    "__version__",
]
