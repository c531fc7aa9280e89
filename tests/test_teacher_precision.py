"""`teacher_precision`: the frozen teacher's pass in bfloat16 or float16.

The cheap teacher is a copy: the user's teacher object and its weights are
untouched; its logits follow the float32 teacher's within the format's
precision (checked against the float32 teacher, not against itself).
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_kd
from keras_kd._internal import teacher_precision
from tests.conftest import make_data, make_mlp

SPARSE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
# bfloat16 keeps 8 bits of mantissa, float16 11: relative rounding 2^-8, 2^-11.
TOLERANCE = {"bfloat16": 0.05, "float16": 0.01}


def _teacher():
    keras.utils.set_random_seed(1)
    return keras.Sequential(
        [
            keras.Input((12,)),
            keras.layers.Dense(32, name="hidden"),
            keras.layers.BatchNormalization(name="norm"),
            keras.layers.ReLU(name="relu"),
            keras.layers.Dense(5, name="logits"),
        ],
        name="teacher",
    )


def _distiller(teacher, precision, **kwargs):
    distiller = keras_kd.Distiller(teacher, make_mlp(8, seed=2), teacher_precision=precision, **kwargs)
    return distiller.compile(optimizer="adam", loss=SPARSE)


@pytest.mark.parametrize("precision", ["bfloat16", "float16"])
def test_the_copy_follows_the_float32_teacher_and_the_teacher_is_untouched(precision):
    teacher = _teacher()
    weights = [w.numpy().copy() for w in teacher.weights]
    x, y = make_data(n=64)
    distiller = _distiller(teacher, precision)
    history = distiller.fit(x, y, batch_size=16, epochs=1, verbose=0).history
    assert history["teacher_agreement"] == [distiller.teacher_precision_report["top1_agreement"]]
    assert all(w.dtype == "float32" for w in teacher.weights)
    for before, after in zip(weights, teacher.weights):
        np.testing.assert_array_equal(before, after.numpy())
    (copy,), _ = distiller._teachers._copies[precision]
    assert copy is not teacher and all(w.dtype == precision for w in copy.weights)
    reference = np.asarray(teacher(x, training=False))
    cheap = np.asarray(keras.ops.cast(copy(x, training=False), "float32"))
    np.testing.assert_allclose(cheap, reference, rtol=TOLERANCE[precision], atol=TOLERANCE[precision])
    report = distiller.teacher_precision_report
    assert report["precision"] == precision and report["top1_agreement"] >= 0.95
    expected = teacher_precision.agreement(reference[:16], cheap[:16], 4.0)
    assert report["top1_agreement"] == pytest.approx(expected["top1_agreement"])


def test_the_loss_uses_the_cheap_logits_cast_to_float32():
    teacher = _teacher()
    x, y = make_data(n=32)
    distiller = _distiller(teacher, "bfloat16", alpha=0.0)
    distiller.fit(x, y, batch_size=32, epochs=1, verbose=0)
    (copy,), _ = distiller._teachers._copies["bfloat16"]
    student_logits = np.asarray(distiller.student(x))
    cheap = np.asarray(keras.ops.cast(copy(x, training=False), "float32"))
    from tests import reference

    expected = reference.kl(cheap, student_logits, 4.0).mean()
    exact = reference.kl(np.asarray(teacher(x, training=False)), student_logits, 4.0).mean()
    got = distiller.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)["kl_loss"]
    np.testing.assert_allclose(got, expected, rtol=1e-5)
    assert abs(got - exact) > 10 * abs(got - expected)  # Not the float32 teacher's.


def test_auto_keeps_float32_unless_clearly_faster_and_agreeing():
    assert teacher_precision.choose({"bfloat16": 1.2, "float16": 3.0}, {"bfloat16": 1.0, "float16": 1.0}) == "float32"
    assert teacher_precision.choose({"bfloat16": 0.95, "float16": 0.92}, {"bfloat16": 1.0, "float16": 1.0}) == "float32"
    assert teacher_precision.choose({"bfloat16": 0.6, "float16": 0.8}, {"bfloat16": 1.0, "float16": 1.0}) == "bfloat16"
    assert teacher_precision.choose({"bfloat16": 0.6, "float16": 0.8}, {"bfloat16": 0.9, "float16": 0.99}) == "float16"


def test_auto_chooses_on_the_first_batch_with_faked_timings(monkeypatch, capsys, caplog):
    caplog.set_level("INFO", logger="keras_kd")
    teacher = _teacher()
    x, y = make_data(n=64)
    timings = iter([1.0, 2.0, 1.5])  # float32, then bfloat16 and float16: both slower.
    monkeypatch.setattr(teacher_precision, "cpu_seconds", lambda function, batch: next(timings))
    distiller = _distiller(teacher, "auto")
    distiller.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert distiller._teachers.chosen_precision == "float32"
    assert "teacher_precision='auto' chose 'float32'" in caplog.text  # Logged, not printed.
    assert capsys.readouterr().out == ""
    assert distiller._teachers._copies == {}  # The timed copies are not kept.
    timings = iter([1.0, 0.5, 0.8])
    distiller = _distiller(_teacher(), "auto")
    distiller.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert distiller._teachers.chosen_precision == "bfloat16"
    assert distiller.teacher_precision == "auto"
    assert list(distiller._teachers._copies) == ["bfloat16"]


def test_saving_keeps_the_option_and_the_copy_takes_the_loaded_weights(tmp_path):
    teacher = _teacher()
    x, y = make_data(n=32)
    distiller = _distiller(teacher, "bfloat16")
    distiller.fit(x, y, batch_size=16, epochs=1, verbose=0)
    distiller.save(tmp_path / "d.keras")
    loaded = keras.saving.load_model(tmp_path / "d.keras")
    assert loaded.teacher_precision == "bfloat16" and loaded.get_config()["teacher_precision"] == "bfloat16"
    loaded.fit(x, y, batch_size=16, epochs=1, verbose=0)
    (copy,), _ = loaded._teachers._copies["bfloat16"]
    np.testing.assert_allclose(
        np.asarray(keras.ops.cast(copy(x), "float32")), np.asarray(loaded.teacher(x)), rtol=0.05, atol=0.05
    )


def test_several_teachers_and_two_replicas(two_replicas):
    x, y = make_data(n=64)
    with two_replicas.scope():
        teachers = [make_mlp(32, seed=1), make_mlp(16, seed=3)]
        distiller = keras_kd.Distiller(teachers, make_mlp(8, seed=2), teacher_precision="bfloat16")
        distiller.compile(optimizer="adam", loss=SPARSE)
    history = distiller.fit(x, y, batch_size=16, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"]).all()
    copies, _ = distiller._teachers._copies["bfloat16"]
    assert len(copies) == 2 and all(w.dtype == "bfloat16" for c in copies for w in c.weights)


def test_bad_precisions_get_the_fix():
    with pytest.raises(ValueError, match=r"Argument `teacher_precision` must be one of"):
        keras_kd.Distiller(_teacher(), make_mlp(8, seed=2), teacher_precision="int4")

    class Subclassed(keras.Model):
        def __init__(self):
            super().__init__()
            self.dense = keras.layers.Dense(5)

        def call(self, x):
            return self.dense(x)

    teacher = Subclassed()
    teacher(np.zeros((1, 12), "float32"))
    with pytest.raises(ValueError, match=r"needs a Functional or Sequential teacher"):
        keras_kd.Distiller(teacher, make_mlp(8, seed=2), teacher_precision="bfloat16")
    # "auto" keeps such a teacher in float32 instead of failing.
    x, y = make_data(n=32)
    distiller = keras_kd.Distiller(teacher, make_mlp(8, seed=2), teacher_precision="auto")
    distiller.compile(optimizer="adam", loss=SPARSE).fit(x, y, batch_size=16, verbose=0)
    assert distiller._teachers.chosen_precision == "float32"


def test_the_cheap_teacher_compiles_with_xla_without_falling_back(recwarn):
    x, y = make_data(n=32)
    distiller = keras_kd.Distiller(_teacher(), make_mlp(8, seed=2), teacher_precision="bfloat16")
    distiller.compile(optimizer="adam", loss=SPARSE, jit_compile=True)
    history = distiller.fit(x, y, batch_size=16, epochs=1, verbose=0).history
    assert np.isfinite(history["loss"]).all()
    assert distiller.jit_compile  # The XLA guard did not switch XLA off.
    assert not [w for w in recwarn if "XLA" in str(w.message)]


def test_a_cache_computed_by_the_cheap_teacher():
    teacher = _teacher()
    x, _ = make_data(n=40)
    exact = keras_kd.TeacherCache.compute(teacher, x, verbose=0)
    cheap = keras_kd.TeacherCache.compute(teacher, x, verbose=0, teacher_precision="bfloat16")
    assert cheap.logits.dtype == np.float32
    np.testing.assert_allclose(cheap.logits, exact.logits, rtol=0.05, atol=0.05)
    assert np.any(cheap.logits != exact.logits)  # It really ran in bfloat16.
    with pytest.raises(ValueError, match=r"there is no step to time for 'auto'"):
        keras_kd.TeacherCache.compute(teacher, x, verbose=0, teacher_precision="auto")
