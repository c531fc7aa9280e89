"""MirroredStrategy with 2 replicas gives the single-device losses, metrics and update."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_kd
from tests.conftest import make_data, make_mlp

GLOBAL_BATCH = 16


def _dataset():
    x, y = make_data(n=4 * GLOBAL_BATCH, seed=11)
    weights = np.random.default_rng(12).uniform(0.2, 2.0, len(x)).astype("float32")
    return tf.data.Dataset.from_tensor_slices((x, y, weights)).batch(GLOBAL_BATCH), (x, y)


def _run(strategy, build_distiller, loss, epochs=2):
    dataset, (x, y) = _dataset()
    with strategy.scope():
        distiller = build_distiller(make_mlp(32, seed=1), make_mlp(8, seed=2))
        distiller.compile(
            optimizer=keras.optimizers.SGD(0.2),
            loss=loss,
            metrics=["accuracy"],
            weighted_metrics=[keras.metrics.SparseCategoricalCrossentropy(from_logits=True, name="wce")],
        )
    history = distiller.fit(dataset, epochs=epochs, validation_data=dataset, verbose=0)
    weights = [w.numpy() for w in distiller.student.weights]
    return history.history, weights


def _keras_kd(teacher, student):
    terms = [keras_kd.losses.KLDivergence(), keras_kd.losses.LogitMSE(weight=0.1)]
    return keras_kd.Distiller(teacher, student, temperature=3.0, alpha=0.4, terms=terms)


@pytest.mark.parametrize(
    "loss",
    [keras.losses.SparseCategoricalCrossentropy(from_logits=True), "sparse_categorical_crossentropy"],
    ids=["loss_object", "string_loss"],
)
def test_two_replicas_equal_one_device(loss, two_replicas):
    mirrored = two_replicas
    one_logs, one_weights = _run(tf.distribute.get_strategy(), _keras_kd, loss)
    two_logs, two_weights = _run(mirrored, _keras_kd, loss)
    assert sorted(one_logs) == sorted(two_logs)
    assert {"loss", "student_loss", "kl_loss", "logit_mse_loss", "accuracy", "wce", "val_loss"} <= set(one_logs)
    for key in one_logs:
        np.testing.assert_allclose(two_logs[key], one_logs[key], rtol=1e-5, atol=1e-6, err_msg=key)
    for a, b in zip(one_weights, two_weights):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


@pytest.mark.upstream
def test_keras_distillation_misreports_under_two_replicas(two_replicas):
    """Documents keras.distillation (PEER.md): its per-part losses come out ×½."""
    mirrored = two_replicas

    def peer(teacher, student):
        return keras.distillation.Distiller(
            teacher, student,
            distillation_losses=keras.distillation.LogitsDistillation(3.0, loss=keras.losses.KLDivergence()),
            student_loss_weight=0.4,
        )

    dataset, _ = _dataset()
    logs = {}
    for label, strategy in (("one", tf.distribute.get_strategy()), ("two", mirrored)):
        with strategy.scope():
            distiller = peer(make_mlp(32, seed=1), make_mlp(8, seed=2))
            distiller.compile(
                optimizer=keras.optimizers.SGD(0.0),
                loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            )
        logs[label] = distiller.evaluate(dataset.map(lambda x, y, w: (x, y)), return_dict=True, verbose=0)
    np.testing.assert_allclose(logs["two"]["student_loss"], 0.5 * logs["one"]["student_loss"], rtol=1e-4)


class _CountingDistiller(keras_kd.Distiller):
    traces = 0

    def train_step(self, data):
        type(self).traces += 1  # Python runs only while tracing.
        return super().train_step(data)


def _annealed_fit(strategy, jit_compile):
    dataset, _ = _dataset()
    _CountingDistiller.traces = 0
    with strategy.scope():
        distiller = _CountingDistiller(make_mlp(32, seed=1), make_mlp(8, seed=2), temperature=4.0)
        distiller.compile(
            optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            jit_compile=jit_compile,
        )
    annealing = keras_kd.callbacks.LiveValueScheduler(
        keras_kd.schedules.Linear(4.0, 1.0, duration=1.0, fractions=True), per="batch"
    )
    history = distiller.fit(dataset, epochs=3, callbacks=[annealing], verbose=0).history
    return distiller, history


@pytest.mark.parametrize("jit_compile", [False, True], ids=["graph", "xla"])
def test_the_annealed_step_traces_once(jit_compile, two_replicas):
    """No host-side Python in the step: one trace (per replica), however the values move."""
    strategy = two_replicas if not jit_compile else tf.distribute.get_strategy()
    distiller, history = _annealed_fit(strategy, jit_compile)
    # One trace per replica; with XLA, one more by the first-call check that
    # lowers the step to HLO before any batch is consumed (keras_kd/_step/xla.py).
    assert _CountingDistiller.traces == strategy.num_replicas_in_sync + int(jit_compile)
    assert distiller.jit_compile == jit_compile  # XLA stayed on where asked.
    assert history["temperature"][-1] < history["temperature"][0]
    if not jit_compile:
        # The scheduler's value reached the variable on every replica.
        replicas = two_replicas.experimental_local_results(distiller.temperature.value)
        assert len(replicas) == 2
        assert [float(v.numpy()) for v in replicas] == [float(distiller.temperature.numpy())] * 2


def test_xla_across_replicas_falls_back_with_a_warning(two_replicas):
    with pytest.warns(UserWarning, match=r"XLA cannot compile the step of .* across the 2 replicas of MirroredStrategy"):
        distiller, history = _annealed_fit(two_replicas, jit_compile=True)
    assert not distiller.jit_compile
    assert np.isfinite(history["loss"]).all()
