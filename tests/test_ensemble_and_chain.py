"""Several teachers, fusion at inference, teacher-assistant chains, unlabeled data."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_kd
from tests import reference
from tests.conftest import NUM_CLASSES, make_data, make_mlp

SPARSE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _teachers():
    return [make_mlp(32, seed=1, name="t1"), make_mlp(16, seed=3, name="t2"), make_mlp(24, seed=4, name="t3")]


def _numpy_mixture(teachers, x, weights, temperature):
    weights = np.asarray(weights, np.float64) / np.sum(weights)
    return sum(w * reference.softmax(np.asarray(t(x), np.float64) / temperature) for w, t in zip(weights, teachers))


@pytest.mark.parametrize("cached", [False, True], ids=["teachers_run", "cached_logits"])
def test_soft_target_is_the_weighted_mean_of_softened_probabilities(cached):
    teachers, student = _teachers(), make_mlp(8, seed=2, name="student")
    x, y = make_data(n=64)
    terms = [keras_kd.losses.KLDivergence(), keras_kd.losses.SoftTargetCrossentropy(temperature=1.5)]
    distiller = keras_kd.Distiller(teachers, student, teacher_weights=[1, 2, 1], temperature=3.0, alpha=0.3, terms=terms)
    distiller.compile(optimizer=keras.optimizers.SGD(0.0), loss=SPARSE)
    data = tf.data.Dataset.from_tensor_slices((x, y))
    if cached:
        cache = keras_kd.TeacherCache.compute(teachers, data, verbose=0)
        assert cache.logits.shape == (64, 3, NUM_CLASSES)
        data = cache.attach(data)
    logs = distiller.evaluate(data.batch(64), verbose=0, return_dict=True)
    s = np.asarray(student(x), np.float64)
    # KL at T = 3 against the mixture at T = 3; soft CE at its own T = 1.5 against the mixture at 1.5.
    p3 = _numpy_mixture(teachers, x, [1, 2, 1], 3.0)
    kl = 9.0 * (p3 * (np.log(p3) - reference.log_softmax(s / 3.0))).sum(-1).mean()
    p15 = _numpy_mixture(teachers, x, [1, 2, 1], 1.5)
    soft_ce = -(1.5**2) * (p15 * reference.log_softmax(s / 1.5)).sum(-1).mean()
    np.testing.assert_allclose(logs["kl_loss"], kl, rtol=1e-5)
    np.testing.assert_allclose(logs["soft_ce_loss"], soft_ce, rtol=1e-5)
    student_loss = reference.sparse_crossentropy(y, s).mean()
    np.testing.assert_allclose(logs["loss"], 0.3 * student_loss + 0.7 * (kl + soft_ce), rtol=1e-5)


def test_each_teacher_runs_once_per_step_and_not_at_all_with_a_cache():
    teachers, student = _teachers(), make_mlp(8, seed=2)
    calls = {t.name: 0 for t in teachers}
    for teacher in teachers:
        layer = teacher.get_layer("hidden")
        original = layer.call

        def counted(*args, name=teacher.name, original=original, **kwargs):
            calls[name] += 1
            return original(*args, **kwargs)

        layer.call = counted
    distiller = keras_kd.Distiller(teachers, student, alpha=0.5)
    distiller.compile(optimizer="adam", loss=SPARSE, run_eagerly=True)
    x, y = make_data(n=64)
    before = [[w.numpy().copy() for w in t.weights] for t in teachers]
    distiller.fit(x, y, batch_size=16, epochs=1, verbose=0)  # 4 steps.
    assert calls == {"t1": 4, "t2": 4, "t3": 4}
    for weights, teacher in zip(before, teachers):
        for b, w in zip(weights, teacher.weights):
            np.testing.assert_array_equal(b, w.numpy())
    data = tf.data.Dataset.from_tensor_slices((x, y))
    cache = keras_kd.TeacherCache.compute(teachers, data, verbose=0)
    calls.update({name: 0 for name in calls})
    distiller.fit(cache.attach(data).batch(16), epochs=1, verbose=0)
    assert calls == {"t1": 0, "t2": 0, "t3": 0}


def test_teacher_errors():
    student = make_mlp(8, seed=2)
    wide = make_mlp(16, seed=5, num_classes=NUM_CLASSES + 2, name="wide")
    with pytest.raises(ValueError, match=r"The teachers must output logits of the same shape. Received: 't1': \(None, 5\), 'wide': \(None, 7\)"):
        keras_kd.Distiller([make_mlp(32, seed=1, name="t1"), wide], student)
    with pytest.raises(ValueError, match=r"Argument `teacher_weights` must hold one finite weight >= 0 per teacher \(3\)"):
        keras_kd.Distiller(_teachers(), student, teacher_weights=[1.0, 2.0])
    with pytest.raises(ValueError, match=r"With several teachers, terms .* cannot read teacher layers"):
        keras_kd.Distiller(_teachers(), student, terms=[keras_kd.losses.FeatureHint("hidden", "hidden")])
    single_cache = keras_kd.TeacherCache.compute(make_mlp(32, seed=1), make_data(n=16)[0], verbose=0)
    distiller = keras_kd.Distiller(_teachers(), student, alpha=0.0).compile(optimizer="sgd")
    with pytest.raises(ValueError, match=r"The Distiller has 3 teachers, so cached teacher logits must have shape \(batch, 3, classes\)"):
        distiller.fit(single_cache.attach(make_data(n=16)[0]), batch_size=16, verbose=0)


def test_several_teachers_save_and_load(tmp_path):
    distiller = keras_kd.Distiller(_teachers(), make_mlp(8, seed=2), teacher_weights=[3, 1, 0])
    distiller.compile(optimizer="adam", loss=SPARSE)
    x, y = make_data(n=32)
    distiller.fit(x, y, batch_size=16, verbose=0)
    distiller.save(tmp_path / "d.keras")
    restored = keras.saving.load_model(tmp_path / "d.keras", safe_mode=True)
    assert [t.name for t in restored.teachers] == ["t1", "t2", "t3"]
    assert restored.teacher_weights == [0.75, 0.25, 0.0]
    np.testing.assert_allclose(
        restored.evaluate(x, y, verbose=0, return_dict=True)["kl_loss"],
        distiller.evaluate(x, y, verbose=0, return_dict=True)["kl_loss"], rtol=1e-6,
    )


def test_fusion_averages_probabilities_saves_and_exports(tmp_path):
    teacher, student = make_mlp(32, seed=1, name="teacher"), make_mlp(8, seed=2, name="student")
    fused = keras_kd.fuse([teacher, student], weights=[0.7, 0.3])
    x, _ = make_data(n=32)
    expected = 0.7 * reference.softmax(np.asarray(teacher(x), np.float64)) + 0.3 * reference.softmax(
        np.asarray(student(x), np.float64))
    np.testing.assert_allclose(fused.predict(x, verbose=0), expected, atol=1e-6)
    fused.save(tmp_path / "fused.keras")
    restored = keras.saving.load_model(tmp_path / "fused.keras", safe_mode=True)
    np.testing.assert_allclose(restored.predict(x, verbose=0), expected, atol=1e-6)
    report = keras_kd.export_tflite(fused, tmp_path / "fused.tflite", sample=x)
    assert report.max_abs_diff < 1e-5


def _chain_models():
    return [make_mlp(64, seed=1, name="teacher"), make_mlp(24, seed=2, name="assistant"),
            make_mlp(6, seed=3, name="student")]


class _Interrupt(keras.callbacks.Callback):
    def on_epoch_end(self, epoch, logs=None):
        raise RuntimeError("interrupted")


def test_chain_runs_stage_by_stage_and_resumes(tmp_path):
    x, y = make_data(n=128)
    stages_trained = []

    def callbacks(stage, interrupt_at=None):
        stages_trained.append(stage)
        return [_Interrupt()] if stage == interrupt_at else []

    kwargs = dict(
        epochs=2,
        compile_kwargs={"optimizer": keras.optimizers.Adam(1e-2), "loss": SPARSE, "metrics": ["accuracy"]},
        distiller_kwargs={"temperature": 3.0, "alpha": 0.3},
        test_data=(x, y),
    )
    with pytest.raises(RuntimeError, match="interrupted"):
        keras_kd.distill_chain(_chain_models(), (x, y), tmp_path, callbacks=lambda s: callbacks(s, 2), **kwargs)
    assert stages_trained == [1, 2]
    assert sorted(os.listdir(tmp_path)) == ["stage1_assistant.history.json", "stage1_assistant.weights.h5"]
    stages_trained.clear()
    models = _chain_models()
    result = keras_kd.distill_chain(models, (x, y), tmp_path, callbacks=callbacks, **kwargs)
    assert stages_trained == [2]  # Stage 1 was loaded, not trained again.
    assert len(result.histories) == 2 and len(result.histories[1]["loss"]) == 2
    assert [row.name for row in result.report.rows] == ["teacher", "assistant", "student"]
    assert [row.parameters for row in result.report.rows] == [m.count_params() for m in models]
    # The loaded assistant is the one stage 1 trained.
    trained = _chain_models()[1]
    trained.load_weights(tmp_path / "stage1_assistant.weights.h5")
    for a, b in zip(models[1].weights, trained.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def test_unlabeled_and_partly_labeled_transfer_data():
    teachers, student = _teachers(), make_mlp(8, seed=2)
    x, y = make_data(n=64)
    # Inputs only, alpha = 0: pure distillation on unlabeled data.
    pure = keras_kd.Distiller(teachers, student, alpha=0.0).compile(optimizer="adam")
    history = pure.fit(tf.data.Dataset.from_tensor_slices(x).batch(16), epochs=1, verbose=0).history
    assert sorted(history) == ["kl_loss", "loss", "skipped_steps"]
    # Partly labeled: -1 rows count in distillation only.
    partial = y.copy()
    partial[16:] = -1
    mixed = keras_kd.Distiller(teachers, make_mlp(8, seed=2), alpha=0.5)
    mixed.compile(optimizer=keras.optimizers.SGD(0.0), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1))
    logs = mixed.evaluate(x, partial, batch_size=64, verbose=0, return_dict=True)
    s = np.asarray(mixed.student(x), np.float64)
    expected_student = reference.sparse_crossentropy(y[:16], s[:16]).sum() / 16  # Keras: mean over labeled rows.
    np.testing.assert_allclose(logs["student_loss"], expected_student, rtol=1e-5)
    # alpha > 0 and no labels at all: an error before any step.
    labeled = keras_kd.Distiller(teachers, make_mlp(8, seed=2), alpha=0.5).compile(optimizer="adam", loss=SPARSE)
    with pytest.raises(ValueError, match=r"The data carries no labels, so alpha must be 0"):
        labeled.fit(tf.data.Dataset.from_tensor_slices(x).batch(16), verbose=0)
