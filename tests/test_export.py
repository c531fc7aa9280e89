"""TFLite export, checked through the real LiteRT interpreter."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf
from ai_edge_litert.interpreter import Interpreter
from sklearn.datasets import load_digits

import keras_kd

QUANTIZATIONS = [None, "dynamic", "float16", "int8"]


@pytest.fixture(scope="session")
def digits():
    data = load_digits()
    x = (data.data / 16.0).astype("float32")
    return x[:1400], data.target[:1400], x[1400:], data.target[1400:]


@pytest.fixture(scope="session")
def trained_student(digits):
    """A 167k-parameter MLP trained on real digits (a few seconds)."""
    x, y, _, _ = digits
    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [
            keras.Input((64,)),
            keras.layers.Dense(512, activation="relu"),
            keras.layers.Dense(256, activation="relu"),
            keras.layers.Dense(10),
        ],
        name="digits_student",
    )
    model.compile("adam", keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    model.fit(x, y, epochs=8, batch_size=64, verbose=0)
    return model


def _run_litert(path, inputs):
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    detail = interpreter.get_input_details()[0]
    output = interpreter.get_output_details()[0]
    results = []
    for example in inputs:
        interpreter.set_tensor(detail["index"], example[None].astype(detail["dtype"]))
        interpreter.invoke()
        results.append(interpreter.get_tensor(output["index"]))
    return detail, np.concatenate(results)


def test_float32_export_matches_keras_exactly(trained_student, digits, tmp_path):
    _, _, x_test, _ = digits
    path = tmp_path / "student.tflite"
    report = keras_kd.export_tflite(trained_student, path, sample=x_test)
    assert report.num_examples == len(x_test)
    assert report.top1_agreement == 1.0 and report.max_abs_diff < 1e-4
    assert report.bytes == os.path.getsize(path) and report.latency_ms > 0
    # Independently of the report: run the file ourselves.
    _, outputs = _run_litert(path, x_test)
    np.testing.assert_allclose(outputs, trained_student.predict(x_test, verbose=0), atol=1e-4)


def test_quantized_exports_shrink_and_agree(trained_student, digits, tmp_path):
    x_train, _, x_test, y_test = digits
    assert trained_student.count_params() >= 100_000
    reports = {}
    for quantization in QUANTIZATIONS:
        reports[quantization] = keras_kd.export_tflite(
            trained_student,
            tmp_path / f"student_{quantization}.tflite",
            quantization=quantization,
            representative_data=tf.data.Dataset.from_tensor_slices(x_train).batch(32),
            sample=x_test,
        )
    float_bytes = reports[None].bytes
    assert reports["int8"].bytes <= 0.3 * float_bytes
    assert reports["dynamic"].bytes <= 0.3 * float_bytes
    assert reports["float16"].bytes <= 0.55 * float_bytes
    assert reports["int8"].top1_agreement >= 0.95
    assert reports["dynamic"].top1_agreement >= 0.95
    assert reports["float16"].top1_agreement >= 0.99
    # The int8 file still classifies real digits (checked through LiteRT).
    _, outputs = _run_litert(tmp_path / "student_int8.tflite", x_test)
    assert np.mean(np.argmax(outputs, -1) == y_test) >= 0.85


def test_int8_io_makes_inputs_and_outputs_int8(trained_student, digits, tmp_path):
    x_train, _, x_test, _ = digits
    path = tmp_path / "io.tflite"
    report = keras_kd.export_tflite(
        trained_student, path, quantization="int8", representative_data=x_train, int8_io=True, sample=x_test
    )
    interpreter = Interpreter(model_path=str(path))
    assert interpreter.get_input_details()[0]["dtype"] == np.int8
    assert interpreter.get_output_details()[0]["dtype"] == np.int8
    assert report.top1_agreement >= 0.95


def _token_student():
    keras.utils.set_random_seed(1)
    tokens = keras.Input((10,), dtype="int32")
    h = keras.layers.Embedding(100, 16)(tokens)
    h = keras.layers.GlobalAveragePooling1D()(h)
    return keras.Model(tokens, keras.layers.Dense(3)(h), name="token_student")


@pytest.mark.parametrize("quantization", QUANTIZATIONS)
def test_integer_inputs_stay_integer(quantization, tmp_path):
    model = _token_student()
    ids = np.random.default_rng(0).integers(0, 100, size=(64, 10)).astype("int32")
    path = tmp_path / "tokens.tflite"
    report = keras_kd.export_tflite(
        model, path, quantization=quantization, representative_data=ids, sample=ids
    )
    detail, outputs = _run_litert(path, ids)
    assert detail["dtype"] == np.int32
    assert report.top1_agreement >= 0.9
    if quantization in (None, "float16"):
        np.testing.assert_allclose(outputs, model.predict(ids, verbose=0), atol=1e-2)


class SubclassedStudent(keras.Model):
    def __init__(self):
        super().__init__(name="subclassed_student")
        self.hidden = keras.layers.Dense(16, activation="relu")
        self.out = keras.layers.Dense(10)

    def call(self, x):
        return self.out(self.hidden(x))


def test_functional_and_subclassed_students(digits, tmp_path):
    _, _, x_test, _ = digits
    keras.utils.set_random_seed(2)
    inputs = keras.Input((64,))
    functional = keras.Model(inputs, keras.layers.Dense(10)(keras.layers.Dense(16, activation="relu")(inputs)))
    subclassed = SubclassedStudent()
    subclassed(x_test[:1])
    for model in (functional, subclassed):
        report = keras_kd.export_tflite(model, tmp_path / f"{model.name}.tflite", sample=x_test)
        assert report.top1_agreement == 1.0 and report.max_abs_diff < 1e-4


class _AsString(keras.layers.Layer):
    """Uses an op that TFLite's built-in ops lack (AsString)."""

    def call(self, x):
        length = tf.strings.length(tf.strings.as_string(x))
        return x + 0.0 * tf.cast(length, x.dtype)


def test_failed_conversion_leaves_the_previous_file_and_no_temp_file(digits, trained_student, tmp_path):
    _, _, x_test, _ = digits
    path = tmp_path / "student.tflite"
    keras_kd.export_tflite(trained_student, path, sample=x_test[:8])
    previous = path.read_bytes()
    broken = keras.Sequential([keras.Input((64,)), _AsString(), keras.layers.Dense(10)], name="broken")
    with pytest.raises(keras_kd.ConversionError, match=r"TFLite conversion of 'broken' failed on op\(s\) \['AsString', 'StringLength'\]; nothing was written"):
        keras_kd.export_tflite(broken, path, sample=x_test[:8])
    assert path.read_bytes() == previous
    assert sorted(os.listdir(tmp_path)) == ["student.tflite"]
    with pytest.raises(keras_kd.ConversionError):
        keras_kd.export_tflite(broken, tmp_path / "new.tflite", sample=x_test[:8])
    assert sorted(os.listdir(tmp_path)) == ["student.tflite"]


def test_bad_paths_fail_before_any_conversion(trained_student, tmp_path, monkeypatch):
    def no_conversion(*args, **kwargs):
        raise AssertionError("conversion started")

    monkeypatch.setattr(trained_student, "export", no_conversion)
    with pytest.raises(ValueError, match=r"Argument `path` must be in an existing folder; .*missing' does not exist"):
        keras_kd.export_tflite(trained_student, tmp_path / "missing" / "s.tflite")
    (tmp_path / "a_file").write_text("")
    with pytest.raises(ValueError, match=r"must be in an existing folder"):
        keras_kd.export_tflite(trained_student, tmp_path / "a_file" / "s.tflite")
    with pytest.raises(ValueError, match=r"Argument `path` must end with '.tflite'"):
        keras_kd.export_tflite(trained_student, tmp_path / "s.bin")


def test_bad_export_arguments(trained_student, tmp_path):
    with pytest.raises(ValueError, match=r"Argument `quantization` must be one of \(None, 'dynamic', 'float16', 'int8'\). Received: quantization='int4'"):
        keras_kd.export_tflite(trained_student, tmp_path / "s.tflite", quantization="int4")
    with pytest.raises(ValueError, match=r"Argument `representative_data` is required for quantization='int8'"):
        keras_kd.export_tflite(trained_student, tmp_path / "s.tflite", quantization="int8")
    with pytest.raises(ValueError, match=r"Argument `representative_data` is required"):
        keras_kd.callbacks.TFLiteExport(tmp_path / "s.tflite", quantization="int8")
    with pytest.raises(ValueError, match=r"Argument `float_ops` applies to quantization='int8' only"):
        keras_kd.callbacks.TFLiteExport(tmp_path / "s.tflite", float_ops=("DIV",))
    assert os.listdir(tmp_path) == []


def test_tflite_export_callback_exports_at_each_improvement(tmp_path, monkeypatch):
    from keras_kd.deployment import export as export_module
    from tests.conftest import make_data, make_mlp

    calls = []
    real = export_module.export_tflite

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(export_module, "export_tflite", counting)
    x, y = make_data(n=64)
    distiller = keras_kd.Distiller(make_mlp(16, seed=1), make_mlp(8, seed=2), alpha=0.5)
    distiller.compile(optimizer=keras.optimizers.Adam(0.01), loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    path = tmp_path / "best.tflite"
    callback = keras_kd.callbacks.TFLiteExport(path, monitor="loss", sample=x, verbose=0)
    history = distiller.fit(x, y, epochs=4, callbacks=[callback], verbose=0).history
    improvements = sum(1 for i, v in enumerate(history["loss"]) if v < min(history["loss"][:i], default=np.inf))
    assert len(calls) == improvements >= 2
    assert callback.report.top1_agreement == 1.0 and path.is_file()
    assert sorted(os.listdir(tmp_path)) == ["best.tflite"]
    missing = keras_kd.callbacks.TFLiteExport(tmp_path / "x.tflite", monitor="val_auc", verbose=0)
    with pytest.raises(ValueError, match=r"TFLiteExport monitors 'val_auc', which is not logged. Logged values: \['kl_loss', 'loss', 'skipped_steps', 'student_loss'\]"):
        distiller.fit(x, y, epochs=1, callbacks=[missing], verbose=0)
    unwritable = keras_kd.callbacks.TFLiteExport(tmp_path / "no" / "x.tflite", verbose=0)
    weights = [w.numpy().copy() for w in distiller.student.weights]
    with pytest.raises(ValueError, match=r"must be in an existing folder"):
        distiller.fit(x, y, epochs=1, callbacks=[unwritable], verbose=0)
    for before, w in zip(weights, distiller.student.weights):  # Failed before any training.
        np.testing.assert_array_equal(before, w.numpy())


def test_published_files_get_normal_permissions_not_mkstemps_0600(student, tmp_path):
    import stat

    umask = os.umask(0)
    os.umask(umask)
    path = tmp_path / "student.tflite"
    keras_kd.export_tflite(student, path)
    cache = keras_kd.TeacherCache.compute(
        student, np.zeros((4, student.inputs[0].shape[-1]), "float32"), path=tmp_path / "c.npy", verbose=0)
    for written in (path, tmp_path / "c.npy", tmp_path / "c.npy.json"):
        assert stat.S_IMODE(os.stat(written).st_mode) == 0o666 & ~umask, written
    assert len(cache) == 4


def test_a_file_litert_cannot_run_never_replaces_the_previous_one(tmp_path, monkeypatch):
    from keras_kd.deployment import export as export_module

    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3)])
    path = tmp_path / "model.tflite"
    sample = np.random.default_rng(0).normal(size=(8, 4)).astype("float32")
    first = keras_kd.export_tflite(model, path, sample=sample)
    assert first.path == str(path) and first.top1_agreement == 1.0
    previous = path.read_bytes()

    def failing_interpreter(path, inputs):  # What LiteRT raises when a kernel fails.
        raise RuntimeError("tflite/kernels/div.cc:262 data[i] != zero_point was not true.")

    monkeypatch.setattr(export_module, "run_tflite", failing_interpreter)
    with pytest.raises(keras_kd.ConversionError, match=r"'model.tflite' \(dynamic\) fails in the LiteRT interpreter: tflite/kernels/div.cc:262 .* Nothing was written"):
        keras_kd.export_tflite(model, path, quantization="dynamic", sample=sample)
    assert os.listdir(tmp_path) == ["model.tflite"] and path.read_bytes() == previous


class _RmsNormalize(keras.layers.Layer):
    """x / rms(x), as in a transformer's RMS normalization (a DIV in TFLite)."""

    def call(self, x):
        mean_square = keras.ops.mean(keras.ops.square(x), axis=-1, keepdims=True)
        return x * keras.ops.reciprocal(keras.ops.sqrt(mean_square + 1e-6))


def _rms_model_and_inputs():
    keras.utils.set_random_seed(3)
    model = keras.Sequential(
        [keras.Input((8,)), keras.layers.Dense(8), _RmsNormalize(), keras.layers.Dense(4)],
        name="rms_student",
    )
    rng = np.random.default_rng(0)  # Rows whose sizes span five decades.
    x = rng.normal(size=(256, 8)) * 10.0 ** rng.uniform(-3, 2, size=(256, 1))
    return model, x.astype("float32")


def _op_input_dtypes(path, op_name):
    interpreter = Interpreter(model_path=str(path))
    interpreter.allocate_tensors()
    dtypes = {t["index"]: t["dtype"] for t in interpreter.get_tensor_details()}
    return [
        [dtypes[i] for i in op["inputs"] if i >= 0]
        for op in interpreter._get_ops_details()
        if op["op_name"] == op_name
    ]


def test_float_ops_keep_an_int8_divisor_off_its_zero_point(tmp_path):
    model, x = _rms_model_and_inputs()
    path = tmp_path / "rms.tflite"
    # Full-integer: small rows' root-mean-square rounds to the zero point, and
    # LiteRT's int8 DIV kernel refuses to divide by it.
    with pytest.raises(keras_kd.ConversionError, match=r"fails in the LiteRT interpreter: .*div.*float_ops=\('DIV',\)"):
        keras_kd.export_tflite(model, path, quantization="int8", representative_data=x, sample=x)
    assert os.listdir(tmp_path) == []
    report = keras_kd.export_tflite(
        model, path, quantization="int8", representative_data=x, sample=x, float_ops=["div", "mul"]
    )  # MUL too: the reciprocal spans five decades, which int8 cannot hold.
    assert report.path == str(path)
    # Rows whose size int8 inputs hold (scale 10 to 100) keep their class; the
    # tiny rows only calibrated the divisor down to the zero point.
    held = x[np.sqrt(np.mean(x**2, axis=1)) > 10.0]
    _, outputs = _run_litert(path, held)
    expected = model.predict(held, verbose=0)
    assert len(held) > 40 and np.mean(outputs.argmax(-1) == expected.argmax(-1)) >= 0.9
    # In the file LiteRT runs: the division is float32, the dense layers int8.
    for op_name in ("DIV", "MUL"):
        assert _op_input_dtypes(path, op_name) and all(
            dtype == np.float32 for inputs in _op_input_dtypes(path, op_name) for dtype in inputs
        )
    fully_connected = _op_input_dtypes(path, "FULLY_CONNECTED")
    assert len(fully_connected) == 2 and all(inputs[0] == np.int8 and inputs[1] == np.int8 for inputs in fully_connected)
    assert os.listdir(tmp_path) == ["rms.tflite"]


def test_float_ops_errors(tmp_path):
    model, x = _rms_model_and_inputs()
    path = tmp_path / "rms.tflite"
    with pytest.raises(ValueError, match=r"Argument `float_ops` applies to quantization='int8' only .* Received: float_ops=\('DIV',\), quantization='dynamic'"):
        keras_kd.export_tflite(model, path, quantization="dynamic", float_ops=("DIV",))
    with pytest.raises(ValueError, match=r"Argument `float_ops` must be a list or tuple of TFLite op names"):
        keras_kd.export_tflite(model, path, quantization="int8", representative_data=x, float_ops="DIV")
    with pytest.raises(ValueError, match=r"`float_ops` and `int8_io=True` cannot be combined"):
        keras_kd.export_tflite(model, path, quantization="int8", representative_data=x, float_ops=("DIV",), int8_io=True)
    with pytest.raises(ValueError, match=r"Argument `float_ops` names \['SOFTMAX'\], which the converted model does not contain; its ops are \[.*'DIV'.*\]"):
        keras_kd.export_tflite(model, path, quantization="int8", representative_data=x, float_ops=("DIV", "SOFTMAX"))
    assert os.listdir(tmp_path) == []
