"""One test per private Keras / TensorFlow name in `keras_kd._internal.keras_internals`.

Each fails loudly, naming the private name, when a Keras or TensorFlow
release moves or changes it.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from keras_kd._internal import keras_internals as internals
from tests.conftest import NUM_FEATURES, make_mlp


def _moved(name):
    return (
        f"{name} moved or changed in Keras {keras.__version__} / TensorFlow "
        f"{tf.__version__} (checked on {internals.KERAS_VERSION_CHECKED} / "
        f"{internals.TENSORFLOW_VERSION_CHECKED}): update keras_kd/_internal/keras_internals.py"
    )


def test_get_and_set_keras_mask():
    ids = keras.ops.convert_to_tensor(np.array([[3, 1, 0]]))
    embedded = keras.layers.Embedding(5, 2, mask_zero=True)(ids)
    mask = internals.get_keras_mask(embedded)
    assert mask is not None, _moved("keras.src.backend.get_keras_mask")
    np.testing.assert_array_equal(np.asarray(mask), [[True, True, False]])
    copy = keras.ops.cast(embedded, "float16")
    internals.set_keras_mask(copy, mask)
    assert internals.get_keras_mask(copy) is mask, _moved("keras.src.backend.set_keras_mask")


def test_reduce_weighted_values_is_keras_losses_reduction():
    values = tf.constant([[1.0, 2.0, 9.0], [3.0, 4.0, 9.0]])
    weights = tf.constant([[1.0], [0.5]])
    mask = tf.constant([[True, True, False], [True, True, False]])
    # The mean over valid positions of values * weights.
    expected = (1 + 2 + 0.5 * 3 + 0.5 * 4) / 4
    got = float(internals.reduce_weighted_values(values, weights, mask))
    assert got == pytest.approx(expected), _moved("keras.src.losses.loss.reduce_weighted_values")
    # The same as a Keras loss object reducing these values.
    class Identity(keras.losses.Loss):
        def call(self, y_true, y_pred):
            return y_pred

    identity = Identity()
    masked = tf.identity(values)
    internals.set_keras_mask(masked, mask)
    assert float(identity(values, masked, weights)) == pytest.approx(expected)


def test_loss_scaling_for_distribution(two_replicas):
    assert float(internals.scale_loss_for_distribution(tf.constant(3.0))) == 3.0
    assert float(internals.unscale_loss_for_distribution(tf.constant(3.0))) == 3.0
    scaled = two_replicas.run(lambda: internals.scale_loss_for_distribution(tf.constant(3.0)))
    unscaled = two_replicas.run(lambda: internals.unscale_loss_for_distribution(tf.constant(3.0)))
    assert two_replicas.experimental_local_results(scaled)[0].numpy() == 1.5, _moved(
        "keras.src.losses.loss.scale_loss_for_distribution"
    )
    assert two_replicas.experimental_local_results(unscaled)[0].numpy() == 6.0, _moved(
        "keras.src.losses.loss.unscale_loss_for_distribution"
    )


def test_outputs_struct_of_a_functional_model():
    inputs = keras.Input((NUM_FEATURES,))
    logits = keras.layers.Dense(3)(inputs)
    model = keras.Model(inputs, {"logits": logits, "features": inputs})
    struct = internals.outputs_struct(model)
    assert isinstance(struct, dict) and struct["logits"] is logits, _moved("Functional._outputs_struct")


def test_build_shapes_of_a_built_subclassed_model():
    class Tiny(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(2)

        def call(self, x):
            return self.dense(x)

    model = Tiny()
    model.build((None, 4))
    shapes = internals.build_shapes(model)
    assert shapes is not None and list(shapes.values())[0] == (None, 4), _moved("Layer._build_shapes_dict")


def test_graph_nodes_of_a_sequential_model_and_a_shared_layer():
    model = make_mlp(4, seed=0)
    graph = internals.functional_graph(model)
    assert isinstance(graph, keras.Model) and graph is not model, _moved("Sequential._functional")
    keys = internals.graph_node_keys(graph)
    layer = model.get_layer("hidden")
    nodes = internals.inbound_nodes(layer)
    assert len(nodes) == 1, _moved("Layer._inbound_nodes")
    assert keys is not None and f"{id(layer)}_ib-0" in keys, _moved("Functional._nodes")
    # A second model calling the same layer adds a node that is not in this graph.
    other_inputs = keras.Input((NUM_FEATURES,))
    keras.Model(other_inputs, layer(other_inputs))
    assert len(internals.inbound_nodes(layer)) == 2
    assert f"{id(layer)}_ib-1" not in keys


def test_keras_history_names_the_layer_that_made_a_tensor():
    inputs = keras.Input((2,))
    dense = keras.layers.Dense(3)
    history = internals.keras_history(dense(inputs))
    assert history is not None and history.operation is dense, _moved("KerasTensor._keras_history")


def test_maybe_symbolic_build_is_still_a_trainer_method():
    from keras_kd import Distiller

    assert hasattr(keras.Model, internals.MAYBE_SYMBOLIC_BUILD), _moved("Trainer._maybe_symbolic_build")
    assert internals.MAYBE_SYMBOLIC_BUILD in vars(Distiller)


def test_in_multi_worker_mode_is_false_for_a_local_collective_strategy():
    strategy = tf.distribute.MultiWorkerMirroredStrategy()
    assert internals.in_multi_worker_mode(strategy) is False, _moved(
        "MultiWorkerExtended._in_multi_worker_mode"
    )


def test_adam_slots_are_the_moments_of_a_variable():
    variable = keras.Variable(np.ones((2, 2), "float32"))
    optimizer = keras.optimizers.Adam(0.1)
    optimizer.build([variable])
    optimizer.apply([tf.fill((2, 2), 2.0)], [variable])
    momentum, velocity = internals.adam_slots(optimizer, variable)
    # After one step: m = (1 - beta_1) g, v = (1 - beta_2) g².
    np.testing.assert_allclose(momentum.numpy(), 0.1 * 2.0, rtol=1e-6, err_msg=_moved("Adam._momentums"))
    np.testing.assert_allclose(velocity.numpy(), 0.001 * 4.0, rtol=1e-5, err_msg=_moved("Adam._velocities"))


def test_strategy_supports_no_merge_call():
    assert internals.strategy_supports_no_merge_call() in (True, False), _moved(
        "tf.__internal__.distribute.strategy_supports_no_merge_call"
    )


def test_seed_generators_and_adding_them_to_a_layer():
    augmentation = keras.Sequential([
        keras.layers.RandomTranslation(0.1, 0.1, seed=1), keras.layers.RandomFlip(seed=2),
    ])
    generators = internals.seed_generators(augmentation)
    expected = [augmentation.layers[0].generator, augmentation.layers[1].generator]
    assert [id(g) for g in generators] == [id(g) for g in expected], _moved(
        "Layer._flatten_layers / Layer._seed_generators"
    )
    holder = keras.layers.Dense(2)
    holder.build((None, 3))
    internals.add_seed_generators(holder, generators)
    internals.add_seed_generators(holder, generators)  # Added once.
    states = [v for v in holder.variables if any(v is g.state for g in generators)]
    assert len(states) == 2, _moved("Layer._seed_generators (in Layer.variables)")
    assert len(holder.weights) == 2  # Not saved as weights.


def test_stored_value_reads_a_variable_outside_the_step():
    variable = keras.Variable(0.25, trainable=False)
    assert internals.stored_value(variable) == 0.25
    variable.assign(0.5)
    assert internals.stored_value(variable) == 0.5
