"""Learning without Forgetting (`keras_kd.learn_without_forgetting`).

The tiny models have a 4-class old head and a 6-class new one, so a term that
read the wrong head could not pass by shape. The loss is checked against a
float64 numpy reference, the frozen copy against the model as it was, the
export against the LiteRT interpreter.
"""

import os

import keras
import numpy as np
import pytest

import keras_kd
from keras_kd._internal import backends
from keras_kd.methods import lifelong
from tests import reference

FEATURES = 10
OLD_CLASSES, NEW_CLASSES = 4, 6
SPARSE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _task_a_model(seed=0):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((FEATURES,))
    x = keras.layers.Dense(16, activation="relu", name="shared")(inputs)
    x = keras.layers.BatchNormalization(name="norm")(x)
    return keras.Model(inputs, keras.layers.Dense(OLD_CLASSES, name="task_a")(x), name="model_a")


def _data(n=64, classes=NEW_CLASSES, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, FEATURES)).astype("float32")
    return x, rng.integers(0, classes, size=n).astype("int64")


def _lwf(model, head_name="task_b", classes=NEW_CLASSES, **kwargs):
    keras.utils.set_random_seed(3)
    return keras_kd.learn_without_forgetting(model, keras.layers.Dense(classes, name=head_name), **kwargs)


def _trained_lwf(metrics=None):
    """A task-A model, its data, and its LwF Distiller after one epoch on task B."""
    model = _task_a_model()
    x, y = _data()
    lwf = _lwf(model)
    lwf.compile(optimizer="adam", loss=SPARSE, metrics=metrics)
    lwf.fit(x, y, epochs=1, verbose=0)
    return model, x, y, lwf


def test_loss_matches_numpy_reference_and_the_papers_form():
    model = _task_a_model()
    x, y = _data()
    copy_logits = model.predict(x, verbose=0)
    temperature, weight = 2.0, 0.7
    lwf = _lwf(model, temperature=temperature, old_task_weight=weight)
    lwf.compile(optimizer="adam", loss=SPARSE)
    # Move the student's old head away from the copy, so the term is not 0.
    kernel = model.get_layer("task_a").kernel
    kernel.assign(kernel.numpy() + np.random.default_rng(1).normal(size=kernel.shape) * 0.5)
    heads = keras_kd.multi_head_model(lwf).predict(x, verbose=0)
    logs = lwf.evaluate(x, y, batch_size=len(x), return_dict=True, verbose=0)

    kl = reference.kl(copy_logits, heads["task_a"], temperature).mean()
    ce = reference.sparse_crossentropy(y, heads["task_b"]).mean()
    np.testing.assert_allclose(logs["task_a_lwf_loss"], kl, rtol=1e-5)
    np.testing.assert_allclose(logs["student_loss"], ce, rtol=1e-5)
    np.testing.assert_allclose(logs["loss"], 0.5 * ce + 0.5 * weight * kl, rtol=1e-5)
    # The paper's loss, CE + λ · L_old with L_old the softened cross-entropy
    # (no T²) and λ = weight · T², is twice ours plus the copy's entropy.
    paper_lambda = weight * temperature**2
    l_old = reference.soft_crossentropy(copy_logits, heads["task_a"], temperature).mean() / temperature**2
    p = np.exp(reference.log_softmax(copy_logits / temperature))
    entropy = -(p * np.log(p)).sum(-1).mean()
    np.testing.assert_allclose(
        ce + paper_lambda * l_old, 2 * logs["loss"] + paper_lambda * entropy, rtol=1e-5
    )


def test_default_weight_is_the_papers_lambda_one():
    lwf = _lwf(_task_a_model(), temperature=2.0)
    assert float(lwf.live_variables["task_a_lwf_weight"].numpy()) == pytest.approx(0.25)
    assert float(lwf.temperature.numpy()) == 2.0
    assert float(lwf.alpha.numpy()) == 0.5


def test_frozen_copy_never_changes_while_the_student_trains():
    model = _task_a_model()
    x, y = _data()
    before = model.predict(x, verbose=0)
    lwf = _lwf(model)
    copy_weights = [w.numpy().copy() for w in lwf.teacher.weights]
    lwf.compile(optimizer=keras.optimizers.Adam(0.05), loss=SPARSE)
    lwf.fit(x, y, epochs=3, batch_size=16, verbose=0)
    for kept, now in zip(copy_weights, lwf.teacher.weights):
        np.testing.assert_array_equal(kept, now.numpy())
    np.testing.assert_array_equal(lwf.teacher.predict(x, verbose=0)["task_a"], before)
    # The student is `model`'s own layers: they did train.
    assert not np.allclose(model.predict(x, verbose=0), before)


def test_distillation_keeps_the_old_head_closer_than_fine_tuning():
    x, y = _data(n=256)
    drift = {}
    for weight in (0.0, 1.0):
        model = _task_a_model()
        before = model.predict(x, verbose=0)
        lwf = _lwf(model, old_task_weight=weight)
        lwf.compile(optimizer=keras.optimizers.Adam(0.02), loss=SPARSE)
        lwf.fit(x, y, epochs=10, batch_size=32, verbose=0)
        drift[weight] = reference.kl(before, model.predict(x, verbose=0), 2.0).mean()
    assert drift[1.0] < 0.5 * drift[0.0], drift  # Measured: about 0.31×.


def test_three_tasks_in_sequence():
    _, x, y, lwf_b = _trained_lwf()
    after_b = keras_kd.multi_head_model(lwf_b).predict(x, verbose=0)

    lwf_c = keras_kd.learn_without_forgetting(lwf_b, keras.layers.Dense(3, name="task_c"))
    assert sorted(lwf_c.live_variables) == [
        "alpha", "task_a_lwf_weight", "task_b_lwf_weight", "temperature"
    ]
    lwf_c.compile(optimizer="adam", loss=SPARSE)
    history = lwf_c.fit(x, y % 3, epochs=1, verbose=0)
    assert {"task_a_lwf_loss", "task_b_lwf_loss"} <= set(history.history)
    teacher = lwf_c.teacher.predict(x, verbose=0)
    for head in ("task_a", "task_b"):
        np.testing.assert_array_equal(teacher[head], after_b[head])
    heads = keras_kd.multi_head_model(lwf_c).predict(x, verbose=0)
    assert {k: v.shape[-1] for k, v in heads.items()} == {"task_a": 4, "task_b": 6, "task_c": 3}


def test_live_values_change_the_loss_without_rebuilding():
    _, x, y, lwf = _trained_lwf()
    function = lwf.train_function
    lwf.set_live_value("task_a_lwf_weight", 0.0)
    logs = lwf.evaluate(x, y, batch_size=len(x), return_dict=True, verbose=0)
    np.testing.assert_allclose(logs["loss"], 0.5 * logs["student_loss"], rtol=1e-6)
    scheduler = keras_kd.callbacks.LiveValueScheduler(
        schedules={"task_a_lwf_weight": lambda epoch: 2.0, "temperature": lambda epoch: 3.0}
    )
    history = lwf.fit(x, y, epochs=1, verbose=0, callbacks=[scheduler])
    assert lwf.train_function is function
    assert history.history["task_a_lwf_weight"] == [2.0]
    assert float(lwf.temperature.numpy()) == 3.0


def test_save_load_and_train_on(tmp_path):
    _, x, y, lwf = _trained_lwf(metrics=["accuracy"])
    path = os.path.join(tmp_path, "lwf.keras")
    lwf.save(path)
    loaded = keras.saving.load_model(path)
    want = keras_kd.multi_head_model(lwf).predict(x, verbose=0)
    got = keras_kd.multi_head_model(loaded).predict(x, verbose=0)
    for head in want:
        np.testing.assert_array_equal(got[head], want[head])
    np.testing.assert_array_equal(
        loaded.teacher.predict(x, verbose=0)["task_a"], lwf.teacher.predict(x, verbose=0)["task_a"]
    )
    history = loaded.fit(x, y, epochs=1, verbose=0)
    assert np.isfinite(history.history["task_a_lwf_loss"][0])


@pytest.mark.skipif(not backends.is_tensorflow(), reason="keras_kd exports from TensorFlow")
def test_multi_head_export_runs_every_head_in_litert(tmp_path):
    from ai_edge_litert.interpreter import Interpreter

    _, x, y, lwf = _trained_lwf()
    heads = keras_kd.multi_head_model(lwf)
    path = os.path.join(tmp_path, "heads.tflite")
    report = keras_kd.export_tflite(heads, path, sample=x)
    assert report.max_abs_diff < 1e-5 and report.top1_agreement == 1.0
    # Read back through the interpreter's own signature, by head name.
    interpreter = Interpreter(model_path=path)
    runner = interpreter.get_signature_runner()
    (input_name,) = runner.get_input_details()
    outputs = runner(**{input_name: x[:1]})
    want = heads.predict(x[:1], verbose=0)
    assert set(outputs) == {"task_a", "task_b"}
    for head in outputs:
        np.testing.assert_allclose(outputs[head], want[head], atol=1e-5)
    one = lifelong.head_model(heads, "task_a")
    assert keras_kd.export_tflite(one, os.path.join(tmp_path, "a.tflite"), sample=x).max_abs_diff < 1e-5


@pytest.mark.skipif(backends.name() == "jax", reason="the trainable set cannot change in a JAX fit")
def test_head_warmup_trains_the_new_head_alone_first():
    model = _task_a_model()
    x, y = _data()
    lwf = _lwf(model)
    optimizer = keras.optimizers.Adam(0.01)
    lwf.compile(optimizer=optimizer, loss=SPARSE)
    student = lwf.student
    snapshots = []
    record = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: snapshots.append(
            {layer.name: [w.numpy().copy() for w in layer.weights] for layer in student.layers}
        )
    )
    start = {layer.name: [w.numpy().copy() for w in layer.weights] for layer in student.layers}
    history = lwf.fit(
        x, y, epochs=3, batch_size=16, verbose=0,
        callbacks=[keras_kd.callbacks.HeadWarmup(2), record],
    )
    assert history.history["head_warmup"] == [1.0, 1.0, 0.0]
    assert lwf.optimizer is optimizer
    for name in ("shared", "norm", "task_a"):  # Frozen for two epochs, BN statistics too.
        for kept, now in zip(start[name], snapshots[1][name]):
            np.testing.assert_array_equal(kept, now)
        assert not all(np.array_equal(a, b) for a, b in zip(start[name], snapshots[2][name]))
    assert not np.array_equal(start["task_b"][0], snapshots[0]["task_b"][0])
    assert all(layer.trainable for layer in student.layers)


@pytest.mark.parametrize(
    "case, match",
    [
        ("unknown_old_head", r"Argument `old_heads` must name heads of `old_model`: \['task_a'\]"),
        ("misfit_head", r"Argument `new_head` \('task_b'\) cannot take the features"),
        ("name_taken", r"Argument `new_head` must have a name of its own: 'task_a' is taken"),
        ("unknown_features", r"Argument `features` must name a layer of `old_model`"),
        ("sets_alpha", r"Argument `alpha` is set by learn_without_forgetting"),
        ("subclassed", r"Argument `old_model` must be a Functional or Sequential"),
        ("not_a_layer", r"Argument `new_head` must be a keras.layers.Layer"),
    ],
)
def test_bad_inputs_fail_before_any_step(case, match):
    model = _task_a_model()
    head = keras.layers.Dense(NEW_CLASSES, name="task_b")
    kwargs = {}
    if case == "unknown_old_head":
        kwargs["old_heads"] = ["task_z"]
    elif case == "misfit_head":
        head = keras.Sequential([keras.Input((7,)), keras.layers.Dense(3)], name="task_b")
    elif case == "name_taken":
        head = keras.layers.Dense(3, name="task_a")
    elif case == "unknown_features":
        kwargs["features"] = "nope"
    elif case == "sets_alpha":
        kwargs["alpha"] = 0.3
    elif case == "subclassed":
        class Plain(keras.Model):
            def call(self, x):
                return x

        model = Plain()
    elif case == "not_a_layer":
        head = lambda features: features  # noqa: E731
    weights = [w.numpy().copy() for w in getattr(model, "weights", [])]
    with pytest.raises(ValueError, match=match):
        keras_kd.learn_without_forgetting(model, head, **kwargs)
    for kept, now in zip(weights, model.weights):
        np.testing.assert_array_equal(kept, now.numpy())


def test_heads_of_a_sequential_model():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((FEATURES,)), keras.layers.Dense(8, name="shared"),
         keras.layers.Dense(OLD_CLASSES, name="task_a")]
    )
    x, y = _data()
    lwf = _lwf(model)
    lwf.compile(optimizer="adam", loss=SPARSE)
    history = lwf.fit(x, y, epochs=1, verbose=0)
    assert "task_a_lwf_loss" in history.history
    assert set(keras_kd.multi_head_model(lwf).output) == {"task_a", "task_b"}


def test_old_heads_renamed_and_a_head_named_logits():
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((FEATURES,)), keras.layers.Dense(8, name="shared"),
         keras.layers.Dense(OLD_CLASSES, name="logits")]
    )
    with pytest.raises(ValueError, match=r"old_heads=\{'task_a': 'logits'\}"):
        _lwf(model)
    x, y = _data()
    before = model.predict(x, verbose=0)
    lwf = _lwf(model, old_heads={"task_a": "logits"})
    lwf.compile(optimizer="adam", loss=SPARSE)
    lwf.fit(x, y, epochs=1, verbose=0)
    np.testing.assert_array_equal(lwf.teacher.predict(x, verbose=0)["task_a"], before)
    assert set(keras_kd.multi_head_model(lwf).output) == {"task_a", "task_b"}


@pytest.mark.skipif(backends.name() != "jax", reason="the JAX refusal")
def test_head_warmup_refuses_jax_with_the_way_around():
    model = _task_a_model()
    x, y = _data()
    lwf = _lwf(model)
    lwf.compile(optimizer="adam", loss=SPARSE)
    with pytest.raises(ValueError, match="`HeadWarmup` does not run on Keras's JAX backend"):
        lwf.fit(x, y, epochs=1, verbose=0, callbacks=[keras_kd.callbacks.HeadWarmup(1)])


def test_a_bad_temperature_is_refused_before_anything_is_built():
    model = _task_a_model()
    with pytest.raises(ValueError, match="Argument `temperature` must be a finite number > 0"):
        keras_kd.learn_without_forgetting(model, keras.layers.Dense(3, name="task_b"), temperature=0)
