"""`keras_kd.optimizers.FusedAdam`: Keras's Adam through TensorFlow's fused kernel.

Checked against a float64 numpy Adam with each path's rounding of `1 - beta`,
against Keras's own Adam in `fit` of a plain Keras model, and on each path
where it must be Keras's Adam exactly.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_kd
from keras_kd.optimizers import FusedAdam
from tests.conftest import make_data, make_mlp

SHAPES = [(6, 4), (4,)]
SPARSE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _variables():
    rng = np.random.default_rng(0)
    return [keras.Variable(rng.normal(size=shape).astype("float32")) for shape in SHAPES]


def _gradients(steps):
    rng = np.random.default_rng(1)
    return [[rng.normal(size=shape).astype("float32") for shape in SHAPES] for _ in range(steps)]


def _apply(optimizer, steps=5):
    """`steps` updates of `optimizer` inside a tf.function; the final weights."""
    variables = _variables()
    optimizer.build(variables)

    @tf.function
    def step(gradients):
        optimizer.apply(gradients, variables)

    for gradients in _gradients(steps):
        step([tf.constant(g) for g in gradients])
    return [v.numpy() for v in variables]


def _numpy_adam(lr, beta_1, beta_2, epsilon, one_minus, steps=5):
    """Adam in float64 with `one_minus(beta)` as the moments' rates."""
    weights = [v.numpy().astype("float64") for v in _variables()]
    m = [np.zeros_like(w) for w in weights]
    v = [np.zeros_like(w) for w in weights]
    b1, b2 = float(np.float32(beta_1)), float(np.float32(beta_2))  # Bias corrections: float32 betas.
    for t, gradients in enumerate(_gradients(steps), start=1):
        for i, g in enumerate(gradients):
            m[i] += (g - m[i]) * one_minus(beta_1)
            v[i] += (g**2 - v[i]) * one_minus(beta_2)
            weights[i] -= m[i] * (lr * np.sqrt(1 - b2**t) / (1 - b1**t)) / (np.sqrt(v[i]) + epsilon)
    return weights


def _float32_one_minus(beta):
    return float(np.float32(1.0) - np.float32(beta))  # As the kernel forms it.


def _python_one_minus(beta):
    return 1.0 - beta  # As Keras's Adam forms it.


@pytest.mark.parametrize(
    "optimizer_class, one_minus",
    [(FusedAdam, _float32_one_minus), (keras.optimizers.Adam, _python_one_minus)],
    ids=["fused_adam", "keras_adam"],
)
def test_matches_a_numpy_adam_with_its_rounding_of_one_minus_beta(optimizer_class, one_minus):
    lr, beta_1, beta_2, epsilon = 0.01, 0.8, 0.999, 1e-6
    got = _apply(optimizer_class(lr, beta_1=beta_1, beta_2=beta_2, epsilon=epsilon))
    expected = _numpy_adam(lr, beta_1, beta_2, epsilon, one_minus)
    for g, e in zip(got, expected):
        np.testing.assert_allclose(g, e, rtol=2e-6, atol=1e-7)


def test_the_rounding_difference_has_its_documented_size():
    # 1 - float32(0.999) against 1 - 0.999: the second moment's rate, 1.3e-5 relative.
    assert _float32_one_minus(0.999) / _python_one_minus(0.999) - 1 == pytest.approx(-1.3e-5, abs=1e-6)
    assert _float32_one_minus(0.9) / _python_one_minus(0.9) - 1 == pytest.approx(2.4e-7, abs=2e-8)
    gradients = [tf.constant(g) for g in _gradients(1)[0]]
    velocities = []
    for optimizer in (FusedAdam(0.01), keras.optimizers.Adam(0.01)):
        variables = _variables()
        optimizer.build(variables)
        optimizer.apply(gradients, variables)
        velocities.append(optimizer.variables[-1].numpy())  # The last variable's velocity.
    ratio = velocities[0] / velocities[1]
    np.testing.assert_allclose(ratio, 1 - 1.3e-5, atol=2e-6)


def _fit(optimizer, model=None, epochs=2, **fit_kwargs):
    x, y = make_data(n=64)
    model = model or make_mlp(8, seed=2)
    model.compile(optimizer=optimizer, loss=SPARSE)
    model.fit(x, y, batch_size=16, epochs=epochs, shuffle=False, verbose=0, **fit_kwargs)
    return model


@pytest.mark.parametrize(
    "settings",
    [
        lambda lr: {"learning_rate": lr},
        lambda lr: {"learning_rate": keras.optimizers.schedules.ExponentialDecay(lr, 2, 0.5)},
        lambda lr: {"learning_rate": lr, "weight_decay": 0.01, "clipnorm": 0.5},
        lambda lr: {"learning_rate": lr, "global_clipnorm": 0.1},
        lambda lr: {"learning_rate": lr, "use_ema": True, "ema_overwrite_frequency": 3},
        lambda lr: {"learning_rate": lr, "gradient_accumulation_steps": 2},
    ],
    ids=["plain", "schedule", "decay_clipnorm", "global_clipnorm", "ema", "accumulation"],
)
def test_in_fit_of_a_plain_keras_model_it_trains_as_keras_adam(settings):
    fused = _fit(FusedAdam(**settings(0.01)))
    keras_adam = _fit(keras.optimizers.Adam(**settings(0.01)))
    assert int(fused.optimizer.iterations.numpy()) == int(keras_adam.optimizer.iterations.numpy())
    # Only the rounding of 1 - beta differs: far less than a learning rate
    # 0.1% off moves the same weights.
    lr_off = _fit(keras.optimizers.Adam(**settings(0.01001)))
    rounding = max(np.max(np.abs(f.numpy() - k.numpy())) for f, k in zip(fused.weights, keras_adam.weights))
    lr_error = max(np.max(np.abs(o.numpy() - k.numpy())) for o, k in zip(lr_off.weights, keras_adam.weights))
    assert rounding < 0.1 * lr_error, (rounding, lr_error)
    for f, k in zip(fused.optimizer.variables, keras_adam.optimizer.variables):
        np.testing.assert_allclose(f.numpy(), k.numpy(), rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("path", ["amsgrad", "sparse_gradients", "two_replicas"])
def test_where_the_kernel_does_not_apply_it_is_keras_adam_exactly(path, two_replicas):
    if path == "amsgrad":
        fused, keras_adam = _fit(FusedAdam(0.01, amsgrad=True)), _fit(keras.optimizers.Adam(0.01, amsgrad=True))
    elif path == "sparse_gradients":
        updated = []
        for optimizer in (FusedAdam(0.01), keras.optimizers.Adam(0.01)):
            table = keras.Variable(np.ones((10, 2), "float32"))
            optimizer.build([table])
            for step in range(3):
                rows = tf.IndexedSlices(tf.fill((2, 2), 0.5 + step), tf.constant([1, 7]), tf.constant([10, 2]))
                optimizer.apply([rows], [table])
            updated.append(table.numpy())
        np.testing.assert_array_equal(updated[0], updated[1])
        return
    else:
        models = []
        for make in (lambda: FusedAdam(0.01), lambda: keras.optimizers.Adam(0.01)):
            with two_replicas.scope():
                models.append(_fit(make()))
        fused, keras_adam = models
    for f, k in zip(fused.weights, keras_adam.weights):
        np.testing.assert_array_equal(f.numpy(), k.numpy())


def test_serializes_and_saves_with_its_model(tmp_path):
    optimizer = FusedAdam(0.02, beta_2=0.99, clipnorm=1.0)
    restored = keras.optimizers.deserialize(keras.optimizers.serialize(optimizer))
    assert type(restored) is FusedAdam
    assert restored.get_config() == optimizer.get_config()
    model = _fit(FusedAdam(0.01))
    model.save(tmp_path / "model.keras")
    loaded = keras.saving.load_model(tmp_path / "model.keras")
    assert type(loaded.optimizer) is FusedAdam
    assert int(loaded.optimizer.iterations.numpy()) == int(model.optimizer.iterations.numpy())
    for a, b in zip(loaded.optimizer.variables, model.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_a_distiller_trains_with_it_as_with_keras_adam(teacher):
    x, y = make_data(n=64)
    students = []
    for optimizer in (FusedAdam(0.01), keras.optimizers.Adam(0.01)):
        distiller = keras_kd.Distiller(teacher, make_mlp(8, seed=2), alpha=0.5)
        distiller.compile(optimizer=optimizer, loss=SPARSE)
        distiller.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0)
        assert distiller.optimizer is optimizer
        students.append(distiller.student)
    for f, k in zip(students[0].weights, students[1].weights):
        np.testing.assert_allclose(f.numpy(), k.numpy(), rtol=2e-4, atol=1e-6)
