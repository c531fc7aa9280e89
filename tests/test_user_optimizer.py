"""What the user passes to `compile` is what trains.

With `alpha=1` the distillation term has weight 0, so the Distiller must train
the student exactly as `student.fit` does with the same loss and optimizer:
Keras's own `update_step`, the user's own optimizer object.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_kd
from tests.conftest import make_data, make_mlp

SPARSE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

OPTIMIZERS = {
    "adam_by_name": lambda: "adam",
    "adam": lambda: keras.optimizers.Adam(1e-2),
    "adamw_clipnorm": lambda: keras.optimizers.AdamW(1e-2, weight_decay=0.05, clipnorm=0.5),
    "sgd_momentum": lambda: keras.optimizers.SGD(0.1, momentum=0.9, nesterov=True),
    "rmsprop": lambda: keras.optimizers.RMSprop(1e-2),
}


def _train(model, optimizer, x, y, **compile_kwargs):
    model.compile(optimizer=optimizer, loss=SPARSE, **compile_kwargs)
    model.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    return model


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_alpha_one_trains_the_student_exactly_as_student_fit(name, teacher):
    x, y = make_data(n=64)
    distiller = _train(
        keras_kd.Distiller(teacher, make_mlp(8, seed=2), alpha=1.0), OPTIMIZERS[name](), x, y
    )
    alone = _train(make_mlp(8, seed=2), OPTIMIZERS[name](), x, y)
    assert type(distiller.optimizer) is type(alone.optimizer)
    assert int(distiller.optimizer.iterations.numpy()) == int(alone.optimizer.iterations.numpy()) == 8
    for ours, theirs in zip(distiller.student.weights, alone.weights):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6, atol=1e-7)
    for ours, theirs in zip(distiller.optimizer.variables, alone.optimizer.variables):
        np.testing.assert_allclose(ours.numpy(), theirs.numpy(), rtol=1e-6, atol=1e-7)


class CountingAdam(keras.optimizers.Adam):
    """Keras's Adam that counts the calls of its `update_step` in a variable."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.update_steps = tf.Variable(0, dtype="int64", trainable=False)

    def update_step(self, gradient, variable, learning_rate):
        self.update_steps.assign_add(1)
        super().update_step(gradient, variable, learning_rate)


def test_the_optimizer_passed_is_the_one_that_runs_its_update_step(teacher):
    x, y = make_data(n=64)
    optimizer = CountingAdam(1e-2)
    distiller = _train(keras_kd.Distiller(teacher, make_mlp(8, seed=2), alpha=0.5), optimizer, x, y)
    assert distiller.optimizer is optimizer
    # 8 steps, one update_step per student variable (2 Dense layers: 4 variables).
    assert int(optimizer.update_steps.numpy()) == 8 * 4
