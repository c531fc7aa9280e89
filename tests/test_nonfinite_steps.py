"""A step with a non-finite loss or gradient is skipped, counted and warned about."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_kd
from tests.conftest import NUM_FEATURES, make_data, make_mlp

SPARSE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
BATCH = 16
BAD_BATCH = 2  # Of 4 per epoch.


def _data(bad_row=3):
    """4 batches of 16; batch 2 holds one NaN input row (at `bad_row`)."""
    x, y = make_data(n=4 * BATCH, seed=5)
    x[BAD_BATCH * BATCH + bad_row, 0] = np.nan
    return x, y


def _batches(x, y, skip=()):
    keep = [b for b in range(len(x) // BATCH) if b not in skip]
    rows = np.concatenate([np.arange(b * BATCH, (b + 1) * BATCH) for b in keep])
    return tf.data.Dataset.from_tensor_slices((x[rows], y[rows])).batch(BATCH)


def _student():
    keras.utils.set_random_seed(2)
    return keras.Sequential(
        [
            keras.Input((NUM_FEATURES,)),
            keras.layers.Dense(8),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.Dense(5),
        ],
        name="student",
    )


def _fit(
    dataset, epochs=2, jit_compile=False, callbacks=(), strategy=None, optimizer=None,
    steps_per_execution=1, **distiller_kwargs,
):
    strategy = strategy or tf.distribute.get_strategy()
    with strategy.scope():
        distiller = keras_kd.Distiller(
            make_mlp(32, seed=1), _student(), temperature=2.0, alpha=0.5, **distiller_kwargs
        )
        distiller.compile(
            optimizer=optimizer or keras.optimizers.Adam(1e-2), loss=SPARSE,
            jit_compile=jit_compile, steps_per_execution=steps_per_execution,
        )
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = distiller.fit(dataset, epochs=epochs, callbacks=list(callbacks), verbose=0).history
    skipped_warnings = [str(w.message) for w in caught if "were skipped" in str(w.message)]
    return distiller, history, skipped_warnings


def _state(distiller):
    return [v.numpy() for v in distiller.student.weights + distiller.optimizer.variables]


@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
def test_a_nonfinite_step_is_skipped_as_if_the_batch_were_absent(jit_compile):
    x, y = _data()
    skipping, history, messages = _fit(_batches(x, y), jit_compile=jit_compile)
    absent, _, _ = _fit(_batches(x, y, skip=[BAD_BATCH]), jit_compile=jit_compile)
    # Weights, BatchNorm statistics, Adam's moments and step count: all as if
    # the bad batch had not been there.
    for got, expected in zip(_state(skipping), _state(absent)):
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    assert int(skipping.optimizer.iterations.numpy()) == 2 * 3
    assert history["skipped_steps"] == [1.0, 1.0]
    # The logged mean includes the bad batch, so it says NaN for those epochs.
    assert np.isnan(history["loss"]).all()
    assert messages == [
        f"Epoch {epoch}: 1 training step(s) had a non-finite loss or gradient and were skipped "
        "(no update applied). Look for NaN/inf in the inputs or labels, a too large learning "
        "rate, or extreme logits."
        for epoch in (1, 2)
    ]


@pytest.mark.parametrize(
    "settings",
    [
        {"steps_per_execution": 2},
        {"optimizer": lambda: keras.optimizers.Adam(1e-2, gradient_accumulation_steps=2)},
        {"optimizer": lambda: keras.optimizers.Adam(1e-2, use_ema=True, ema_overwrite_frequency=2)},
    ],
    ids=["steps_per_execution", "gradient_accumulation", "ema"],
)
def test_the_skip_works_with_keras_training_options(settings):
    settings = {k: v() if callable(v) else v for k, v in settings.items()}
    fresh = lambda: {k: (type(v)(**v.get_config()) if isinstance(v, keras.optimizers.Optimizer) else v)  # noqa: E731
                     for k, v in settings.items()}
    x, y = _data()
    skipping, history, _ = _fit(_batches(x, y), **fresh())
    absent, _, _ = _fit(_batches(x, y, skip=[BAD_BATCH]), **fresh())
    assert history["skipped_steps"] == [1.0, 1.0]
    # (With accumulation, `iterations` counts the applied updates: 3.)
    assert int(skipping.optimizer.iterations.numpy()) == int(absent.optimizer.iterations.numpy()) > 0
    # Weights, BatchNorm statistics and every optimizer variable (the
    # accumulators, the moving averages) as if the bad batch were absent.
    for got, expected in zip(_state(skipping), _state(absent)):
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


def test_finite_runs_log_zero_skipped_steps_and_warn_nothing():
    x, y = make_data(n=4 * BATCH, seed=5)
    _, history, messages = _fit(_batches(x, y))
    assert history["skipped_steps"] == [0.0, 0.0]
    assert np.isfinite(history["loss"]).all()
    assert messages == []


def test_with_the_check_off_every_update_is_applied_as_keras_applies_it():
    x, y = make_data(n=4 * BATCH, seed=5)
    checked, _, _ = _fit(_batches(x, y))
    unchecked, history, messages = _fit(_batches(x, y), skip_nonfinite_steps=False)
    # Finite data: the same training, without the count in the logs.
    for got, expected in zip(_state(unchecked), _state(checked)):
        np.testing.assert_array_equal(got, expected)
    assert "skipped_steps" not in history and messages == []
    # A NaN batch is applied, as keras.distillation and Keras's fit apply it.
    x, y = _data()
    unchecked, history, messages = _fit(_batches(x, y), skip_nonfinite_steps=False)
    assert not all(np.isfinite(w.numpy()).all() for w in unchecked.student.weights)
    assert int(unchecked.optimizer.iterations.numpy()) == 2 * 4
    assert "skipped_steps" not in history and messages == []


def test_the_check_switch_is_saved_and_checked():
    distiller = keras_kd.Distiller(make_mlp(32, seed=1), _student(), skip_nonfinite_steps=False)
    config = distiller.get_config()
    assert config["skip_nonfinite_steps"] is False
    assert keras_kd.Distiller.from_config(config).skip_nonfinite_steps is False
    with pytest.raises(ValueError, match="Argument `skip_nonfinite_steps` must be True or False"):
        keras_kd.Distiller(make_mlp(32, seed=1), _student(), skip_nonfinite_steps="no")


def test_terminate_on_nan_stops_with_the_last_finite_weights():
    x, y = _data()
    stopped, history, _ = _fit(_batches(x, y), callbacks=[keras.callbacks.TerminateOnNaN()])
    before_bad, _, _ = _fit(_batches(x, y, skip=[2, 3]), epochs=1)
    assert len(history["loss"]) == 1 and history["skipped_steps"] == [1.0]
    for got, expected in zip(_state(stopped), _state(before_bad)):
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)


@pytest.mark.upstream
def test_keras_terminate_on_nan_stops_after_the_nan_update():
    x, y = _data()
    student = _student()
    student.compile(optimizer=keras.optimizers.Adam(1e-2), loss=SPARSE)
    student.fit(_batches(x, y), epochs=2, callbacks=[keras.callbacks.TerminateOnNaN()], verbose=0)
    assert not all(np.isfinite(w.numpy()).all() for w in student.weights)


def test_two_replicas_skip_together_when_one_replica_sees_nan(two_replicas):
    mirrored = two_replicas
    # Row 12 of the global batch of 16: only the second replica's half is bad.
    x, y = _data(bad_row=12)
    two, history, _ = _fit(_batches(x, y), strategy=mirrored)
    # Compared with 2 replicas too: BatchNorm's statistics are per replica.
    absent, _, _ = _fit(_batches(x, y, skip=[BAD_BATCH]), strategy=mirrored)
    assert history["skipped_steps"] == [1.0, 1.0]
    for got, expected in zip(_state(two), _state(absent)):
        np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_mixed_float16_student_skips_through_its_loss_scale_optimizer():
    x, y = _data()
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    try:
        student = make_mlp(8, seed=2)
    finally:
        keras.mixed_precision.set_dtype_policy("float32")
    distiller = keras_kd.Distiller(make_mlp(32, seed=1), student, temperature=2.0, alpha=0.5)
    distiller.compile(optimizer="adam", loss=SPARSE)
    with pytest.warns(RuntimeWarning, match="were skipped"):
        history = distiller.fit(_batches(x, y), epochs=2, verbose=0).history
    assert history["skipped_steps"] == [1.0, 1.0]
    assert all(np.isfinite(w.numpy()).all() for w in student.weights)


@pytest.mark.upstream
def test_keras_distillation_applies_the_nan_update():
    x, y = _data()
    peer = keras.distillation.Distiller(
        make_mlp(32, seed=1), _student(),
        distillation_losses=keras.distillation.LogitsDistillation(2.0, loss=keras.losses.KLDivergence()),
    )
    peer.compile(optimizer=keras.optimizers.Adam(1e-2), loss=SPARSE)
    peer.fit(_batches(x, y), epochs=1, verbose=0)
    assert not all(np.isfinite(w.numpy()).all() for w in peer.student.weights)


@pytest.mark.parametrize(
    "gradient, expected",
    [
        (np.array([1.0, -2.0], "float32"), True),
        (np.array([1e38, -1e38, 1e30], "float32"), True),
        (np.array([np.inf, -np.inf], "float32"), False),  # Σ is NaN.
        (np.array([np.inf, 1.0], "float32"), False),
        (np.array([np.nan, 0.0], "float32"), False),
        (np.array([np.nan, 0.0], "float16"), False),  # Element by element.
        (np.array([6e4, 6e4], "float16"), True),  # Finite float16 whose Σ would overflow.
    ],
)
def test_is_finite_against_numpy_isfinite(gradient, expected):
    from keras_kd._step import nonfinite

    assert bool(nonfinite.is_finite(tf.constant(0.5), [None, tf.constant(gradient)])) is expected


def test_is_finite_reads_only_the_touched_rows_of_sparse_gradients():
    from keras_kd._step import nonfinite

    values = tf.constant([[1.0, np.nan]])
    sparse = tf.IndexedSlices(values, indices=tf.constant([3]), dense_shape=tf.constant([10, 2]))
    assert not bool(nonfinite.is_finite(tf.constant(1.0), [sparse]))
    sparse = tf.IndexedSlices(tf.ones((1, 2)), indices=tf.constant([3]), dense_shape=tf.constant([10, 2]))
    assert bool(nonfinite.is_finite(tf.constant(1.0), [sparse]))
    assert not bool(nonfinite.is_finite(tf.constant(np.inf), [sparse]))


def test_switching_the_check_after_building_takes_effect():
    x, y = _data()
    distiller = keras_kd.Distiller(make_mlp(32, seed=1), _student(), alpha=0.5, skip_nonfinite_steps=False)
    distiller.compile(optimizer=keras.optimizers.Adam(1e-2), loss=SPARSE)
    distiller.skip_nonfinite_steps = True
    history = distiller.fit(_batches(x, y), epochs=1, verbose=0).history
    assert history["skipped_steps"] == [1.0]
    assert all(np.isfinite(w.numpy()).all() for w in distiller.student.weights)
    distiller.skip_nonfinite_steps = False
    history = distiller.fit(_batches(x, y), epochs=1, verbose=0).history
    assert "skipped_steps" not in history
    assert not all(np.isfinite(w.numpy()).all() for w in distiller.student.weights)
    assert distiller.get_config()["skip_nonfinite_steps"] is False
