"""Keras callbacks: annealing live values, XLA compilation, TFLite export,
chief-only file writing."""

from keras_kd.callbacks.chief import OnChief
from keras_kd.callbacks.temperature import TemperatureScheduler
from keras_kd.callbacks.tflite import TFLiteExport
from keras_kd.callbacks.xla import XLACompile

__all__ = ["OnChief", "TFLiteExport", "TemperatureScheduler", "XLACompile"]
