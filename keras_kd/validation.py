"""Argument checks shared by the Distiller and its terms, in Keras's voice."""

import math


def as_float(value, argument):
    try:
        if isinstance(value, (bool, str, bytes)):
            raise TypeError(value)
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"Argument `{argument}` must be a number. "
            f"Received: {argument}={value!r}"
        ) from None


def check_temperature(value, argument="temperature"):
    """Returns `value` as a float, or raises if it is not finite and > 0."""
    number = as_float(value, argument)
    if not (math.isfinite(number) and number > 0):
        raise ValueError(
            f"Argument `{argument}` must be a finite number > 0. "
            f"Received: {argument}={value!r}"
        )
    return number


def check_alpha(value, argument="alpha"):
    """Returns `value` as a float, or raises if it is not in [0, 1]."""
    number = as_float(value, argument)
    if not (0.0 <= number <= 1.0):
        raise ValueError(
            f"Argument `{argument}` must be in [0, 1] (the weight of the "
            f"student loss). Received: {argument}={value!r}"
        )
    return number


def check_weight(value, argument="weight"):
    """Returns `value` as a float, or raises if it is not finite and >= 0."""
    number = as_float(value, argument)
    if not (math.isfinite(number) and number >= 0):
        raise ValueError(
            f"Argument `{argument}` must be a finite number >= 0. "
            f"Received: {argument}={value!r}"
        )
    return number
