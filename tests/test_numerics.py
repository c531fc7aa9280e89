"""Extreme logits, masked classes and mixed precision inside the Distiller."""

import keras
import numpy as np
import pytest
from keras import distillation as peer

import keras_kd
from tests import reference
from tests.conftest import NUM_CLASSES, make_data, make_mlp

SPARSE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _mixed_student():
    keras.mixed_precision.set_dtype_policy("mixed_float16")
    try:
        return make_mlp(8, seed=2, name="student16")
    finally:
        keras.mixed_precision.set_dtype_policy("float32")


def test_mixed_float16_student_with_float32_teacher(teacher):
    student = _mixed_student()
    x, y = make_data(n=64)
    s16 = np.asarray(student(x)).astype(np.float64)  # float16 logits, widened.
    assert student(x).dtype == "float16"
    distiller = keras_kd.Distiller(teacher, student, temperature=2.0, alpha=0.5)
    distiller.compile(optimizer="adam", loss=SPARSE)
    assert isinstance(distiller.optimizer, keras.optimizers.LossScaleOptimizer)
    logs = distiller.evaluate(x, y, batch_size=64, return_dict=True, verbose=0)
    t = np.asarray(teacher(x), np.float64)
    expected = reference.total_loss(t, s16, y, 2.0, 0.5, [(1.0, reference.kl, None)])
    # The terms see the float16 logits exactly; only the student loss's float32 math differs.
    np.testing.assert_allclose(logs["kl_loss"], reference.kl(t, s16, 2.0).mean(), rtol=1e-5)
    np.testing.assert_allclose(logs["loss"], expected, rtol=1e-4)
    before = [w.numpy().copy() for w in student.trainable_weights]
    history = distiller.fit(x, y, batch_size=16, epochs=3, verbose=0).history
    assert np.all(np.isfinite(history["loss"]))
    assert history["loss"][-1] < history["loss"][0]
    assert any(not np.array_equal(b, w.numpy()) for b, w in zip(before, student.trainable_weights))


@pytest.mark.upstream
def test_keras_distillation_rejects_a_mixed_float16_student(teacher):
    with pytest.raises(ValueError, match="dtypes must match"):
        distiller = peer.Distiller(
            teacher, _mixed_student(), distillation_losses=peer.LogitsDistillation(2.0)
        )
        distiller.compile(optimizer="adam", loss=SPARSE)
        x, y = make_data(n=16)
        distiller.fit(x, y, verbose=0)


def _scaled(model, factor):
    return keras.Sequential([model, keras.layers.Rescaling(factor)], name=f"{model.name}_x{factor:g}")


@pytest.mark.parametrize("temperature", [0.5, 50.0])
def test_logits_of_magnitude_1e4_train_finitely(temperature):
    teacher = _scaled(make_mlp(32, seed=1), 1e4)
    student = _scaled(make_mlp(8, seed=2), 1e3)
    x, y = make_data(n=64)
    distiller = keras_kd.Distiller(teacher, student, temperature=temperature, alpha=0.5)
    distiller.compile(optimizer=keras.optimizers.SGD(1e-6), loss=SPARSE)
    t, s = np.asarray(teacher(x), np.float64), np.asarray(student(x), np.float64)
    assert np.abs(t).max() > 1e3
    logs = distiller.fit(x, y, batch_size=64, epochs=1, verbose=0).history
    np.testing.assert_allclose(logs["kl_loss"][0], reference.kl(t, s, temperature).mean(), rtol=1e-4)
    assert all(np.all(np.isfinite(w.numpy())) for w in student.weights)


class _MaskClasses(keras.layers.Layer):
    """Sets the logits of the given classes to -inf (classes ruled out)."""

    def __init__(self, classes, **kwargs):
        super().__init__(**kwargs)
        self.classes = classes

    def call(self, logits):
        mask = np.zeros(NUM_CLASSES, "float32")
        mask[self.classes] = -np.inf
        return logits + mask


def test_masked_classes_shared_by_teacher_and_student_train_finitely():
    keras.utils.set_random_seed(3)
    teacher = keras.Sequential([make_mlp(32, seed=1), _MaskClasses([3, 4])])
    student = keras.Sequential([make_mlp(8, seed=2), _MaskClasses([3, 4])])
    x, y = make_data(n=64)
    y = y % 3  # The label's class is never masked.
    distiller = keras_kd.Distiller(teacher, student, temperature=2.0, alpha=0.5)
    distiller.compile(optimizer="adam", loss=SPARSE)
    t, s = np.asarray(teacher(x), np.float64), np.asarray(student(x), np.float64)
    logs = distiller.fit(x, y, batch_size=64, epochs=3, verbose=0).history
    np.testing.assert_allclose(logs["kl_loss"][0], reference.kl(t, s, 2.0).mean(), rtol=1e-5)
    assert np.all(np.isfinite(logs["loss"]))
    assert all(np.all(np.isfinite(w.numpy())) for w in student.weights)
