"""Keras callbacks: scheduling live values, XLA compilation, TFLite export,
chief-only file writing, a new head's warm-up."""

from keras_kd.callbacks.chief import OnChief
from keras_kd.callbacks.head_warmup import HeadWarmup
from keras_kd.callbacks.live_value_scheduler import LiveValueScheduler
from keras_kd.callbacks.live_value_scheduler import TemperatureScheduler
from keras_kd.callbacks.tflite import TFLiteExport
from keras_kd.callbacks.xla import XLACompile

__all__ = [
    "HeadWarmup",
    "LiveValueScheduler",
    "OnChief",
    "TFLiteExport",
    "TemperatureScheduler",
    "XLACompile",
]
