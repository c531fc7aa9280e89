"""Gradients inside a step, on each Keras backend.

`value_and_gradients` differentiates a function of tensors with the running
backend's own autodiff (TensorFlow's `GradientTape`, `jax.value_and_grad`,
`torch.autograd.grad`). Its inputs are cut from any enclosing
differentiation first: what it returns carries no gradient, so a caller can
compute a part of the step's gradient early (during the forward pass) and
hand it to the step's own differentiation itself (see
`keras_kd._step.chunked_terms`).
"""

import keras
from keras import ops

from keras_kd._internal import backends
from keras_kd._internal.backends import tf


def value_and_gradients(function, arguments):
    """`(value, aux, gradients)` of `function(*arguments) -> (value, aux)`.

    Args:
        function: A function of tensors returning a scalar float tensor and
            any structure of tensors (`aux`, returned as computed).
        arguments: A list of float tensors to differentiate against.

    Returns:
        The scalar, `aux`, and one gradient per argument (zeros where the
        value does not depend on it). None of them carries a gradient.
    """
    arguments = [ops.stop_gradient(argument) for argument in arguments]
    if backends.name() == backends.JAX:
        import jax

        (value, aux), gradients = jax.value_and_grad(
            lambda args: function(*args), has_aux=True
        )(arguments)
        return value, aux, list(gradients)
    if backends.name() == backends.TORCH:
        return _torch_value_and_gradients(function, arguments)
    with tf.GradientTape(watch_accessed_variables=False) as tape:
        for argument in arguments:
            tape.watch(argument)
        value, aux = function(*arguments)
    gradients = tape.gradient(value, arguments, unconnected_gradients=tf.UnconnectedGradients.ZERO)
    return value, aux, gradients


def _torch_value_and_gradients(function, arguments):
    import torch

    arguments = [argument.detach().requires_grad_(True) for argument in arguments]
    with torch.enable_grad():
        value, aux = function(*arguments)
        gradients = torch.autograd.grad(value, arguments, allow_unused=True)
    gradients = [
        torch.zeros_like(argument) if gradient is None else gradient
        for argument, gradient in zip(arguments, gradients)
    ]
    aux = keras.tree.map_structure(lambda t: t.detach() if isinstance(t, torch.Tensor) else t, aux)
    return value.detach(), aux, gradients
