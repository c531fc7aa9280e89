"""What a model returns: its logits, alone or as the `"logits"` entry of a dict."""

import keras

from keras_kd._internal import keras_internals as internals

FINAL_OUTPUT = None  # The key of a model's own output (its logits) in a view's result.
LOGITS_ENTRY = "logits"  # The entry holding the logits of a model that returns a dict.


def logits_of(outputs):
    """A model's logits from what it returns: the `"logits"` entry of a dict."""
    return outputs[LOGITS_ENTRY] if isinstance(outputs, dict) else outputs


def logits_spec(model):
    """The symbolic logits of `model` (its `"logits"` entry for dict outputs).

    `None` when unknown: an unbuilt subclassed model, or a list of outputs.
    """
    spec = output_spec(model)
    if isinstance(spec, dict):
        return spec.get(LOGITS_ENTRY)
    return None if isinstance(spec, (list, tuple)) else spec


def output_spec(model):
    """The model's symbolic output structure, or `None` when it is unknown.

    Functional and Sequential models have it; a subclassed model has it once
    built (called on data, or `model.build(shape)`).
    """
    struct = internals.outputs_struct(model)  # Functional.
    if isinstance(struct, (list, tuple)) and len(struct) == 1:
        return struct[0]  # keras.Model(inputs, [logits]) returns the tensor.
    if struct is not None:
        return struct
    outputs = getattr(model, "outputs", None)  # Sequential.
    if outputs:
        return outputs[0] if len(outputs) == 1 else None
    shapes = internals.build_shapes(model)
    if not model.built or not shapes or len(shapes) != 1:
        return None
    (shape,) = shapes.values()
    try:
        spec = keras.KerasTensor((None,) + tuple(shape)[1:])
        return model.compute_output_spec(spec)
    except Exception:  # noqa: BLE001 - shapes are only known when traceable.
        return None
