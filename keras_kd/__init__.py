"""keras_kd: knowledge distillation for Keras 3 on TensorFlow."""

from keras_kd import callbacks
from keras_kd.cache import TeacherCache
from keras_kd import losses
from keras_kd import schedules
from keras_kd.compat import FeatureDistillation
from keras_kd.compat import LogitsDistillation
from keras_kd.distiller import Distiller
from keras_kd.export import ConversionError
from keras_kd.export import ExportReport
from keras_kd.export import export_tflite
from keras_kd.export import verify_tflite

__version__ = "0.1.0"

__all__ = [
    "ConversionError",
    "Distiller",
    "ExportReport",
    "TeacherCache",
    "FeatureDistillation",
    "LogitsDistillation",
    "callbacks",
    "export_tflite",
    "losses",
    "schedules",
    "verify_tflite",
    "__version__",
]
