"""Multi-output views: one forward pass that yields every output a term needs."""

import keras

from keras_kd._internal import keras_internals as internals

from keras_kd._internal.model_outputs import FINAL_OUTPUT  # noqa: F401 - the step's key.
from keras_kd._internal.model_outputs import LOGITS_ENTRY
from keras_kd._internal.model_outputs import logits_of
from keras_kd._internal.model_outputs import logits_spec  # noqa: F401 - used beside the views.
from keras_kd._internal.model_outputs import output_spec


class OutputView:
    """Calls a model once and returns its logits and the named outputs terms read.

    Built once, when the `Distiller` is created. A name is looked up in two
    places:

    - the entries of a dict the model returns (any model, subclassed ones
      included): `call` returns e.g. `{"logits": ..., "features": ...}`, and a
      term with `student_layer="features"` reads that entry. Such a model's
      logits are its `"logits"` entry.
    - the layers of a Functional or Sequential model: the view is then a
      functional model that shares the model's layers and also returns those
      layers' outputs (their output in *this* model's graph, also for a layer
      shared with another model).

    Either way the model still runs once per step however many terms read
    from it.

    Args:
        model: The teacher or the student.
        layer_names: Names of the layers or dict entries needed (`None`
            entries stand for the model's logits and are skipped).
        role: `"teacher"` or `"student"`, for error messages.
        float32_logits: Whether the logits come back as a float32 copy that
            keeps their Keras mask. Defaults to `False`.
    """

    def __init__(self, model, layer_names, role, float32_logits=False):
        self.model = model
        self.role = role
        self.float32_logits = float32_logits
        self.layer_names = tuple(
            sorted({name for name in layer_names if name is not None})
        )
        self._output_spec = output_spec(model)
        if isinstance(self._output_spec, (list, tuple)):
            raise ValueError(
                f"The {role} {model.name!r} returns a list of "
                f"{len(self._output_spec)} outputs; distillation needs one "
                "logits output. Return a dict instead: {'logits': logits, "
                "'features': ...} (terms can read its other entries)."
            )
        self._multi_output = None
        self._extra_specs = {}
        if isinstance(self._output_spec, dict):
            _check_dict_output(self._output_spec, (), role, model)
            dict_keys = set(self._output_spec)
        else:
            dict_keys = set()
        if getattr(model, "inputs", None):
            self._layer_names = tuple(n for n in self.layer_names if n not in dict_keys)
        else:  # Subclassed: every name must be an entry of the dict it returns.
            self._layer_names = ()
            if self._output_spec is not None and self.layer_names:
                _check_dict_output(self._output_spec, self.layer_names, role, model)
        if self._layer_names:
            self._multi_output, extra = _multi_output_model(
                model, self._output_spec, self._layer_names, role
            )
            self._extra_specs = dict(zip(self._layer_names, extra))

    def __call__(self, inputs, training):
        """Returns `{FINAL_OUTPUT: logits, name: output, ...}`."""
        if self._multi_output is None:
            outputs, extra = self.model(inputs, training=training), []
        else:
            outputs, *extra = self._multi_output(inputs, training=training)
        if isinstance(outputs, (list, tuple)) and len(outputs) == 1:
            outputs = outputs[0]
        result = dict(zip(self._layer_names, extra))
        if isinstance(outputs, dict) or len(result) < len(self.layer_names):
            wanted = [n for n in self.layer_names if n not in result]
            _check_dict_output(outputs, wanted, self.role, self.model)
            result.update({name: outputs[name] for name in wanted})
            outputs = outputs[LOGITS_ENTRY]
        result[FINAL_OUTPUT] = float32_copy(outputs) if self.float32_logits else outputs
        return result

    def shape(self, layer_name):
        """The static output shape of `layer_name` (`None`: the logits).

        Returns `None` when it is unknown (an unbuilt subclassed model).
        """
        spec = self._output_spec
        if layer_name is None:
            return None if spec is None else tuple(logits_of(spec).shape)
        if isinstance(spec, dict) and layer_name in spec:
            return tuple(spec[layer_name].shape)
        if layer_name in self._extra_specs:
            return tuple(self._extra_specs[layer_name].shape)
        return None


def _check_dict_output(outputs, names, role, model):
    """Checks a returned dict has the logits and the entries terms read."""
    if not isinstance(outputs, dict):
        raise ValueError(
            f"The {role} {model.name!r} returns a tensor, so terms cannot read "
            f"its outputs {list(names)}. A subclassed model can return a dict "
            f"instead, e.g. {{'logits': logits, {names[0]!r}: features}}; a "
            "Functional or Sequential model can also be read by layer name."
        )
    keys = sorted(outputs)
    if LOGITS_ENTRY not in outputs:
        raise ValueError(
            f"The {role} returns a dict without a {LOGITS_ENTRY!r} entry: its "
            f"keys are {keys}. A model that returns a dict must put its logits "
            f"under {LOGITS_ENTRY!r}; the other entries can be read by terms."
        )
    missing = [name for name in names if name not in outputs]
    if missing:
        raise ValueError(
            f"The {role} has no output named {missing}: it returns a dict with "
            f"the keys {keys}."
        )


def _multi_output_model(model, spec, layer_names, role):
    """A functional model returning `[spec] + layer outputs`, and those.

    Only for models with symbolic inputs (Functional and Sequential); `spec`
    is the model's output structure.
    """
    layers = [layer.name for layer in model.layers]
    available = list(layers)
    if isinstance(spec, dict):
        available += [f"{key} (dict entry)" for key in sorted(spec)]
    missing = [name for name in layer_names if name not in layers]
    if missing:
        raise ValueError(
            f"The {role} has no layer or output named {missing}. "
            f"Available names: {available}"
        )
    extra = [_output_in_graph(model, model.get_layer(name), role) for name in layer_names]
    view = keras.Model(model.inputs, [spec] + extra, name=f"{model.name}_view")
    return view, extra


def _output_in_graph(model, layer, role):
    """The output of `layer` in `model`'s graph.

    A layer shared by several models (or called twice) has one node per call;
    `layer.output` is its first call's output, which may belong to another
    model. The node that is part of `model`'s graph is the one to read.
    """
    keys = internals.graph_node_keys(internals.functional_graph(model))
    inbound = [
        node
        for index, node in enumerate(internals.inbound_nodes(layer))
        if keys is None or internals.node_key(layer, index) in keys
    ]
    if len(inbound) != 1:
        raise ValueError(
            f"The {role}'s layer {layer.name!r} is called {len(inbound)} times "
            f"in the {role}, so its output is ambiguous. Give the call you "
            "want its own layer, or return that output in a dict."
        )
    outputs = inbound[0].output_tensors
    return outputs[0] if len(outputs) == 1 else outputs


def float32_copy(logits):
    """A float32 copy of `logits` that keeps their Keras mask: under
    mixed_float16 the gradients of every part of the loss are then summed in
    float32 and rounded to float16 once."""
    mask = internals.get_keras_mask(logits)
    logits = keras.ops.cast(logits, "float32")
    if mask is not None:
        internals.set_keras_mask(logits, mask)
    return logits


def batch_size(outputs):
    """The batch size of a step's student outputs (`{FINAL_OUTPUT: logits,
    ...}`, or the hidden states of a chunked loss)."""
    first = next(value for value in outputs.values() if value is not None)
    return keras.ops.shape(first)[0]
