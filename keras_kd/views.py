"""Multi-output views: one forward pass that yields every output a term needs."""

import keras

FINAL_OUTPUT = None  # The key of a model's own output in a view's result.


class OutputView:
    """Calls a model once and returns its output and named layers' outputs.

    Built once, when the `Distiller` is created. Without layer names it calls
    the model itself; with them it calls a functional model that shares the
    model's layers and returns the extra outputs too, so the model still runs
    once per step however many terms read from it.

    Args:
        model: The teacher or the student.
        layer_names: Names of the layers whose outputs are needed (`None`
            entries stand for the model's own output and are skipped).
        role: `"teacher"` or `"student"`, for error messages.
    """

    def __init__(self, model, layer_names, role):
        self.model = model
        self.layer_names = tuple(
            sorted({name for name in layer_names if name is not None})
        )
        self._multi_output = None
        if self.layer_names:
            self._multi_output = _multi_output_model(
                model, self.layer_names, role
            )

    def __call__(self, inputs, training):
        """Returns `{FINAL_OUTPUT: output, layer_name: layer_output, ...}`."""
        if self._multi_output is None:
            return {FINAL_OUTPUT: self.model(inputs, training=training)}
        outputs = self._multi_output(inputs, training=training)
        return dict(zip((FINAL_OUTPUT,) + self.layer_names, outputs))


    def shape(self, layer_name):
        """The static output shape of `layer_name` (`None`: the model's own).

        Returns `None` when it is unknown (a subclassed model).
        """
        if layer_name is None:
            outputs = getattr(self.model, "outputs", None)
            return tuple(outputs[0].shape) if outputs else None
        return tuple(self.model.get_layer(layer_name).output.shape)


def _multi_output_model(model, layer_names, role):
    inputs = getattr(model, "inputs", None)
    outputs = getattr(model, "outputs", None)
    if not inputs or not outputs:
        raise ValueError(
            f"The {role} must be a Functional or Sequential model (built with "
            "`keras.Input`) for a term to read its layer outputs. "
            f"Received: a {type(model).__name__} without symbolic inputs."
        )
    available = [layer.name for layer in model.layers]
    missing = [name for name in layer_names if name not in available]
    if missing:
        raise ValueError(
            f"The {role} has no layer named {missing}. "
            f"Available layer names: {available}"
        )
    extra = [model.get_layer(name).output for name in layer_names]
    return keras.Model(inputs, [outputs[0]] + extra, name=f"{model.name}_view")
