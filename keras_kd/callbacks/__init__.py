"""Keras callbacks: annealing live values, XLA compilation, TFLite export."""

from keras_kd.callbacks.temperature import TemperatureScheduler
from keras_kd.callbacks.tflite import TFLiteExport
from keras_kd.callbacks.xla import XLACompile

__all__ = ["TFLiteExport", "TemperatureScheduler", "XLACompile"]
