"""Export a student to TFLite (LiteRT) and verify the file in the interpreter."""

import dataclasses
import os
import re
import tempfile
import time

import numpy as np

from keras_kd._internal.backends import tf
from keras_kd._internal import optional as _optional
from keras_kd._internal import backends
from keras_kd._internal import files

__all__ = [
    "ConversionError",
    "ExportReport",
    "check_export_path",
    "export_tflite",
    "run_tflite",
    "verify_tflite",
]

QUANTIZATIONS = (None, "dynamic", "float16", "int8")


class ConversionError(RuntimeError):
    """The model could not be converted to a file LiteRT runs; no file is left."""


@dataclasses.dataclass(frozen=True)
class ExportReport:
    """What an export wrote, and how the written file behaves in LiteRT.

    Attributes:
        path: The `.tflite` file.
        quantization: `None`, `"dynamic"`, `"float16"` or `"int8"`.
        bytes: Size of the file.
        num_examples: Examples in the verification sample.
        max_abs_diff: Largest |LiteRT output − Keras output| on the sample.
        top1_agreement: Fraction of examples whose arg-max output agrees.
        latency_ms: Mean milliseconds per example, batch 1, 1 thread.
    """

    path: str
    quantization: str | None
    bytes: int
    num_examples: int
    max_abs_diff: float
    top1_agreement: float
    latency_ms: float

    def __str__(self):
        return (
            f"TFLite {self.quantization or 'float32'} export {self.path}: "
            f"{self.bytes:,} bytes; on {self.num_examples} examples through "
            f"LiteRT: max |Δ| {self.max_abs_diff:.3g}, top-1 agreement "
            f"{self.top1_agreement:.1%}, {self.latency_ms:.3f} ms/example "
            "(batch 1, 1 thread)"
        )


def export_tflite(
    model,
    path,
    quantization=None,
    representative_data=None,
    int8_io=False,
    sample=None,
    calibration_examples=200,
    float_ops=None,
):
    """Converts `model` to a `.tflite` file, atomically, and verifies it.

    The conversion uses Keras's own LiteRT export (`model.export(...,
    format="litert")`) restricted to built-in TFLite ops, so the file runs on
    a phone without the TensorFlow ops delegate; a model that needs another op
    fails with a `ConversionError` naming it. The file appears at `path` only
    complete: it is written to a temporary file in the same folder and then
    renamed. An unwritable folder fails before any conversion work.

    Float inputs and integer inputs (e.g. int32 token ids) keep their dtype
    under every quantization; `int8_io=True` makes float inputs and the
    outputs int8 in the `"int8"` mode.

    Some activations int8 cannot hold. A transformer's attention scores are
    masked with a large negative number (-1e9 in Keras), and that number
    sets their int8 scale: every real score rounds to the same step and the
    attention becomes uniform. An RMS normalization divides by a root-mean-
    square that can round to the zero point, and LiteRT's int8 DIV kernel
    then fails. `float_ops` keeps the named built-in ops in float32 and
    quantizes the rest, with TensorFlow's selective quantization
    (`tf.lite.experimental.QuantizationDebugger`'s `denylisted_ops`).

    Args:
        model: A built `keras.Model` with one input (Sequential, Functional
            or subclassed), e.g. `distiller.student`.
        path: Path of the `.tflite` file to write.
        quantization: `None` (float32), `"dynamic"` (int8 weights),
            `"float16"` (float16 weights) or `"int8"` (full-integer,
            calibrated on `representative_data`). Defaults to `None`.
        representative_data: Inputs for int8 calibration: an array, or a
            `tf.data.Dataset` of input batches or `(x, y, ...)` batches.
            Required for `"int8"`. Defaults to `None`.
        int8_io: Bool, int8 float-inputs and outputs in the `"int8"` mode.
            Defaults to `False`.
        sample: Inputs to verify the file on (same forms as
            `representative_data`; up to 10,000 examples). Defaults to `None`:
            the first 256 examples of `representative_data`, else 64 random
            inputs.
        calibration_examples: Int, how many examples calibrate int8.
            Defaults to `200`.
        float_ops: Optional list or tuple of TFLite built-in op names (as LiteRT
            names them, e.g. `("DIV", "SOFTMAX")`) kept in float32 in the
            `"int8"` mode; every other op is int8. Each name must occur in
            the model. Defaults to `None`: every op int8.

    Returns:
        An `ExportReport`.

    Example:

    ```python
    report = keras_kd.export_tflite(
        distiller.student, "student.tflite", quantization="int8",
        representative_data=train_ds,
    )
    print(report)

    # A keras-hub causal LM: the attention scores' path and the RMS
    # normalization's division stay float32.
    keras_kd.export_tflite(
        lm_on_phone, "lm.tflite", quantization="int8",
        representative_data=token_ids,
        float_ops=("BATCH_MATMUL", "RESHAPE", "SELECT_V2", "SOFTMAX", "DIV"),
    )
    ```
    """
    backends.require_tensorflow("export_tflite")
    _optional.require_extra("litert", "`keras_kd.export_tflite`")
    if quantization not in QUANTIZATIONS:
        raise ValueError(
            f"Argument `quantization` must be one of {QUANTIZATIONS}. "
            f"Received: quantization={quantization!r}"
        )
    if quantization == "int8" and representative_data is None:
        raise ValueError(
            "Argument `representative_data` is required for "
            "quantization='int8' (full-integer quantization is calibrated on "
            "it): pass a few hundred training inputs. Received: "
            "representative_data=None"
        )
    float_ops = check_float_ops(float_ops, quantization, int8_io)
    path = check_export_path(path)
    sample_size = 10_000
    if sample is None:
        sample, sample_size = representative_data, 256
    input_spec = _input_spec(model, sample)

    converter_options = _converter_options(
        quantization, representative_data, int8_io, input_spec,
        calibration_examples,
    )
    inputs = (
        _random_inputs(input_spec, 64)
        if sample is None
        else _first_examples(sample, sample_size)
    )
    with files.atomic_write(path, suffix=".tflite") as temporary:
        try:
            if float_ops:
                with tempfile.TemporaryDirectory() as saved_model:
                    model.export(
                        saved_model, format="tf_saved_model", verbose=False,
                        input_signature=[input_spec],
                    )
                    flatbuffer = _quantize_keeping_float_ops(
                        saved_model, converter_options, float_ops
                    )
                with open(temporary, "wb") as f:
                    f.write(flatbuffer)
            else:
                model.export(
                    temporary, format="litert", verbose=False, **converter_options
                )
        except Exception as error:  # The converter raises several types.
            raise ConversionError(_conversion_message(model, path, error)) from error
        if float_ops:
            _check_float_ops_in_file(temporary, float_ops)
        try:  # Verified before the rename: a file LiteRT cannot run never replaces `path`.
            report = verify_tflite(model, temporary, inputs, quantization=quantization)
        except RuntimeError as error:
            raise ConversionError(
                f"The converted file for {os.path.basename(path)!r} "
                f"({quantization or 'float32'}) fails in the LiteRT "
                f"interpreter: {error}. Nothing was written. A kernel that "
                "fails only when quantized (e.g. an int8 divisor rounded to "
                "its zero point) runs with its op kept in float "
                "(float_ops=('DIV',)), or with quantization='dynamic' or None."
            ) from error
    return dataclasses.replace(report, path=path)


def check_export_path(path):
    """Returns `path` as an absolute string, or raises if it cannot be written.

    Args:
        path: The `.tflite` path.

    Returns:
        The absolute path.
    """
    path = os.path.abspath(os.fspath(path))
    if not path.endswith(".tflite"):
        raise ValueError(
            f"Argument `path` must end with '.tflite'. Received: path={path!r}"
        )
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise ValueError(
            f"Argument `path` must be in an existing folder; {folder!r} does "
            f"not exist. Received: path={path!r}"
        )
    if not os.access(folder, os.W_OK | os.X_OK) or (
        os.path.exists(path) and not os.access(path, os.W_OK)
    ):
        raise PermissionError(
            f"Cannot write the TFLite file {path!r}: the folder is not "
            "writable. Nothing was converted."
        )
    return path


def verify_tflite(model, path, inputs, quantization=None):
    """Runs a `.tflite` file in the LiteRT interpreter and compares to Keras.

    A model that returns a dict (e.g. several task heads, see
    `keras_kd.multi_head_model`) is compared output by output, by name; the
    report then holds the largest difference and the lowest top-1 agreement
    over its outputs.

    Args:
        model: The Keras model the file was converted from.
        path: The `.tflite` file.
        inputs: A numpy array of inputs (the first axis is the batch).
        quantization: What the file was converted with, for the report.

    Returns:
        An `ExportReport`.
    """
    # A direct call, not `predict`: under multi-worker training the chief
    # verifies alone, and `predict` would wait for the other workers.
    batches = [
        model(inputs[start : start + 256], training=False)
        for start in range(0, len(inputs), 256)
    ]
    outputs, latency_ms = run_tflite(path, inputs)
    if isinstance(batches[0], dict):
        expected = {k: np.concatenate([np.asarray(b[k]) for b in batches]) for k in batches[0]}
        _check_output_names(model, path, expected, outputs)
    else:
        expected = {None: np.concatenate([np.asarray(b) for b in batches])}
        outputs = {None: outputs}
    differences, agreements = [], []
    for name, wanted in expected.items():
        got = np.asarray(outputs[name]).reshape(wanted.shape)
        differences.append(float(np.max(np.abs(got - wanted))))
        agreements.append(float(np.mean(np.argmax(got, -1) == np.argmax(wanted, -1))))
    return ExportReport(
        path=path,
        quantization=quantization,
        bytes=os.path.getsize(path),
        num_examples=len(inputs),
        max_abs_diff=max(differences),
        top1_agreement=min(agreements),
        latency_ms=latency_ms,
    )


def _check_output_names(model, path, expected, outputs):
    if not isinstance(outputs, dict) or set(outputs) != set(expected):
        found = sorted(outputs) if isinstance(outputs, dict) else "one unnamed output"
        raise ValueError(
            f"The TFLite file {path!r} does not hold the outputs of "
            f"{model.name!r} by name: expected {sorted(expected)}, found {found}."
        )


def run_tflite(path, inputs):
    """Runs a `.tflite` file on each example in the LiteRT interpreter.

    Inputs are quantized and outputs dequantized where the file has int8
    inputs or outputs.

    Args:
        path: The `.tflite` file.
        inputs: A numpy array of inputs (the first axis is the batch).

    Returns:
        The float32 outputs for all examples (for a file with several
        outputs, a dict of them by the names of its signature), and the mean
        milliseconds per example (batch 1, 1 thread).
    """
    Interpreter = _optional.require(  # noqa: N806
        "ai_edge_litert.interpreter", "litert", "`keras_kd.run_tflite`"
    ).Interpreter
    interpreter = Interpreter(model_path=os.fspath(path), num_threads=1)
    interpreter.allocate_tensors()
    input_detail = interpreter.get_input_details()[0]
    output_details = _named_output_details(interpreter)
    outputs = {name: [] for name in output_details}
    start = time.perf_counter()
    for example in inputs:
        interpreter.set_tensor(
            input_detail["index"], _quantize(example[None], input_detail)
        )
        interpreter.invoke()
        for name, detail in output_details.items():
            outputs[name].append(
                _dequantize(interpreter.get_tensor(detail["index"]), detail)
            )
    latency_ms = 1000 * (time.perf_counter() - start) / len(inputs)
    outputs = {name: np.concatenate(values) for name, values in outputs.items()}
    return (outputs[None] if None in outputs else outputs), latency_ms


def _named_output_details(interpreter):
    """`{None: detail}` for a file with one output, else `{name: detail}` by
    the names of its (first) signature's outputs."""
    details = interpreter.get_output_details()
    if len(details) == 1:
        return {None: details[0]}
    by_index = {detail["index"]: detail for detail in details}
    signature = next(iter(interpreter.get_signature_list()))
    named = interpreter.get_signature_runner(signature).get_output_details()
    return {name: by_index[detail["index"]] for name, detail in named.items()}


def _input_spec(model, data):
    """The spec of the model's one input, from the model or else from data."""
    inputs = getattr(model, "inputs", None)
    if inputs is not None and len(inputs) != 1:
        raise ValueError(
            f"export_tflite supports models with one input; {model.name!r} has "
            f"{len(inputs)}."
        )
    if not model.built:
        raise ValueError(
            f"The model {model.name!r} is not built: call it on a batch first."
        )
    if inputs:
        return tf.TensorSpec(inputs[0].shape, inputs[0].dtype)
    if data is None:
        raise ValueError(
            f"The model {model.name!r} has no symbolic inputs (it is "
            "subclassed): pass `sample` (a batch of inputs) so the export "
            "knows the input's dtype and shape."
        )
    example = _first_examples(data, 1)
    return tf.TensorSpec((None,) + example.shape[1:], tf.as_dtype(example.dtype))


def _converter_options(quantization, data, int8_io, input_spec, examples):
    if quantization is None:
        return {"target_spec": {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]}}
    options = {"optimizations": [tf.lite.Optimize.DEFAULT]}
    if quantization == "dynamic":
        options["target_spec"] = {"supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS]}
    elif quantization == "float16":
        options["target_spec"] = {
            "supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS],
            "supported_types": [tf.float16],
        }
    else:
        calibration = _first_examples(data, examples)

        def representative_dataset():
            for example in calibration:
                yield [example[None].astype(input_spec.dtype.as_numpy_dtype)]

        options["representative_dataset"] = representative_dataset
        options["target_spec"] = {
            "supported_ops": [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        }
        if int8_io:
            if input_spec.dtype.is_floating:
                options["inference_input_type"] = tf.int8
            options["inference_output_type"] = tf.int8
    return options


def check_float_ops(float_ops, quantization, int8_io):
    """Checks `export_tflite`'s `float_ops` against its other arguments.

    Args:
        float_ops: `None` or a sequence of TFLite op names.
        quantization: The export's quantization.
        int8_io: The export's `int8_io`.

    Returns:
        The names as an upper-case tuple (empty for `None`).
    """
    if float_ops is None:
        return ()
    if not isinstance(float_ops, (list, tuple)) or not all(
        isinstance(op, str) for op in float_ops
    ):
        raise ValueError(
            "Argument `float_ops` must be a list or tuple of TFLite op names, e.g. "
            f"('SOFTMAX', 'DIV'). Received: float_ops={float_ops!r}"
        )
    if quantization != "int8":
        raise ValueError(
            "Argument `float_ops` applies to quantization='int8' only (the "
            "other modes keep every activation in float). Received: "
            f"float_ops={tuple(float_ops)!r}, quantization={quantization!r}"
        )
    if int8_io:
        raise ValueError(
            "Arguments `float_ops` and `int8_io=True` cannot be combined: the "
            "selective quantization behind `float_ops` keeps float inputs and "
            "outputs. Received: int8_io=True"
        )
    return tuple(op.upper() for op in float_ops)


def _quantize_keeping_float_ops(saved_model, options, float_ops):
    """The `.tflite` bytes of `saved_model` in int8, except the ops named in
    `float_ops` (TensorFlow's selective quantization)."""
    converter = tf.lite.TFLiteConverter.from_saved_model(saved_model)
    converter.optimizations = options["optimizations"]
    converter.representative_dataset = options["representative_dataset"]
    converter.target_spec.supported_ops = [
        tf.lite.OpsSet.TFLITE_BUILTINS_INT8,
        tf.lite.OpsSet.TFLITE_BUILTINS,  # The float kernels of `float_ops`.
    ]
    debugger = tf.lite.experimental.QuantizationDebugger(
        converter=converter,
        debug_dataset=options["representative_dataset"],
        debug_options=tf.lite.experimental.QuantizationDebugOptions(
            denylisted_ops=list(float_ops)
        ),
    )
    return debugger.get_nondebug_quantized_model()


def _check_float_ops_in_file(path, float_ops):
    """Raises if a name in `float_ops` is no op of the file (a typo would
    otherwise leave every op int8 without a word)."""
    Interpreter = _optional.require(  # noqa: N806
        "ai_edge_litert.interpreter", "litert", "`keras_kd.export_tflite`"
    ).Interpreter
    ops = {op["op_name"] for op in Interpreter(model_path=path)._get_ops_details()}
    missing = [op for op in float_ops if op not in ops]
    if missing:
        raise ValueError(
            f"Argument `float_ops` names {missing}, which the converted model "
            f"does not contain; its ops are {sorted(ops)}. Received: "
            f"float_ops={float_ops!r}"
        )


def _first_examples(data, limit):
    """The first `limit` input examples of an array or a dataset of batches."""
    if isinstance(data, tf.data.Dataset):
        batches, count = [], 0
        for batch in data:
            if isinstance(batch, (tuple, list)):
                batch = batch[0]
            batch = np.asarray(batch)
            batches.append(batch)
            count += len(batch)
            if count >= limit:
                break
        data = np.concatenate(batches)
    return np.asarray(data)[:limit]


def _random_inputs(spec, count):
    shape = [count] + [d or 1 for d in spec.shape[1:]]
    if spec.dtype.is_floating:
        return np.random.default_rng(0).normal(size=shape).astype(
            spec.dtype.as_numpy_dtype
        )
    return np.zeros(shape, spec.dtype.as_numpy_dtype)


def _quantize(values, detail):
    scale, zero_point = detail["quantization"]
    if detail["dtype"] == np.int8 and scale:
        values = np.round(values / scale + zero_point)
        return np.clip(values, -128, 127).astype(np.int8)
    return values.astype(detail["dtype"])


def _dequantize(values, detail):
    scale, zero_point = detail["quantization"]
    if detail["dtype"] == np.int8 and scale:
        return (values.astype(np.float32) - zero_point) * scale
    return values.astype(np.float32)


def _conversion_message(model, path, error):
    message = str(error)
    ops = sorted(set(re.findall(r"'tf\.(\w+)' op", message)))
    named = f" on op(s) {ops}" if ops else ""
    first_lines = " ".join(message.strip().splitlines()[:3])
    return (
        f"TFLite conversion of {model.name!r} failed{named}; nothing was "
        f"written at {path!r}. Only built-in TFLite ops are allowed, so the "
        f"file runs without the TensorFlow ops delegate. Converter said: "
        f"{first_lines}"
    )
