"""Every private Keras and TensorFlow name keras_kd uses, in one place.

Keras has no public API for these; each is read here and nowhere else, so a
Keras release that moves one breaks this module, and
`tests/test_keras_internals.py` says which name moved (one test per name).

Checked on Keras 3.15.1 and TensorFlow 2.21.0:

| name | used for |
|---|---|
| `keras.src.backend.get_keras_mask` | a sequence output's padding mask |
| `keras.src.backend.set_keras_mask` | keeping it on the float32 copy of the logits |
| `keras.src.losses.loss.reduce_weighted_values` | the reduction `keras.losses.Loss.__call__` applies (mask, sample weights, `sum_over_batch_size`, distribution scaling) |
| `keras.src.losses.loss.scale_loss_for_distribution` | regularization losses as this replica's share |
| `keras.src.losses.loss.unscale_loss_for_distribution` | logging a replica's loss share as the global value |
| `Functional._outputs_struct` | a Functional model's output structure (dict outputs) |
| `Layer._build_shapes_dict` | the input shape a built subclassed model was built with |
| `Sequential._functional` | the Functional graph a Sequential model wraps |
| `Functional._nodes` and its keys `"<id>_ib-<index>"` | which calls of a shared layer belong to a model's graph |
| `Layer._inbound_nodes` | the calls of a layer |
| `KerasTensor._keras_history` | the layer that made a symbolic tensor |
| `Trainer._maybe_symbolic_build` | overridden by the Distiller (multi-worker build) |
| `MultiWorkerExtended._in_multi_worker_mode` | whether a collective strategy spans workers |
| `Adam._momentums`, `Adam._velocities`, `Optimizer._get_variable_index` | `FusedAdam`: the moment slots of a variable |
| `tf.__internal__.distribute.strategy_supports_no_merge_call` | where an update may branch in a replica context |
| `Variable._value` | a live value's stored value while a JAX step is traced (`alpha` checked without labels) |
| `Layer._flatten_layers`, `Layer._seed_generators` | the augmentation's seed generators, added to the Distiller's state on JAX |
"""

import keras
from keras.src import backend as _backend
from keras.src.losses import loss as _loss

from keras_kd._internal import backends
from keras_kd._internal.backends import tf

KERAS_VERSION_CHECKED = "3.15.1"
TENSORFLOW_VERSION_CHECKED = "2.21.0"

# The private Trainer method the Distiller overrides.
MAYBE_SYMBOLIC_BUILD = "_maybe_symbolic_build"


def stored_value(variable):
    """The float a scalar `keras.Variable` holds, read outside any traced
    step (inside JAX's traced step `variable.value` is the step's tracer)."""
    if backends.is_tensorflow():
        with tf.init_scope():
            return float(keras.ops.convert_to_numpy(variable))
    return float(keras.ops.convert_to_numpy(variable._value))


def get_keras_mask(tensor):
    """The Keras mask carried by `tensor` (padding of a sequence), or `None`."""
    return _backend.get_keras_mask(tensor)


def set_keras_mask(tensor, mask):
    """Attaches `mask` to `tensor`, as Keras layers do with their outputs."""
    _backend.set_keras_mask(tensor, mask)


def reduce_weighted_values(values, sample_weight=None, mask=None, reduction="sum_over_batch_size",
                           dtype="float32"):
    """Keras's loss reduction (by default `"sum_over_batch_size"`), as
    `keras.losses.Loss` applies it after its `call`.

    Masked positions get weight 0 and the mean runs over the valid ones; under
    `tf.distribute` the result is this replica's share of the global mean.
    """
    return _loss.reduce_weighted_values(
        values,
        sample_weight=sample_weight,
        mask=mask,
        reduction=reduction,
        dtype=dtype,
    )


def scale_loss_for_distribution(value):
    """A global loss value as this replica's share (Keras's scaling)."""
    return _loss.scale_loss_for_distribution(value)


def unscale_loss_for_distribution(value):
    """A replica's share of a loss (Keras's scaling) back to the global value."""
    return _loss.unscale_loss_for_distribution(value)


def outputs_struct(model):
    """A Functional model's output structure, or `None` for other models."""
    return getattr(model, "_outputs_struct", None)


def build_shapes(model):
    """`{argument: shape}` a built layer was built with, or `None`."""
    return getattr(model, "_build_shapes_dict", None)


def functional_graph(model):
    """The Functional model holding `model`'s graph (a Sequential wraps one)."""
    return getattr(model, "_functional", None) or model


def graph_node_keys(graph):
    """The node keys (`"<id(layer)>_ib-<index>"`) of a Functional graph, or `None`."""
    return getattr(graph, "_nodes", None)


def node_key(layer, index):
    """Keras's key of the `index`-th node of `layer` in a graph's node keys."""
    return f"{id(layer)}_ib-{index}"


def inbound_nodes(layer):
    """The nodes of `layer`: one per call on symbolic inputs."""
    return layer._inbound_nodes


def keras_history(tensor):
    """The `(operation, node_index, tensor_index)` history of a symbolic tensor."""
    return getattr(tensor, "_keras_history", None)


def in_multi_worker_mode(strategy):
    """Whether a `MultiWorkerMirroredStrategy` spans several workers."""
    return strategy.extended._in_multi_worker_mode()


def adam_slots(optimizer, variable):
    """`(first moment, second moment)` of `variable` in a Keras Adam."""
    index = optimizer._get_variable_index(variable)
    return optimizer._momentums[index], optimizer._velocities[index]


def strategy_supports_no_merge_call():
    """Whether the current strategy lets a replica branch around its update."""
    return tf.__internal__.distribute.strategy_supports_no_merge_call()


def seed_generators(layer):
    """Every `keras.random.SeedGenerator` of `layer` and its sublayers."""
    return [
        generator
        for sublayer in layer._flatten_layers(include_self=True)
        for generator in sublayer._seed_generators
    ]


def add_seed_generators(layer, generators):
    """Makes `generators` part of `layer.variables` (not of its saved weights)."""
    known = {id(g) for g in layer._seed_generators}
    layer._seed_generators.extend(g for g in generators if id(g) not in known)
