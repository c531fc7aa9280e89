"""Knowledge beyond logits: DKD, logit standardization, AT, FitNets hints, CTKD.

Each term against an independent float64 numpy reference (tests/reference.py),
then all of them together under jit_compile, MirroredStrategy and
mixed_float16, with the student left exactly as the user built it.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_kd
from keras_kd import losses
from tests import reference
from tests.conftest import NUM_FEATURES, make_data, make_mlp

SPARSE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _logits(seed, n=16, classes=6, scale=3.0):
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, classes)) * scale).astype("float32")


def _compute(term, teacher, student, labels=None, temperature=4.0):
    return np.asarray(term.compute(teacher, student, labels, np.float32(temperature)))


# --- DKD -----------------------------------------------------------------


@pytest.mark.parametrize("temperature", [1.0, 4.0, 10.0])
def test_dkd_matches_numpy(temperature):
    t, s = _logits(0), _logits(1)
    labels = np.random.default_rng(2).integers(0, 6, 16)
    term = losses.DecoupledKD(target_weight=1.0, non_target_weight=8.0)
    expected = reference.dkd(t, s, labels, temperature)
    np.testing.assert_allclose(_compute(term, t, s, labels, temperature), expected, rtol=1e-4, atol=1e-5)
    # One-hot labels give the same; the paper's code (target logit - 1000) agrees here too.
    one_hot = np.eye(6, dtype="float32")[labels]
    np.testing.assert_allclose(_compute(term, t, s, one_hot, temperature), expected, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(reference.dkd_minus_1000(t, s, labels, temperature), expected, rtol=1e-9)


def test_dkd_masks_the_target_exactly_where_minus_1000_does_not():
    # Logits in the thousands (e.g. an unnormalized head): subtracting 1000
    # from the target no longer removes it, an exact mask still does.
    t, s = _logits(0, scale=2000.0), _logits(1, scale=2000.0)
    labels = np.argmax(t, -1)  # The target is the teacher's top class.
    expected = reference.dkd(t, s, labels, 4.0)
    got = _compute(losses.DecoupledKD(), t, s, labels, 4.0)
    np.testing.assert_allclose(got, expected, rtol=1e-3, atol=1e-2)
    with np.errstate(all="ignore"):
        leaky = reference.dkd_minus_1000(t, s, labels, 4.0)
    assert not np.allclose(leaky, expected, rtol=1e-2)


def test_dkd_in_float16_logits_equals_float32_of_the_rounded_logits():
    t, s = _logits(0, scale=300.0), _logits(1, scale=300.0)
    labels = np.random.default_rng(2).integers(0, 6, 16)
    t16, s16 = t.astype("float16"), s.astype("float16")
    expected = reference.dkd(t16.astype(np.float64), s16.astype(np.float64), labels, 4.0)
    np.testing.assert_allclose(_compute(losses.DecoupledKD(), t16, s16, labels, 4.0), expected, rtol=1e-3, atol=1e-3)


def test_dkd_rows_without_a_label_contribute_nothing_and_no_labels_is_an_error():
    t, s = _logits(0), _logits(1)
    labels = np.random.default_rng(2).integers(0, 6, 16)
    labels[:4] = -1
    got = _compute(losses.DecoupledKD(), t, s, labels)
    np.testing.assert_array_equal(got[:4], 0.0)
    np.testing.assert_allclose(got[4:], reference.dkd(t[4:], s[4:], labels[4:], 4.0), rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="DecoupledKD needs the labels"):
        _compute(losses.DecoupledKD(), t, s, None)


# --- Logit standardization -------------------------------------------------


def test_standardized_kl_matches_numpy_and_ignores_logit_scale():
    t, s = _logits(0), _logits(1)
    term = losses.KLDivergence(standardize=True)
    expected = reference.kl(reference.standardize(t), reference.standardize(s), 2.0)
    np.testing.assert_allclose(_compute(term, t, s, temperature=2.0), expected, rtol=1e-4, atol=1e-6)
    # z-scores do not change when a logit vector is shifted and scaled.
    np.testing.assert_allclose(_compute(term, 5 * t + 3, 0.1 * s - 7, temperature=2.0), expected, rtol=1e-3, atol=1e-5)


def test_standardized_dkd_matches_numpy():
    t, s = _logits(0), _logits(1)
    labels = np.random.default_rng(2).integers(0, 6, 16)
    term = losses.DecoupledKD(standardize=True)
    expected = reference.dkd(reference.standardize(t), reference.standardize(s), labels, 2.0)
    np.testing.assert_allclose(_compute(term, t, s, labels, 2.0), expected, rtol=1e-4, atol=1e-5)


# --- Attention transfer ------------------------------------------------------


@pytest.mark.parametrize("student_size", [8, 4], ids=["same_size", "pooled"])
def test_attention_transfer_matches_numpy(student_size):
    rng = np.random.default_rng(0)
    teacher_maps = rng.normal(size=(4, 8, 8, 16)).astype("float32")
    student_maps = rng.normal(size=(4, student_size, student_size, 3)).astype("float32")
    term = losses.AttentionTransfer("t", "s")
    expected = reference.attention_transfer(teacher_maps, student_maps)
    np.testing.assert_allclose(_compute(term, teacher_maps, student_maps), expected, rtol=1e-4, atol=1e-8)


def test_attention_transfer_refuses_sizes_that_do_not_divide():
    with pytest.raises(ValueError, match=r"sizes must divide: teacher \(8, 8\), student \(3, 3\)"):
        losses.AttentionTransfer("t", "s").build_for((None, 8, 8, 4), (None, 3, 3, 4))


# --- Feature hints and their adapters ---------------------------------------


def _cnn(channels, name, seed, batch_norm=True):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((16, 16, 1))
    x = keras.layers.Conv2D(channels, 3, padding="same", name="conv1")(inputs)
    if batch_norm:
        x = keras.layers.BatchNormalization(name="norm1")(x)
    x = keras.layers.ReLU(name="relu1")(x)
    x = keras.layers.MaxPooling2D(name="pool1")(x)
    x = keras.layers.Conv2D(2 * channels, 3, padding="same", activation="relu", name="conv2")(x)
    x = keras.layers.GlobalAveragePooling2D(name="gap")(x)
    return keras.Model(inputs, keras.layers.Dense(5, name="logits")(x), name=name)


def _images(n=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 16, 16, 1)).astype("float32"), rng.integers(0, 5, n)


@pytest.mark.parametrize(
    "teacher_layer, student_layer, adapter_class",
    [
        ("conv1", "conv1", "Conv2D"),  # Same size, 16 -> 8 channels: 1x1 conv.
        ("conv2", "conv1", "Conv2D"),  # Student map twice the size: strided conv.
        ("conv1", "pool1", "Conv2DTranspose"),  # Half the size: transposed conv.
        ("gap", "gap", "Dense"),  # Vectors.
    ],
)
def test_adapters_train_save_and_stay_out_of_the_student(teacher_layer, student_layer, adapter_class, tmp_path):
    teacher, student = _cnn(16, "teacher", 1), _cnn(4, "student", 2)
    student_parameters = student.count_params()
    hint = losses.FeatureHint(teacher_layer, student_layer)
    distiller = keras_kd.Distiller(teacher, student, terms=[losses.KLDivergence(), hint])
    assert type(hint.adapter).__name__ == adapter_class
    adapted = hint.adapter.compute_output_shape(student.get_layer(student_layer).output.shape)
    assert tuple(adapted)[1:] == tuple(teacher.get_layer(teacher_layer).output.shape)[1:]
    distiller.compile(optimizer="adam", loss=SPARSE)
    x, y = _images()
    before = [w.numpy().copy() for w in hint.adapter.weights]
    distiller.fit(x, y, batch_size=16, epochs=2, verbose=0)
    assert any(not np.array_equal(b, w.numpy()) for b, w in zip(before, hint.adapter.weights))
    # The student is exactly the student: no adapter weight, same parameters, same export.
    assert student.count_params() == student_parameters
    assert not {id(w) for w in hint.adapter.weights} & {id(w) for w in student.weights}
    report = keras_kd.export_tflite(student, tmp_path / "student.tflite", sample=x)
    assert report.max_abs_diff < 1e-4
    distiller.save(tmp_path / "d.keras")
    restored = keras.saving.load_model(tmp_path / "d.keras", safe_mode=True)
    for a, b in zip(hint.adapter.weights, restored.terms[1].adapter.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())


def _feature_distillation():
    return keras.distillation.FeatureDistillation(loss="mse", teacher_layer_name="conv2", student_layer_name="conv2")


def test_hint_without_adapter_equals_keras_distillation_feature_loss():
    # Without BatchNorm: keras.distillation runs the student's feature path
    # in training mode (next test).
    teacher = _cnn(4, "teacher", 1, batch_norm=False)
    student = _cnn(4, "student", 2, batch_norm=False)
    x, y = _images()
    peer = keras.distillation.Distiller(teacher, student, student_loss_weight=0.0,
                                        distillation_losses=_feature_distillation())
    peer.compile(optimizer=keras.optimizers.SGD(0.0), loss=SPARSE)
    peer_loss = peer.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)["loss"]
    # The same keras.distillation object, converted: FeatureHint without an adapter.
    ours = keras_kd.compat.Distiller(teacher, student, student_loss_weight=0.0, distillation_losses=_feature_distillation())
    ours.compile(optimizer=keras.optimizers.SGD(0.0))
    assert ours.terms[0].adapter is None
    logs = ours.evaluate(x, y, batch_size=32, verbose=0, return_dict=True)
    np.testing.assert_allclose(logs["feature_loss"], peer_loss, rtol=1e-5)
    features = [keras.Model(m.inputs, m.get_layer("conv2").output).predict(x, verbose=0) for m in (teacher, student)]
    np.testing.assert_allclose(logs["feature_loss"], np.mean((features[0] - features[1]) ** 2.0), rtol=1e-5)


@pytest.mark.upstream
def test_keras_distillation_evaluate_changes_the_students_batchnorm():
    teacher, student = _cnn(4, "teacher", 1), _cnn(4, "student", 2)
    x, y = _images()
    before = [v.numpy().copy() for v in student.non_trainable_variables]
    peer = keras.distillation.Distiller(teacher, student, student_loss_weight=0.0,
                                        distillation_losses=_feature_distillation())
    peer.compile(optimizer=keras.optimizers.SGD(0.0), loss=SPARSE)
    peer.evaluate(x, y, batch_size=32, verbose=0)
    assert any(not np.array_equal(b, v.numpy()) for b, v in zip(before, student.non_trainable_variables))
    ours = keras_kd.compat.Distiller(teacher, student, student_loss_weight=0.0, distillation_losses=_feature_distillation())
    ours.compile(optimizer=keras.optimizers.SGD(0.0))
    after_peer = [v.numpy().copy() for v in student.non_trainable_variables]
    ours.evaluate(x, y, batch_size=32, verbose=0)
    for b, v in zip(after_peer, student.non_trainable_variables):
        np.testing.assert_array_equal(b, v.numpy())


def test_one_pass_each_and_a_bit_identical_teacher_with_several_feature_terms():
    teacher, student = _cnn(16, "teacher", 1), _cnn(4, "student", 2)
    calls = {"teacher": 0, "student": 0}
    for role, model in (("teacher", teacher), ("student", student)):
        layer = model.get_layer("conv1")
        original = layer.call

        def counted(*args, role=role, original=original, **kwargs):
            calls[role] += 1
            return original(*args, **kwargs)

        layer.call = counted
    terms = [
        losses.KLDivergence(standardize=True), losses.DecoupledKD(),
        losses.FeatureHint("conv2", "conv1", name="hint1"), losses.FeatureHint("gap", "gap", name="hint2"),
        losses.AttentionTransfer("conv1", "pool1", name="at1"), losses.AttentionTransfer("conv2", "conv2", name="at2"),
    ]
    distiller = keras_kd.Distiller(teacher, student, terms=terms, alpha=0.5)
    distiller.compile(optimizer="adam", loss=SPARSE, run_eagerly=True)
    x, y = _images()
    teacher_state = [v.numpy().copy() for v in teacher.variables]
    distiller.fit(x, y, batch_size=16, epochs=1, verbose=0)  # 2 steps.
    assert calls == {"teacher": 2, "student": 2}
    distiller.evaluate(x, y, batch_size=16, verbose=0)
    distiller.predict(x, verbose=0)
    for before, variable in zip(teacher_state, teacher.variables):
        np.testing.assert_array_equal(before, variable.numpy())


# --- All methods under XLA, two replicas and mixed_float16 --------------------


def _all_terms():
    return [
        losses.KLDivergence(standardize=True), losses.DecoupledKD(weight=0.5),
        losses.FeatureHint("conv2", "conv1", name="hint"),
        losses.AttentionTransfer("conv1", "pool1", name="at", weight=10.0),
    ]


def _run(strategy=None, jit_compile=False, policy="float32", temperature=4.0):
    strategy = strategy or tf.distribute.get_strategy()
    x, y = _images(n=64)
    with strategy.scope():
        teacher = _cnn(16, "teacher", 1, batch_norm=False)
        keras.mixed_precision.set_dtype_policy(policy)
        try:
            student = _cnn(4, "student", 2, batch_norm=False)
        finally:
            keras.mixed_precision.set_dtype_policy("float32")
        distiller = keras_kd.Distiller(teacher, student, terms=_all_terms(), alpha=0.5, temperature=temperature)
        distiller.compile(optimizer=keras.optimizers.SGD(0.05), loss=SPARSE, jit_compile=jit_compile)
    history = distiller.fit(x, y, batch_size=16, epochs=2, shuffle=False, verbose=0).history
    return history, [w.numpy() for w in distiller.student.weights]


@pytest.mark.parametrize("mode", ["xla", "two_replicas"])
def test_all_methods_under_xla_and_two_replicas(mode, two_replicas):
    one_logs, one_weights = _run()
    if mode == "xla":
        logs, weights = _run(jit_compile=True)
    else:
        logs, weights = _run(strategy=two_replicas)
    assert {"kl_loss", "dkd_loss", "hint_loss", "at_loss"} <= set(logs)
    for key in one_logs:
        np.testing.assert_allclose(logs[key], one_logs[key], rtol=1e-4, atol=1e-6, err_msg=key)
    for a, b in zip(one_weights, weights):
        np.testing.assert_allclose(b, a, rtol=1e-4, atol=1e-5)


def test_all_methods_with_a_mixed_float16_student():
    float_logs, _ = _run()
    logs, weights = _run(policy="mixed_float16")
    assert all(np.isfinite(w).all() for w in weights)
    for key in ("kl_loss", "dkd_loss", "hint_loss", "at_loss"):
        # float16 activations: about 3 significant digits per value.
        np.testing.assert_allclose(logs[key][0], float_logs[key][0], rtol=2e-2, err_msg=key)


# --- Learned temperature (CTKD) --------------------------------------------


def test_learned_temperature_ascends_the_distillation_loss_through_the_reversal():
    def one_step(reversal):
        teacher, student = make_mlp(32, seed=1), make_mlp(8, seed=2)
        learned = keras_kd.LearnedTemperature(initial=4.0, reversal=reversal)
        distiller = keras_kd.Distiller(teacher, student, temperature=learned, alpha=0.0)
        distiller.compile(optimizer=keras.optimizers.SGD(1.0))
        x, _ = make_data(n=32)
        before = float(learned.logit.numpy())
        distiller.fit(x, batch_size=32, epochs=1, verbose=0)
        return float(learned.logit.numpy()) - before

    descent, reversed_ = one_step(1.0), one_step(-1.0)
    assert descent != 0.0
    np.testing.assert_allclose(reversed_, -descent, rtol=1e-5)
    assert one_step(0.0) == 0.0


def test_learned_temperature_is_logged_scheduled_and_saved(tmp_path):
    learned = keras_kd.LearnedTemperature(initial=3.0, t_min=1.0, t_range=20.0, reversal=0.0)
    distiller = keras_kd.Distiller(make_mlp(32, seed=1), make_mlp(8, seed=2), temperature=learned, alpha=0.5)
    distiller.compile(optimizer=keras.optimizers.Adam(0.05), loss=SPARSE)
    np.testing.assert_allclose(float(distiller.temperature), 3.0, rtol=1e-6)
    assert "temperature" not in distiller.live_variables
    curriculum = keras_kd.callbacks.LiveValueScheduler(
        schedules={"temperature_reversal": keras_kd.schedules.Cosine(0.0, -1.0, duration=0.5, fractions=True)},
        per="batch",
    )
    x, y = make_data(n=128)
    history = distiller.fit(x, y, batch_size=32, epochs=4, callbacks=[curriculum], verbose=0).history
    assert len(history["temperature"]) == 4 and len(set(history["temperature"])) == 4
    assert history["temperature_reversal"][-1] == -1.0
    assert all(1.0 < t < 21.0 for t in history["temperature"])
    distiller.save(tmp_path / "d.keras")
    restored = keras.saving.load_model(tmp_path / "d.keras", safe_mode=True)
    np.testing.assert_allclose(float(restored.temperature), float(distiller.temperature), rtol=1e-6)
    with pytest.raises(ValueError, match=r"Argument `temperature_reversal` must be in \[-1, 1\]"):
        distiller.set_live_value("temperature_reversal", -2.0)
    with pytest.raises(ValueError, match=r"Argument `initial` must lie strictly between `t_min` and `t_min \+ t_range`"):
        keras_kd.LearnedTemperature(initial=30.0)


# --- Outputs from dicts and from shared layers ----------------------------------


class _DictCNN(keras.Model):
    """A subclassed model whose call returns its logits and a feature map."""

    def __init__(self, channels, **kwargs):
        super().__init__(**kwargs)
        self.channels = channels
        self.conv = keras.layers.Conv2D(channels, 3, padding="same", activation="relu")
        self.pool = keras.layers.GlobalAveragePooling2D()
        self.head = keras.layers.Dense(5)
        self.calls = 0

    def call(self, x):
        self.calls += 1
        features = self.conv(x)
        return {"logits": self.head(self.pool(features)), "features": features}


def _dict_cnn(channels, seed):
    keras.utils.set_random_seed(seed)
    model = _DictCNN(channels, name=f"dict_cnn_{seed}")
    model(_images(n=2)[0])  # Built: its output shapes are known.
    return model


def test_subclassed_models_dict_outputs_feed_hints_once_per_step():
    teacher, student = _dict_cnn(8, 1), _dict_cnn(4, 2)
    hint = losses.FeatureHint("features", "features", name="hint")
    attention = losses.AttentionTransfer("features", "features", name="at")
    distiller = keras_kd.Distiller(
        teacher, student, terms=[losses.KLDivergence(), hint, attention], alpha=0.5, temperature=2.0)
    assert type(hint.adapter).__name__ == "Conv2D"  # 4 -> 8 channels, a 1x1 conv.
    x, y = _images()
    t, s = teacher(x), student(x)
    adapted = np.asarray(hint.adapter(s["features"]), np.float64)
    expected = {
        "kl_loss": reference.kl(t["logits"], s["logits"], 2.0).mean(),
        "hint_loss": np.mean((np.asarray(t["features"], np.float64) - adapted) ** 2),
        "at_loss": reference.attention_transfer(
            np.asarray(t["features"]), np.asarray(s["features"])).mean(),
        "student_loss": reference.sparse_crossentropy(y, s["logits"]).mean(),
    }
    distiller.compile(optimizer="sgd", loss=SPARSE, run_eagerly=True)
    teacher.calls = student.calls = 0
    history = distiller.fit(x, y, batch_size=len(x), epochs=1, verbose=0)
    assert (teacher.calls, student.calls) == (1, 1)
    for key, value in expected.items():
        np.testing.assert_allclose(history.history[key][0], value, rtol=1e-4, atol=1e-7, err_msg=key)
    assert distiller.predict(x, verbose=0).shape == (len(x), 5)  # The logits.


def test_functional_model_with_dict_outputs_uses_its_logits_entry():
    keras.utils.set_random_seed(3)
    inputs = keras.Input((16, 16, 1))
    features = keras.layers.Conv2D(4, 3, padding="same", activation="relu", name="conv")(inputs)
    logits = keras.layers.Dense(5, name="dense")(keras.layers.GlobalAveragePooling2D()(features))
    # Keras sorts dict outputs: `student.outputs[0]` is "features", not the logits.
    student = keras.Model(inputs, {"logits": logits, "features": features})
    plain = keras.Model(inputs, logits)
    teacher = _cnn(8, "teacher", 1, batch_norm=False)
    x, y = _images()
    losses_seen = []
    for model, hint_layer in ((student, "features"), (plain, "conv")):
        distiller = keras_kd.Distiller(
            teacher, model, terms=[losses.KLDivergence(), losses.FeatureHint("conv1", hint_layer, name="hint")])
        distiller.compile(optimizer="sgd", loss=SPARSE)
        losses_seen.append(distiller.evaluate(x, y, verbose=0, return_dict=True))
    for key in ("kl_loss", "student_loss"):
        np.testing.assert_allclose(losses_seen[0][key], losses_seen[1][key], rtol=1e-6)


def test_missing_dict_entries_are_named():
    teacher = _dict_cnn(8, 1)
    with pytest.raises(ValueError, match=r"has no output named \['nope'\]: it returns a dict with the keys \['features', 'logits'\]"):
        keras_kd.Distiller(teacher, _dict_cnn(4, 2), terms=[losses.LogitMSE(teacher_layer="nope")])


def test_a_layer_shared_by_two_models_is_read_in_the_distillers_model():
    keras.utils.set_random_seed(4)
    shared = keras.layers.Dense(6, activation="tanh", name="shared")
    other_input = keras.Input((4,))
    keras.Model(other_input, shared(other_input))  # The shared layer's first call.
    inputs = keras.Input((NUM_FEATURES,))
    first = keras.layers.Dense(4, name="first")
    hidden = shared(first(inputs))
    teacher = keras.Model(inputs, keras.layers.Dense(3, name="logits")(hidden))
    student = make_mlp(hidden=6, seed=5, num_classes=3)
    hint = losses.FeatureHint("shared", "hidden", adapter="none", name="hint")
    distiller = keras_kd.Distiller(teacher, student, terms=[hint])
    x = np.random.default_rng(0).normal(size=(16, NUM_FEATURES)).astype("float32")
    y = np.zeros(16, "int32")
    distiller.compile(optimizer="sgd", loss=SPARSE)
    logs = distiller.evaluate(x, y, verbose=0, return_dict=True)
    teacher_features = np.asarray(shared(first(x)), np.float64)  # Its call in the teacher.
    student_features = np.asarray(keras.Model(student.inputs, student.get_layer("hidden").output)(x))
    np.testing.assert_allclose(
        logs["hint_loss"], np.mean((teacher_features - student_features) ** 2), rtol=1e-5)


class _PlainSubclassed(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.hidden = keras.layers.Dense(8, activation="relu")
        self.head = keras.layers.Dense(3)

    def call(self, x):
        return self.head(self.hidden(x))


def test_built_subclassed_and_one_element_list_models_keep_working():
    x = np.random.default_rng(0).normal(size=(16, NUM_FEATURES)).astype("float32")
    y = np.zeros(16, "int32")
    teacher = _PlainSubclassed(name="plain_subclassed")
    teacher(x[:2])  # Built, returns a tensor: the default terms need no dict.
    inputs = keras.Input((NUM_FEATURES,))
    listed = keras.Model(inputs, [keras.layers.Dense(3)(inputs)])  # keras.Model(i, [logits])
    distiller = keras_kd.Distiller(teacher, listed, temperature=2.0, alpha=0.0)
    distiller.compile(optimizer="sgd", loss=SPARSE)
    logs = distiller.evaluate(x, y, verbose=0, return_dict=True)
    expected = reference.kl(np.asarray(teacher(x)), np.asarray(listed(x)), 2.0).mean()
    np.testing.assert_allclose(logs["kl_loss"], expected, rtol=1e-5)
    two = keras.Model(inputs, [keras.layers.Dense(3)(inputs), keras.layers.Dense(4)(inputs)])
    with pytest.raises(ValueError, match="returns a list of 2 outputs; distillation needs one logits output"):
        keras_kd.Distiller(teacher, two)


def test_layer_names_of_a_functional_dict_model_get_their_own_shapes():
    keras.utils.set_random_seed(6)
    inputs = keras.Input((NUM_FEATURES,))
    hidden = keras.layers.Dense(7, activation="relu", name="hid")(inputs)
    student = keras.Model(inputs, {"logits": keras.layers.Dense(3)(hidden), "extra": hidden})
    teacher = make_mlp(hidden=10, seed=7, num_classes=3)
    hint = losses.FeatureHint("hidden", "hid", name="hint")
    distiller = keras_kd.Distiller(teacher, student, terms=[hint])
    assert tuple(hint.adapter.kernel.shape) == (7, 10)  # From "hid", not from the logits.
    x = np.random.default_rng(1).normal(size=(16, NUM_FEATURES)).astype("float32")
    distiller.compile(optimizer="sgd", loss=SPARSE)
    logs = distiller.evaluate(x, np.zeros(16, "int32"), verbose=0, return_dict=True)
    teacher_hidden = np.asarray(keras.Model(teacher.inputs, teacher.get_layer("hidden").output)(x))
    adapted = np.asarray(hint.adapter(keras.Model(inputs, hidden)(x)))
    np.testing.assert_allclose(logs["hint_loss"], np.mean((teacher_hidden - adapted) ** 2), rtol=1e-5)


def test_cache_and_evaluation_report_read_the_logits_of_dict_models():
    teacher = _dict_cnn(8, 1)
    x, y = _images()
    cache = keras_kd.TeacherCache.compute(teacher, x, verbose=0)
    np.testing.assert_allclose(cache.logits, np.asarray(teacher(x)["logits"]), rtol=1e-5, atol=1e-6)
    report = keras_kd.evaluate_models({"cached": np.asarray(cache.logits)}, (x, y))
    assert report["cached"].errors == int(np.sum(np.argmax(teacher(x)["logits"], -1) != y))
