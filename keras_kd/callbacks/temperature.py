"""Deprecated module path: the callback lives in `live_value_scheduler.py`."""

from keras_kd.callbacks.live_value_scheduler import LiveValueScheduler  # noqa: F401
from keras_kd.callbacks.live_value_scheduler import TemperatureScheduler  # noqa: F401
