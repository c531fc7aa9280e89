"""LiveValueScheduler: annealed values reach History and the loss, and resume."""

import csv

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_kd
from keras_kd import schedules
from tests import reference
from tests.conftest import make_data, make_mlp

SPARSE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _frozen_distiller(teacher, student, **kwargs):
    """A distiller whose weights never move (SGD with lr 0): only live values change."""
    distiller = keras_kd.Distiller(teacher, student, **kwargs)
    return distiller.compile(optimizer=keras.optimizers.SGD(0.0), loss=SPARSE)


def _dataset(steps=4, batch=16):
    x, y = make_data(n=batch)
    return tf.data.Dataset.from_tensors((x, y)).repeat(steps), (x, y)


def test_annealed_values_reach_history_csv_and_the_loss(teacher, student, tmp_path):
    dataset, (x, y) = _dataset()
    traces = []

    class Counting(keras_kd.Distiller):
        def train_step(self, data):
            traces.append(1)
            return super().train_step(data)

    distiller = Counting(teacher, student, temperature=1.0, alpha=0.5)
    distiller.compile(optimizer=keras.optimizers.SGD(0.0), loss=SPARSE)
    scheduler = keras_kd.callbacks.LiveValueScheduler(
        schedules.Linear(1.0, 4.0, duration=3),
        schedules={"alpha": schedules.PiecewiseConstant([2], [0.5, 0.2]), "kl_weight": lambda epoch: 1.0 + epoch},
    )
    csv_path = tmp_path / "log.csv"
    history = distiller.fit(
        dataset, epochs=4, callbacks=[scheduler, keras.callbacks.CSVLogger(str(csv_path))], verbose=0
    ).history
    np.testing.assert_allclose(history["temperature"], [1.0, 2.0, 3.0, 4.0])
    np.testing.assert_allclose(history["alpha"], [0.5, 0.5, 0.2, 0.2])
    np.testing.assert_allclose(history["kl_weight"], [1.0, 2.0, 3.0, 4.0])
    t, s = np.asarray(teacher(x), np.float64), np.asarray(student(x), np.float64)
    ce = reference.sparse_crossentropy(y, s).mean()
    for epoch, (temperature, alpha, weight) in enumerate([(1, 0.5, 1), (2, 0.5, 2), (3, 0.2, 3), (4, 0.2, 4)]):
        kl = reference.kl(t, s, temperature).mean()
        np.testing.assert_allclose(history["kl_loss"][epoch], kl, rtol=1e-5)
        np.testing.assert_allclose(history["loss"][epoch], alpha * ce + (1 - alpha) * weight * kl, rtol=1e-5)
    assert len(traces) == 1  # No retrace while the values change.
    with open(csv_path) as f:
        rows = list(csv.DictReader(f))
    assert [float(r["temperature"]) for r in rows] == [1.0, 2.0, 3.0, 4.0]


def test_per_batch_with_fractions_of_the_run(teacher, student):
    dataset, _ = _dataset(steps=5)
    seen = []
    record = keras.callbacks.LambdaCallback(on_train_batch_end=lambda b, logs: seen.append(logs["temperature"]))
    distiller = _frozen_distiller(teacher, student)
    scheduler = keras_kd.callbacks.LiveValueScheduler(
        schedules.Linear(1.0, 10.0, duration=0.9, fractions=True), per="batch"
    )
    # 2 epochs × 5 steps: the schedule spans 9 of the 10 steps.
    distiller.fit(dataset, epochs=2, callbacks=[scheduler, record], verbose=0)
    np.testing.assert_allclose(seen, [1, 2, 3, 4, 5, 6, 7, 8, 9, 10], rtol=1e-6)


def test_resumes_at_the_right_value_with_initial_epoch(teacher, student):
    dataset, _ = _dataset()
    distiller = _frozen_distiller(teacher, student)
    scheduler = keras_kd.callbacks.LiveValueScheduler(schedules.Linear(1.0, 6.0, duration=5))
    history = distiller.fit(dataset, initial_epoch=3, epochs=5, callbacks=[scheduler], verbose=0).history
    np.testing.assert_allclose(history["temperature"], [4.0, 5.0])


class _Interrupt(keras.callbacks.Callback):
    def __init__(self, at_epoch):
        super().__init__()
        self.at_epoch = at_epoch

    def on_epoch_begin(self, epoch, logs=None):
        if epoch == self.at_epoch:
            raise RuntimeError("interrupted")


def test_resumes_after_backup_and_restore(tmp_path):
    dataset, _ = _dataset()

    def run(extra):
        distiller = keras_kd.Distiller(make_mlp(32, seed=1), make_mlp(8, seed=2), alpha=0.3)
        distiller.compile(optimizer="adam", loss=SPARSE)
        callbacks = [
            keras.callbacks.BackupAndRestore(str(tmp_path / "backup")),
            keras_kd.callbacks.LiveValueScheduler(
                schedules.Cosine(8.0, 1.0, duration=0.75, fractions=True), per="batch"
            ),
        ] + extra
        return distiller, distiller.fit(dataset, epochs=4, callbacks=callbacks, verbose=0).history

    with pytest.raises(RuntimeError, match="interrupted"):
        run([_Interrupt(at_epoch=2)])
    distiller, resumed = run([])
    assert len(resumed["temperature"]) == 2  # Epochs 3 and 4 only.
    expected = schedules.Cosine(8.0, 1.0, duration=12)  # 0.75 × (4 epochs × 4 steps)
    np.testing.assert_allclose(resumed["temperature"], [float(expected(11)), float(expected(15))], rtol=1e-6)
    assert float(distiller.temperature.numpy()) == pytest.approx(float(expected(15)))


@pytest.mark.parametrize(
    "schedule, message",
    [
        (lambda epoch: float("nan") if epoch == 1 else 2.0, r"The schedule for `temperature` gave nan at step 1: live values must be finite"),
        (lambda epoch: 2.0 - epoch * 2.0, r"Argument `temperature` must be a finite number > 0. Received: temperature=0.0"),
    ],
)
def test_bad_values_stop_training(teacher, student, schedule, message):
    dataset, _ = _dataset()
    distiller = _frozen_distiller(teacher, student)
    with pytest.raises(ValueError, match=message):
        distiller.fit(dataset, epochs=3, callbacks=[keras_kd.callbacks.LiveValueScheduler(schedule)], verbose=0)


def test_bad_alpha_stops_training(teacher, student):
    dataset, _ = _dataset()
    scheduler = keras_kd.callbacks.LiveValueScheduler(schedules={"alpha": schedules.Linear(0.5, 1.5, duration=2)})
    with pytest.raises(ValueError, match=r"Argument `alpha` must be in \[0, 1\]"):
        _frozen_distiller(teacher, student).fit(dataset, epochs=3, callbacks=[scheduler], verbose=0)


def test_needs_a_distiller(student):
    x, y = make_data(n=16)
    student.compile(optimizer="sgd", loss=SPARSE)
    scheduler = keras_kd.callbacks.LiveValueScheduler(schedules.Constant(2.0))
    with pytest.raises(ValueError, match=r"LiveValueScheduler drives a keras_kd.Distiller's live values; it was given a Sequential \('student'\)"):
        student.fit(x, y, callbacks=[scheduler], verbose=0)


def test_unknown_names_and_bad_arguments(teacher, student):
    dataset, _ = _dataset()
    scheduler = keras_kd.callbacks.LiveValueScheduler(schedules={"beta": schedules.Constant(1.0)})
    with pytest.raises(ValueError, match=r"got schedules for \['beta'\], which the Distiller does not have. Live value names: \['alpha', 'kl_weight', 'temperature'\]"):
        _frozen_distiller(teacher, student).fit(dataset, callbacks=[scheduler], verbose=0)
    with pytest.raises(ValueError, match=r"Argument `per` must be one of \('epoch', 'batch'\). Received: per='step'"):
        keras_kd.callbacks.LiveValueScheduler(schedules.Constant(1.0), per="step")
    with pytest.raises(ValueError, match=r"needs at least one schedule"):
        keras_kd.callbacks.LiveValueScheduler()
    with pytest.raises(ValueError, match=r"The schedule for `temperature` must be a keras_kd.schedules object or a function"):
        keras_kd.callbacks.LiveValueScheduler(3.0)
