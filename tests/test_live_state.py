"""Temperature, alpha and term weights are live: no retrace, the loss follows."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_kd
from tests import reference
from tests.conftest import make_data


class _TraceCountingDistiller(keras_kd.Distiller):
    """Counts how often the Python `train_step` runs (once per trace in graph mode)."""

    def __init__(self, *args, trace_log, **kwargs):
        super().__init__(*args, **kwargs)
        # A bound method, not the list: Keras would track (copy) a list attribute.
        self._record_trace = trace_log.append

    def train_step(self, data):
        self._record_trace(1)
        return super().train_step(data)


class _ChangeLiveValues(keras.callbacks.Callback):
    """At `at_batch` of the first epoch, assigns new live values."""

    def __init__(self, at_batch, values):
        super().__init__()
        self.at_batch, self.values = at_batch, values
        self.running_logs = []
        self.epoch = None

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch = epoch

    def on_train_batch_begin(self, batch, logs=None):
        if self.epoch == 0 and batch == self.at_batch:
            for name, value in self.values.items():
                self.model.set_live_value(name, value)

    def on_train_batch_end(self, batch, logs=None):
        self.running_logs.append(dict(logs))


def _per_batch(running_means, key, steps):
    """Recovers each batch's value from Keras's running epoch means."""
    means = [logs[key] for logs in running_means[:steps]]
    return [means[0]] + [(b + 1) * means[b] - b * means[b - 1] for b in range(1, steps)]


@pytest.mark.parametrize("mode", ["eager", "graph", "jit"])
def test_live_values_change_the_loss_without_retracing(teacher, student, mode):
    x, y = make_data(n=16)
    steps = 6
    dataset = tf.data.Dataset.from_tensors((x, y)).repeat(steps)
    trace_log = []
    distiller = _TraceCountingDistiller(
        teacher, student, temperature=1.0, alpha=0.2, trace_log=trace_log
    )
    distiller.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.0),  # Weights stay put.
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        run_eagerly=mode == "eager",
        jit_compile=mode == "jit",
    )
    change = _ChangeLiveValues(
        at_batch=3, values={"temperature": 3.0, "alpha": 0.7, "kl_weight": 0.25}
    )
    trace_counts = []  # The number of traces so far, after every batch.
    count_traces = keras.callbacks.LambdaCallback(
        on_train_batch_end=lambda batch, logs: trace_counts.append(len(trace_log))
    )
    distiller.fit(dataset, epochs=2, callbacks=[change, count_traces], verbose=0)

    t = np.asarray(teacher(x), np.float64)
    s = np.asarray(student(x), np.float64)
    ce = reference.sparse_crossentropy(y, s).mean()
    before = 0.2 * ce + 0.8 * 1.0 * reference.kl(t, s, 1.0).mean()
    after = 0.7 * ce + 0.3 * 0.25 * reference.kl(t, s, 3.0).mean()
    losses = _per_batch(change.running_logs, "loss", steps)
    np.testing.assert_allclose(losses[:3], [before] * 3, rtol=1e-4)
    np.testing.assert_allclose(losses[3:], [after] * 3, rtol=1e-4)
    # The second epoch keeps the new values.
    np.testing.assert_allclose(change.running_logs[-1]["loss"], after, rtol=1e-4)
    if mode == "eager":
        assert len(trace_log) == 2 * steps  # Python runs every step.
    else:
        # Every trace happens before the first step ends: none after a change.
        # Under jit the Distiller lowers the step to HLO once more up front,
        # to fall back if XLA cannot compile it (keras_kd/_step/xla.py).
        assert trace_counts == [len(trace_log)] * (2 * steps)
        assert len(trace_log) == (2 if mode == "jit" else 1)


def test_live_variables_are_named_and_checked(teacher, student):
    terms = [keras_kd.losses.KLDivergence(), keras_kd.losses.LogitMSE(temperature=2.0)]
    distiller = keras_kd.Distiller(teacher, student, terms=terms)
    assert sorted(distiller.live_variables) == [
        "alpha", "kl_weight", "logit_mse_temperature", "logit_mse_weight", "temperature",
    ]
    distiller.temperature = 2.5
    assert float(distiller.temperature.numpy()) == 2.5
    distiller.alpha.assign(0.3)
    assert float(distiller.live_variables["alpha"].numpy()) == pytest.approx(0.3)
    with pytest.raises(ValueError, match=r"Argument `temperature` must be a finite number > 0. Received: temperature=0"):
        distiller.temperature = 0
    with pytest.raises(ValueError, match=r"Argument `alpha` must be in \[0, 1\].*Received: alpha=1.5"):
        distiller.set_live_value("alpha", 1.5)
    with pytest.raises(ValueError, match=r"Argument `kl_weight` must be a finite number >= 0. Received: kl_weight=inf"):
        distiller.set_live_value("kl_weight", float("inf"))
    with pytest.raises(ValueError, match=r"Unknown live value name: 'tau'. Available names: \['alpha'"):
        distiller.set_live_value("tau", 1.0)


def test_term_with_its_own_temperature_ignores_the_shared_one(teacher, student):
    x, y = make_data(n=32)
    terms = [keras_kd.losses.KLDivergence(), keras_kd.losses.KLDivergence(temperature=2.0, name="kl_t2")]
    distiller = keras_kd.Distiller(teacher, student, temperature=5.0, alpha=0.0, terms=terms)
    distiller.compile(optimizer="sgd")
    logs = distiller.evaluate(x, y, return_dict=True, verbose=0)
    t, s = np.asarray(teacher(x)), np.asarray(student(x))
    np.testing.assert_allclose(logs["kl_loss"], reference.kl(t, s, 5.0).mean(), rtol=1e-5)
    np.testing.assert_allclose(logs["kl_t2_loss"], reference.kl(t, s, 2.0).mean(), rtol=1e-5)
