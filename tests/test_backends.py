"""The core of the Distiller on every Keras backend.

These tests use only `keras.ops` and numpy, and run on whichever backend
this process has: with the rest of the suite on TensorFlow, and alone under
`KERAS_BACKEND=jax` and `KERAS_BACKEND=torch` (`make test` runs all three).
Every loss is compared with the float64 numpy reference in
`tests/reference.py`; a `.keras` file saved on TensorFlow loads and trains
on.
"""

import os
import warnings

import keras
import numpy as np
import pytest

import keras_kd
from keras_kd._internal import backends
from keras_kd.data import cache
from keras_kd.data import replay
from tests import reference

FEATURES, CLASSES = 6, 4
SPARSE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def _mlp(hidden, seed, name):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((FEATURES,)), keras.layers.Dense(hidden, activation="relu"),
         keras.layers.Dense(CLASSES)],
        name=name,
    )


def _data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, FEATURES)).astype("float32")
    return x, rng.integers(0, CLASSES, size=n).astype("int32")


def _logs(distiller, x, y, **kwargs):
    """The losses of one evaluation batch holding all of `x`."""
    return distiller.evaluate(x, y, batch_size=len(x), return_dict=True, verbose=0, **kwargs)


def _logits(model, x):
    return keras.ops.convert_to_numpy(model(x, training=False))


def test_runs_on_this_backend():
    assert keras.backend.backend() == os.environ.get("KERAS_BACKEND", "tensorflow")


@pytest.mark.parametrize(
    "term, reference_term",
    [
        (keras_kd.losses.KLDivergence(), reference.kl),
        (keras_kd.losses.SoftTargetCrossentropy(), reference.soft_crossentropy),
        (keras_kd.losses.LogitMSE(), lambda t, s, T: reference.logit_mse(t, s)),
        (keras_kd.losses.KLDivergence(standardize=True),
         lambda t, s, T: reference.kl(reference.standardize(t), reference.standardize(s), T)),
    ],
    ids=["kl", "soft_ce", "logit_mse", "kl_standardized"],
)
def test_loss_equals_the_numpy_reference(term, reference_term):
    teacher, student = _mlp(16, 1, "teacher"), _mlp(8, 2, "student")
    x, y = _data()
    distiller = keras_kd.Distiller(teacher, student, temperature=3.0, alpha=0.3, terms=[term])
    distiller.compile(optimizer="adam", loss=SPARSE)
    logs = _logs(distiller, x, y)
    t, s = _logits(teacher, x), _logits(student, x)
    expected = reference.total_loss(t, s, y, 3.0, 0.3, [(1.0, reference_term, None)])
    np.testing.assert_allclose(logs["loss"], expected, rtol=1e-5)
    np.testing.assert_allclose(logs[f"{term.name}_loss"], reference_term(t, s, 3.0).mean(), rtol=1e-5)


def test_decoupled_kd_equals_the_numpy_reference():
    teacher, student = _mlp(16, 1, "teacher"), _mlp(8, 2, "student")
    x, y = _data()
    term = keras_kd.losses.DecoupledKD()
    distiller = keras_kd.Distiller(teacher, student, temperature=4.0, alpha=0.0, terms=[term])
    distiller.compile(optimizer="adam", loss=SPARSE)
    t, s = _logits(teacher, x), _logits(student, x)
    expected = reference.dkd(t, s, y, 4.0, term.target_weight, term.non_target_weight).mean()
    np.testing.assert_allclose(_logs(distiller, x, y)["dkd_loss"], expected, rtol=1e-4)


def test_sample_weights_and_class_weights_apply_to_every_part():
    teacher, student = _mlp(16, 1, "teacher"), _mlp(8, 2, "student")
    x, y = _data()
    weights = np.linspace(0.0, 2.0, len(x)).astype("float32")
    distiller = keras_kd.Distiller(teacher, student, temperature=2.0, alpha=0.4)
    distiller.compile(optimizer="adam", loss=SPARSE)
    t, s = _logits(teacher, x), _logits(student, x)
    logs = _logs(distiller, x, y, sample_weight=weights)
    expected = reference.total_loss(t, s, y, 2.0, 0.4, [(1.0, reference.kl, None)], weights)
    np.testing.assert_allclose(logs["loss"], expected, rtol=1e-5)
    # class_weight in fit: the per-example weight of each label; with a zero
    # learning rate the logged loss is that of the unchanged models.
    class_weight = {0: 0.5, 1: 2.0, 2: 1.0, 3: 0.0}
    distiller.compile(optimizer=keras.optimizers.SGD(0.0), loss=SPARSE)
    history = distiller.fit(x, y, batch_size=len(x), epochs=1, verbose=0, class_weight=class_weight)
    per_example = np.array([class_weight[int(label)] for label in y])
    expected = reference.total_loss(t, s, y, 2.0, 0.4, [(1.0, reference.kl, None)], per_example)
    np.testing.assert_allclose(history.history["loss"][0], expected, rtol=1e-5)


def test_several_teachers_mix_as_probabilities():
    teachers = [_mlp(16, 1, "teacher_a"), _mlp(12, 3, "teacher_b")]
    student = _mlp(8, 2, "student")
    x, y = _data()
    distiller = keras_kd.Distiller(teachers, student, temperature=2.0, alpha=0.0, teacher_weights=[0.25, 0.75])
    distiller.compile(optimizer="adam", loss=SPARSE)
    mixture = sum(
        w * reference.softmax(_logits(t, x) / 2.0) for w, t in zip((0.25, 0.75), teachers)
    )
    # Logits whose softmax at T = 2 is the mixture: T · log(mixture).
    expected = reference.kl(2.0 * np.log(mixture), _logits(student, x), 2.0).mean()
    np.testing.assert_allclose(_logs(distiller, x, y)["kl_loss"], expected, rtol=1e-5)


def test_cached_teacher_logits_give_the_online_loss():
    teacher, student = _mlp(16, 1, "teacher"), _mlp(8, 2, "student")
    x, y = _data()
    distiller = keras_kd.Distiller(teacher, student, temperature=2.0, alpha=0.5)
    distiller.compile(optimizer="adam", loss=SPARSE)
    online = _logs(distiller, x, y)
    # What `TeacherCache.attach` yields, as plain arrays (no tf.data needed).
    cached = {cache.INPUTS_KEY: x, cache.LOGITS_KEY: _logits(teacher, x)}
    np.testing.assert_allclose(_logs(distiller, cached, y)["loss"], online["loss"], rtol=1e-6)
    history = distiller.fit(cached, y, batch_size=8, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


class _RecordLosses(keras.callbacks.Callback):
    def __init__(self):
        super().__init__()
        self.epoch_losses = []

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_losses.append(logs["loss"])


def test_per_batch_live_values_reach_the_next_step():
    """A per-batch schedule changes the loss of the very next step.

    With a zero learning rate every step sees the same models, so the
    epoch's mean loss is the mean, over the batches, of the loss at each
    batch's scheduled weight and temperature. A value that reached the step
    only at the epoch's end (as on JAX without a state sync) would give the
    loss of the first batch's values.
    """
    teacher, student = _mlp(16, 1, "teacher"), _mlp(8, 2, "student")
    x, y = _data(n=32)
    distiller = keras_kd.Distiller(teacher, student, temperature=1.0, alpha=0.5)
    distiller.compile(optimizer=keras.optimizers.SGD(0.0), loss=SPARSE)
    temperatures = [1.0, 2.0, 4.0, 8.0]
    weights = [0.0, 1.0, 3.0, 10.0]
    scheduler = keras_kd.callbacks.LiveValueScheduler(
        lambda step: temperatures[step % 4], per="batch",
        schedules={"kl_weight": lambda step: weights[step % 4]},
    )
    recorder = _RecordLosses()
    distiller.fit(x, y, batch_size=8, epochs=2, shuffle=False, verbose=0, callbacks=[scheduler, recorder])
    t, s = _logits(teacher, x), _logits(student, x)
    expected = np.mean([
        reference.total_loss(t[8 * b: 8 * b + 8], s[8 * b: 8 * b + 8], y[8 * b: 8 * b + 8],
                             temperatures[b], 0.5, [(weights[b], reference.kl, None)])
        for b in range(4)
    ])
    np.testing.assert_allclose(recorder.epoch_losses, [expected, expected], rtol=1e-5)


def test_live_values_change_without_rebuilding_the_step():
    teacher, student = _mlp(16, 1, "teacher"), _mlp(8, 2, "student")
    x, y = _data()
    distiller = keras_kd.Distiller(teacher, student, temperature=2.0, alpha=0.5)
    distiller.compile(optimizer="adam", loss=SPARSE)
    distiller.fit(x, y, batch_size=8, epochs=1, verbose=0)
    step = distiller.train_function
    distiller.temperature = 5.0
    distiller.alpha = 0.2
    distiller.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert distiller.train_function is step
    t, s = _logits(teacher, x), _logits(student, x)
    expected = reference.total_loss(t, s, y, 5.0, 0.2, [(1.0, reference.kl, None)])
    np.testing.assert_allclose(_logs(distiller, x, y)["loss"], expected, rtol=1e-5)


def _trained_and_saved(tmp_path):
    """A Distiller trained 4 steps (temperature then set to 2.5), saved:
    `(distiller, path, x, y)`."""
    x, y = _data()
    distiller = keras_kd.Distiller(_mlp(16, 1, "teacher"), _mlp(8, 2, "student"), temperature=3.0, alpha=0.2)
    distiller.compile(optimizer="adam", loss=SPARSE, metrics=["accuracy"])
    distiller.fit(x, y, batch_size=8, epochs=1, verbose=0)
    distiller.temperature = 2.5
    path = os.path.join(tmp_path, "distiller.keras")
    distiller.save(path)
    return distiller, path, x, y


def test_save_load_and_train_on(tmp_path):
    distiller, path, x, y = _trained_and_saved(tmp_path)
    student = distiller.student
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(_logits(loaded.student, x), _logits(student, x), rtol=1e-6, atol=1e-6)
    assert float(keras.ops.convert_to_numpy(loaded.temperature)) == 2.5
    assert int(keras.ops.convert_to_numpy(loaded.optimizer.iterations)) == 4
    history = loaded.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert int(keras.ops.convert_to_numpy(loaded.optimizer.iterations)) == 8
    assert np.isfinite(history.history["loss"][0])


def test_a_file_saved_on_tensorflow_loads_and_trains_on():
    """`tests/fixtures/distiller_cc9dbb0.keras` was written on TensorFlow."""
    saved = np.load(os.path.join(FIXTURES, "distiller_cc9dbb0.npz"))
    with pytest.warns(UserWarning, match="skip_nonfinite_steps") if backends.name() == "torch" else _nothing():
        distiller = keras.saving.load_model(os.path.join(FIXTURES, "distiller_cc9dbb0.keras"))
    np.testing.assert_allclose(
        distiller.predict(saved["x"], verbose=0), saved["predictions"], rtol=1e-5, atol=1e-5
    )
    assert int(keras.ops.convert_to_numpy(distiller.optimizer.iterations)) == 8
    history = distiller.fit(saved["x"], saved["y"], batch_size=16, epochs=1, verbose=0)
    assert int(keras.ops.convert_to_numpy(distiller.optimizer.iterations)) == 12
    assert np.isfinite(history.history["loss"][0])


@pytest.mark.skipif(backends.is_tensorflow(), reason="saved here, loaded on TensorFlow")
def test_a_file_saved_here_loads_and_trains_on_tensorflow(tmp_path):
    import json
    import subprocess
    import sys

    distiller, path, x, y = _trained_and_saved(tmp_path)
    arrays = os.path.join(tmp_path, "arrays.npz")
    np.savez(arrays, x=x, y=y, predictions=distiller.predict(x, verbose=0))
    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "load_on_tensorflow_script.py")
    environment = {**os.environ, "KERAS_BACKEND": "tensorflow"}
    result = subprocess.run(
        [sys.executable, script, path, arrays], capture_output=True, text=True, timeout=600, env=environment
    )
    assert result.returncode == 0, result.stderr[-3000:]
    run = json.loads(result.stdout.strip().splitlines()[-1])
    assert run["backend"] == "tensorflow"
    assert run["max_prediction_difference"] < 1e-5
    assert run["temperature"] == 2.5
    assert (run["iterations_loaded"], run["iterations_after"]) == (4, 8)
    assert np.isfinite(run["loss"][0])


class _nothing:
    def __enter__(self):
        return self

    def __exit__(self, *args):
        return False


@pytest.mark.skipif(backends.is_tensorflow(), reason="these features run on TensorFlow")
@pytest.mark.parametrize(
    "kwargs, feature",
    [
        ({"teacher_precision": "bfloat16"}, "teacher_precision"),
    ],
)
def test_tensorflow_only_features_say_so(kwargs, feature):
    with pytest.raises(ValueError, match=rf"`{feature}` needs Keras's TensorFlow backend .* runs Keras on '{backends.name()}'"):
        keras_kd.Distiller(_mlp(16, 1, "teacher"), _mlp(8, 2, "student"), **kwargs)


@pytest.mark.skipif(backends.is_tensorflow(), reason="replay runs on TensorFlow")
def test_replayed_views_say_so():
    x, y = _images()
    replayed = {
        cache.INPUTS_KEY: x, cache.LOGITS_KEY: np.zeros((len(x), CLASSES), "float32"),
        replay.TRANSFORMATIONS_KEY: {"0/flips": np.zeros((len(x), 1), "float32")},
    }
    distiller = keras_kd.Distiller(
        _cnn(4, 1, "teacher"), _cnn(2, 2, "student"), augmentation=_translate_and_flip()
    )
    distiller.compile(optimizer="sgd", loss=SPARSE)
    with pytest.raises(ValueError, match=r"`ReplayCache` needs Keras's TensorFlow backend"):
        distiller.fit(replayed, y, batch_size=len(x), epochs=1, verbose=0)


def test_nonfinite_skipping_default_per_backend():
    distiller = keras_kd.Distiller(_mlp(16, 1, "teacher"), _mlp(8, 2, "student"))
    assert distiller.skip_nonfinite_steps is (backends.name() != "torch")


@pytest.mark.skipif(backends.name() != "torch", reason="skipping runs on TensorFlow and JAX")
def test_nonfinite_skipping_says_why_not_on_torch():
    with pytest.raises(ValueError, match=r"`skip_nonfinite_steps=True` does not run on Keras's PyTorch backend: .*in place"):
        keras_kd.Distiller(_mlp(16, 1, "teacher"), _mlp(8, 2, "student"), skip_nonfinite_steps=True)


def _fit_with_batchnorm(x, y, rows):
    distiller = keras_kd.Distiller(
        _mlp(16, 1, "teacher"), _with_batchnorm(8, 2, "student"), temperature=2.0, alpha=0.5
    )
    distiller.compile(optimizer=keras.optimizers.Adam(1e-2), loss=SPARSE)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        history = distiller.fit(x[rows], y[rows], batch_size=8, epochs=2, shuffle=False, verbose=0)
    skipped = [str(w.message) for w in caught if "were skipped" in str(w.message)]
    state = [keras.ops.convert_to_numpy(v) for v in distiller.student.weights + distiller.optimizer.variables]
    return distiller, history.history, skipped, state


@pytest.mark.skipif(backends.name() == "torch", reason="not done on PyTorch (see above)")
def test_a_nonfinite_step_is_skipped_as_if_the_batch_were_absent():
    x, y = _data(32)
    x[2 * 8 + 3, 0] = np.nan  # Batch 2 of 4.
    everything = np.arange(32)
    skipping, history, skipped, state = _fit_with_batchnorm(x, y, everything)
    _, _, _, absent = _fit_with_batchnorm(x, y, np.delete(everything, np.arange(16, 24)))
    # Weights, BatchNorm statistics, Adam's moments and step count: as if
    # the bad batch had not been there.
    for got, expected in zip(state, absent):
        np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-7)
    assert int(keras.ops.convert_to_numpy(skipping.optimizer.iterations)) == 2 * 3
    assert history["skipped_steps"] == [1.0, 1.0]
    assert np.isnan(history["loss"]).all()  # The logged mean includes the batch.
    assert len(skipped) == 2


def _with_batchnorm(hidden, seed, name):
    keras.utils.set_random_seed(seed)
    return keras.Sequential(
        [keras.Input((FEATURES,)), keras.layers.Dense(hidden, name="hidden"),
         keras.layers.BatchNormalization(momentum=0.5, name="norm"),
         keras.layers.ReLU(name="features"), keras.layers.Dense(CLASSES)],
        name=name,
    )


def test_feature_term_and_one_student_pass_per_step():
    teacher, student = _with_batchnorm(8, 1, "teacher"), _with_batchnorm(8, 2, "student")
    x, y = _data(n=16)
    hint = keras_kd.losses.FeatureHint("features", "features", adapter="none")
    distiller = keras_kd.Distiller(
        teacher, student, alpha=0.5, terms=[keras_kd.losses.KLDivergence(), hint]
    )
    distiller.compile(optimizer=keras.optimizers.SGD(0.0), loss=SPARSE)

    def features(model, training):
        view = keras.Model(model.inputs, model.get_layer("features").output)
        return keras.ops.convert_to_numpy(view(x, training=training))

    t, s = features(teacher, False), features(student, False)
    np.testing.assert_allclose(
        _logs(distiller, x, y)["hint_loss"], np.mean((t - s) ** 2), rtol=1e-5
    )
    # One training step: the student's BatchNorm moves once, by momentum 0.5
    # towards the batch mean; a second student pass would move it twice.
    hidden = keras.ops.convert_to_numpy(student.get_layer("hidden")(x))
    distiller.fit(x, y, batch_size=len(x), epochs=1, verbose=0)
    moving_mean = keras.ops.convert_to_numpy(student.get_layer("norm").moving_mean)
    np.testing.assert_allclose(moving_mean, 0.5 * hidden.mean(0), rtol=1e-5, atol=1e-6)


@pytest.mark.skipif(backends.is_tensorflow(), reason="runs on TensorFlow")
def test_xla_callback_says_where_it_runs():
    with pytest.raises(ValueError, match=r"`XLACompile` needs Keras's TensorFlow backend .*JAX always compiles"):
        keras_kd.callbacks.XLACompile()


@pytest.mark.skipif(backends.is_tensorflow(), reason="export runs on TensorFlow")
def test_export_says_where_it_runs(tmp_path):
    with pytest.raises(ValueError, match=r"`export_tflite` needs Keras's TensorFlow backend .*loads there"):
        keras_kd.export_tflite(_mlp(8, 2, "student"), os.path.join(tmp_path, "s.tflite"))
    assert os.listdir(tmp_path) == []


@pytest.mark.skipif(backends.is_tensorflow(), reason="TensorFlow runs this suite")
def test_keras_kd_trains_where_tensorflow_is_not_installed():
    import json
    import subprocess
    import sys

    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "no_tensorflow_script.py")
    result = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    run = json.loads(result.stdout.strip().splitlines()[-1])
    assert run["backend"] == backends.name()
    assert not run["tensorflow_imported"]
    assert all(np.isfinite(value) for values in run["history"].values() for value in values)
    assert np.isfinite(run["evaluation"]["loss"])
    assert "needs TensorFlow, which is not installed" in run["teacher_cache_error"]


@pytest.mark.skipif(backends.name() != "jax", reason="keras.distribution on JAX")
def test_jax_data_parallel_on_two_devices_equals_one():
    import json
    import subprocess
    import sys

    script = os.path.join(os.path.dirname(os.path.abspath(__file__)), "jax_data_parallel_script.py")
    result = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    runs = json.loads(result.stdout.strip().splitlines()[-1])
    assert runs["devices"] == 2
    for run in ("", "_augmented"):
        one, two = runs["one" + run], runs["two" + run]
        for name, values in one["history"].items():
            np.testing.assert_allclose(two["history"][name], values, rtol=1e-5, atol=1e-6)
        for one_weights, two_weights in zip(one["weights"], two["weights"]):
            np.testing.assert_allclose(two_weights, one_weights, rtol=1e-5, atol=1e-6)


# Consistent augmentation ------------------------------------------------------


def _cnn(filters, seed, name, recorder=None):
    keras.utils.set_random_seed(seed)
    layers = [keras.Input((8, 8, 1))] + ([recorder] if recorder else [])
    layers += [
        keras.layers.Conv2D(filters, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(CLASSES),
    ]
    return keras.Sequential(layers, name=name)


def _translate_and_flip(seed=1):
    return keras.Sequential([
        keras.layers.RandomTranslation(0.25, 0.25, seed=seed),
        keras.layers.RandomFlip("horizontal", seed=seed + 1),
    ])


def _images(n=16, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 8, 8, 1)).astype("float32"), rng.integers(0, CLASSES, n).astype("int32")


class _Recorder(keras.layers.Layer):
    """Identity; keeps a numpy copy of every concrete input it sees (run
    eagerly; JAX's shape inference passes abstract values, not kept)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seen = []

    def call(self, inputs):
        try:
            self.seen.append(keras.ops.convert_to_numpy(inputs))
        except Exception:  # noqa: BLE001 - an abstract value has no numbers.
            pass
        return inputs


@pytest.mark.parametrize("mixing", [None, "mixup"])
def test_both_models_see_one_augmented_view_and_evaluation_the_raw_one(mixing):
    teacher_seen, student_seen = _Recorder(name="teacher_inputs"), _Recorder(name="student_inputs")
    teacher, student = _cnn(8, 1, "teacher", teacher_seen), _cnn(4, 2, "student", student_seen)
    x, y = _images(32)
    distiller = keras_kd.Distiller(teacher, student, augmentation=_translate_and_flip(), mixing=mixing)
    distiller.compile(optimizer="sgd", loss=SPARSE, run_eagerly=True)
    teacher_seen.seen.clear(), student_seen.seen.clear()  # Keras's build pass.
    distiller.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    assert len(teacher_seen.seen) == len(student_seen.seen) == 2
    for batch, (by_teacher, by_student) in enumerate(zip(teacher_seen.seen, student_seen.seen)):
        np.testing.assert_array_equal(by_teacher, by_student)
        assert not np.allclose(by_student, x[16 * batch:16 * (batch + 1)])
    teacher_seen.seen.clear(), student_seen.seen.clear()
    distiller.evaluate(x, y, batch_size=32, verbose=0)
    np.testing.assert_array_equal(teacher_seen.seen[-1], x)
    np.testing.assert_array_equal(student_seen.seen[-1], x)
    student_seen.seen.clear()
    distiller.predict(x, batch_size=32, verbose=0)
    np.testing.assert_array_equal(student_seen.seen[-1], x)


def test_compiled_augmented_steps_draw_new_views_and_match_numpy():
    """Each step's loss equals numpy on the view Keras's own layers draw from
    the same seeds: the step draws afresh (on JAX its seeds are state, not
    constants of the compiled step) and both models see that view."""
    teacher, student = _cnn(8, 1, "teacher"), _cnn(4, 2, "student")
    x, y = _images()
    mixing = keras.layers.MixUp(alpha=0.4, seed=5)
    distiller = keras_kd.Distiller(
        teacher, student, temperature=3.0, alpha=0.3, augmentation=_translate_and_flip(), mixing=mixing
    )
    distiller.compile(optimizer=keras.optimizers.SGD(0.0), loss=SPARSE)
    history = distiller.fit(x, y, batch_size=len(x), epochs=3, shuffle=False, verbose=0)
    keras_own, keras_mixup = _translate_and_flip(), keras.layers.MixUp(alpha=0.4, seed=5)
    losses = []
    for _ in range(3):
        view = keras_own(x, training=True)
        drawn = keras_mixup.get_random_transformation(view, training=True, seed=keras_mixup.generator)
        mixed = keras_mixup.transform_images(view, drawn, training=True)
        weight = keras.ops.convert_to_numpy(drawn["mix_weight"]).reshape(-1).astype("float64")
        partner = keras.ops.convert_to_numpy(drawn["permutation_order"])
        t, s = _logits(teacher, mixed).astype("float64"), _logits(student, mixed).astype("float64")
        label_loss = np.mean(
            weight * reference.sparse_crossentropy(y, s)
            + (1 - weight) * reference.sparse_crossentropy(y[partner], s)
        )
        losses.append(0.3 * label_loss + 0.7 * np.mean(reference.kl(t, s, 3.0)))
    assert len(set(np.round(losses, 6))) == 3  # Three different views.
    np.testing.assert_allclose(history.history["loss"], losses, rtol=1e-5)


def test_augmentation_seed_state_is_saved_and_loaded(tmp_path):
    augmentation = _translate_and_flip()

    def states(layers):
        return [keras.ops.convert_to_numpy(layer.generator.state).tolist() for layer in layers]

    initial = states(augmentation.layers)
    distiller = keras_kd.Distiller(_cnn(8, 1, "teacher"), _cnn(4, 2, "student"), augmentation=augmentation)
    distiller.compile(optimizer="adam", loss=SPARSE)
    x, y = _images()
    distiller.fit(x, y, batch_size=8, epochs=1, verbose=0)
    trained = states(augmentation.layers)
    assert trained != initial  # The fit's draws advanced the seeds.
    path = os.path.join(tmp_path, "augmented.keras")
    distiller.save(path)
    loaded = keras.saving.load_model(path)
    assert states(loaded.augmentation.layers) == trained
    loaded.fit(x, y, batch_size=8, epochs=1, verbose=0)
    assert states(loaded.augmentation.layers) != trained
