"""The fused Adam update gives Keras's Adam update, and steps aside when it can't."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_kd
from keras_kd import fused_update
from tests.conftest import make_data, make_mlp

SHAPES = [(6, 4), (4,)]


def _variables(seed=0, constraint=None):
    rng = np.random.default_rng(seed)
    variables = [
        keras.Variable(rng.normal(size=shape).astype("float32")) for shape in SHAPES
    ]
    for variable in variables:
        variable.constraint = constraint  # As `Layer.add_weight` sets it.
    return variables


def _gradients(steps, seed=1):
    rng = np.random.default_rng(seed)
    return [
        [rng.normal(size=shape).astype("float32") for shape in SHAPES]
        for _ in range(steps)
    ]


def _run(make_optimizer, apply, steps=5, variables=None):
    """Applies `steps` updates with `apply(optimizer, grads, vars)` in a tf.function."""
    variables = variables or _variables()
    optimizer = make_optimizer()
    optimizer.build(variables)

    @tf.function
    def step(gradients):
        apply(optimizer, gradients, variables)

    for gradients in _gradients(steps):
        step([tf.constant(g) for g in gradients])
    state = [v.numpy() for v in variables]
    slots = [v.numpy() for v in optimizer._momentums + optimizer._velocities]
    return state, slots, int(optimizer.iterations.numpy())


def _keras_apply(optimizer, gradients, variables):
    optimizer.apply(gradients, variables)


def _numpy_adam(lr, beta_1, beta_2, epsilon, one_minus):
    """Adam in float64, with `one_minus(beta)` for the moments' rates."""
    weights = [v.numpy().astype("float64") for v in _variables()]
    m = [np.zeros_like(w) for w in weights]
    v = [np.zeros_like(w) for w in weights]
    # Both paths take the bias corrections from the float32 betas.
    b1, b2 = float(np.float32(beta_1)), float(np.float32(beta_2))
    for t, gradients in enumerate(_gradients(5), start=1):
        for i, g in enumerate(gradients):
            m[i] += (g - m[i]) * one_minus(beta_1)
            v[i] += (g**2 - v[i]) * one_minus(beta_2)
            alpha = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
            weights[i] -= m[i] * alpha / (np.sqrt(v[i]) + epsilon)
    return weights, m + v


@pytest.mark.parametrize("path", ["fused", "keras"])
def test_each_path_matches_a_numpy_adam_with_its_rounding_of_one_minus_beta(path):
    """The paths differ only in how `1 - beta` is rounded (module docstring)."""
    lr, beta_1, beta_2, epsilon = 0.01, 0.8, 0.999, 1e-6
    apply = fused_update.apply_gradients if path == "fused" else _keras_apply
    weights, slots, iterations = _run(
        lambda: keras.optimizers.Adam(lr, beta_1, beta_2, epsilon), apply
    )

    def one_minus(beta):
        if path == "fused":  # 1 - float32(beta), as the kernel forms it.
            return 1.0 - float(np.float32(beta))
        return 1.0 - beta  # In Python floats, as Keras forms it.

    want_weights, want_slots = _numpy_adam(lr, beta_1, beta_2, epsilon, one_minus)
    assert iterations == 5
    for got, want in zip(weights + slots, want_weights + want_slots):
        np.testing.assert_allclose(got, want, rtol=2e-6, atol=0)


def test_the_rounding_difference_is_the_documented_size():
    fused = _run(lambda: keras.optimizers.Adam(1e-2), fused_update.apply_gradients)
    keras_path = _run(lambda: keras.optimizers.Adam(1e-2), _keras_apply)
    velocities = slice(len(SHAPES), None)
    ratios = np.concatenate(
        [(f / k).ravel() for f, k in zip(fused[1][velocities], keras_path[1][velocities])]
    )
    # 1 - float32(0.999) = 0.00099998713: 1.29e-5 less than 0.001.
    np.testing.assert_allclose(ratios, 1 - 1.287e-5, rtol=1e-6)


FUSED_CONFIGS = {
    "adam": lambda: keras.optimizers.Adam(1e-2),
    "schedule": lambda: keras.optimizers.Adam(
        keras.optimizers.schedules.ExponentialDecay(1e-2, 2, 0.5)
    ),
    "adamw_clipnorm": lambda: keras.optimizers.AdamW(
        1e-2, weight_decay=0.1, clipnorm=0.5
    ),
    "global_clipnorm": lambda: keras.optimizers.Adam(1e-2, global_clipnorm=1.0),
    "clipvalue": lambda: keras.optimizers.Adam(1e-2, clipvalue=0.3),
}


@pytest.mark.parametrize("name", sorted(FUSED_CONFIGS))
def test_fused_path_equals_keras_apply(name):
    make = FUSED_CONFIGS[name]
    optimizer, variables = make(), _variables()
    optimizer.build(variables)
    gradients = [tf.constant(g) for g in _gradients(1)[0]]
    assert fused_update.fused_update_applies(optimizer, gradients, variables)

    initial = [v.numpy() for v in _variables()]
    fused = _run(make, fused_update.apply_gradients)
    keras_path = _run(make, _keras_apply)
    assert fused[2] == keras_path[2] == 5
    # The weights' changes (about 1e-2) and the moments agree to the rounding
    # of `1 - beta_2` (1.3e-5 relative) plus a few float32 steps of weights
    # near 1 (1.2e-7 each): a step 0.1% off would be 1e-5 off.
    for got, want, start in zip(fused[0], keras_path[0], initial):
        np.testing.assert_allclose(got - start, want - start, rtol=2e-5, atol=5e-7)
    for got, want in zip(fused[1], keras_path[1]):
        np.testing.assert_allclose(got, want, rtol=2e-5, atol=0)


FALLBACK_CONFIGS = {
    "amsgrad": (lambda: keras.optimizers.Adam(1e-2, amsgrad=True), {}),
    "ema": (lambda: keras.optimizers.Adam(1e-2, use_ema=True), {}),
    "accumulation": (
        lambda: keras.optimizers.Adam(1e-2, gradient_accumulation_steps=2),
        {},
    ),
    "sgd": (lambda: keras.optimizers.SGD(1e-2, momentum=0.9), {}),
    "constraint": (
        lambda: keras.optimizers.Adam(1e-2),
        {"constraint": keras.constraints.NonNeg()},
    ),
}


@pytest.mark.parametrize("name", sorted(FALLBACK_CONFIGS))
def test_other_optimizers_and_variables_take_keras_path(name):
    make, variable_kwargs = FALLBACK_CONFIGS[name]
    optimizer, variables = make(), _variables(**variable_kwargs)
    optimizer.build(variables)
    gradients = [tf.constant(g) for g in _gradients(1)[0]]
    assert not fused_update.fused_update_applies(optimizer, gradients, variables)

    def final_weights(apply):
        variables = _variables(**variable_kwargs)
        optimizer = make()
        optimizer.build(variables)
        for step_gradients in _gradients(4):
            apply(optimizer, [tf.constant(g) for g in step_gradients], variables)
        return [v.numpy() for v in variables]

    for got, want in zip(
        final_weights(fused_update.apply_gradients), final_weights(_keras_apply)
    ):
        np.testing.assert_array_equal(got, want)


def test_tensorflow_variables_are_updated_as_keras_updates_them():
    def final_weights(apply):
        variables = [tf.Variable(v.numpy()) for v in _variables()]
        optimizer = keras.optimizers.Adam(1e-2)
        optimizer.build(variables)
        gradients = [tf.constant(g) for g in _gradients(1)[0]]
        if apply is fused_update.apply_gradients:
            assert fused_update.fused_update_applies(optimizer, gradients, variables)
        apply(optimizer, gradients, variables)
        assert int(optimizer.iterations.numpy()) == 1
        return [v.numpy() for v in variables]

    for got, want in zip(
        final_weights(fused_update.apply_gradients), final_weights(_keras_apply)
    ):
        np.testing.assert_allclose(got, want, rtol=0, atol=2.5e-7)


def test_mirrored_variables_are_updated_on_every_replica(two_replicas):
    with two_replicas.scope():
        variables = _variables()
        optimizer = keras.optimizers.Adam(1e-2)
        optimizer.build(variables)
    gradients = [tf.constant(g) for g in _gradients(1)[0]]
    # Outside the scope, but the variables are mirrored: Keras's path.
    assert not fused_update.fused_update_applies(optimizer, gradients, variables)
    fused_update.apply_gradients(optimizer, gradients, variables)
    for variable in variables:
        first, second = two_replicas.experimental_local_results(variable.value)
        np.testing.assert_array_equal(first.numpy(), second.numpy())
    assert not np.array_equal(variables[0].numpy(), _variables()[0].numpy())


def test_sparse_none_and_distributed_gradients_take_keras_path():
    optimizer, variables = keras.optimizers.Adam(), _variables()
    optimizer.build(variables)
    dense = [tf.constant(g) for g in _gradients(1)[0]]
    sparse = tf.IndexedSlices(
        tf.ones((1, 4)), tf.constant([2]), tf.constant([6, 4])
    )
    assert fused_update.fused_update_applies(optimizer, dense, variables)
    assert not fused_update.fused_update_applies(
        optimizer, [sparse, dense[1]], variables
    )
    assert not fused_update.fused_update_applies(
        optimizer, [None, dense[1]], variables
    )
    with tf.distribute.OneDeviceStrategy("/cpu:0").scope():
        assert not fused_update.fused_update_applies(optimizer, dense, variables)


def _fit_distiller():
    teacher = make_mlp(16, seed=3, name="fused_teacher")
    student = make_mlp(4, seed=4, name="fused_student")
    x, y = make_data()
    distiller = keras_kd.Distiller(teacher, student, temperature=3.0, alpha=0.3)
    distiller.compile(
        optimizer=keras.optimizers.Adam(1e-2),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    distiller.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
    return [w.numpy() for w in student.weights], distiller


def test_distiller_fit_uses_fused_update_with_keras_result(monkeypatch):
    decisions = []
    original = fused_update.fused_update_applies

    def recording(*args):
        decisions.append(original(*args))
        return decisions[-1]

    monkeypatch.setattr(fused_update, "fused_update_applies", recording)
    fused_weights, distiller = _fit_distiller()
    assert decisions and all(decisions)
    assert int(distiller.optimizer.iterations.numpy()) == 8

    monkeypatch.setattr(fused_update, "fused_update_applies", lambda *a: False)
    keras_weights, _ = _fit_distiller()
    # 8 steps from the same start: equal to the rounding of `1 - beta_2`.
    for got, want in zip(fused_weights, keras_weights):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    assert not all(np.array_equal(a, b) for a, b in zip(fused_weights, keras_weights))
