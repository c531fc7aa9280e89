"""Keras callbacks: scheduling live values, XLA compilation, TFLite export,
chief-only file writing."""

from keras_kd.callbacks.chief import OnChief
from keras_kd.callbacks.live_value_scheduler import LiveValueScheduler
from keras_kd.callbacks.live_value_scheduler import TemperatureScheduler
from keras_kd.callbacks.tflite import TFLiteExport
from keras_kd.callbacks.xla import XLACompile

__all__ = [
    "LiveValueScheduler",
    "OnChief",
    "TFLiteExport",
    "TemperatureScheduler",
    "XLACompile",
]
