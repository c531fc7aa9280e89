"""keras_kd: knowledge distillation for Keras 3 on TensorFlow."""

from keras_kd import losses
from keras_kd.compat import FeatureDistillation
from keras_kd.compat import LogitsDistillation
from keras_kd.distiller import Distiller

__version__ = "0.1.0"

__all__ = [
    "Distiller",
    "FeatureDistillation",
    "LogitsDistillation",
    "losses",
    "__version__",
]
