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


def _checked(value, argument, valid, requirement):
    """`value` as a float if `valid(number)`, else Keras's ValueError."""
    number = as_float(value, argument)
    if not valid(number):
        raise ValueError(
            f"Argument `{argument}` must be {requirement}. "
            f"Received: {argument}={value!r}"
        )
    return number


def check_temperature(value, argument="temperature"):
    """Returns `value` as a float, or raises if it is not finite and > 0."""
    return _checked(
        value, argument, lambda n: math.isfinite(n) and n > 0, "a finite number > 0"
    )


def check_alpha(value, argument="alpha"):
    """Returns `value` as a float, or raises if it is not in [0, 1]."""
    return _checked(
        value, argument, lambda n: 0.0 <= n <= 1.0,
        "in [0, 1] (the weight of the student loss)",
    )


def check_weight(value, argument="weight"):
    """Returns `value` as a float, or raises if it is not finite and >= 0."""
    return _checked(
        value, argument, lambda n: math.isfinite(n) and n >= 0, "a finite number >= 0"
    )
