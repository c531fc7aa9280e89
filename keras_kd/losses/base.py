"""The base class of every distillation term."""

import keras

from keras_kd._internal import checks


@keras.saving.register_keras_serializable(package="keras_kd")
class DistillationTerm(keras.layers.Layer):
    """One weighted piece of the distillation loss.

    A term compares what the teacher and the student produce for the same
    batch and returns one loss value per example. The `Distiller` applies
    sample weights, Keras's `"sum_over_batch_size"` reduction and the term's
    live `weight`, so a subclass writes a single method: `compute`.

    A term declares what it needs. By default it receives both models' final
    outputs (logits). A term that needs an intermediate layer names it with
    `teacher_layer` / `student_layer`; the `Distiller` then builds
    multi-output views of the models once, and still runs the teacher once
    and the student once per step, however many terms there are.

    The weight, and the temperature when the term has its own, are
    non-trainable variables read inside the compiled step: assigning them
    changes the loss from the next step on without retracing.

    Terms compute in float32 (`dtype="float32"` by default), whatever the
    global dtype policy, so a `mixed_float16` student is compared in float32.

    Args:
        weight: Non-negative float, the term's weight in the distillation
            sum. Defaults to `1.0`.
        temperature: Optional positive float. When given, the term uses this
            temperature (its own live variable) instead of the `Distiller`'s.
            Defaults to `None` (share the `Distiller`'s temperature).
        teacher_layer: Optional name of the teacher layer whose output the
            term receives. Defaults to `None` (the teacher's final output).
        student_layer: Optional name of the student layer whose output the
            term receives. Defaults to `None` (the student's final output).
        name: String, the term's name. History logs the term's value as
            `<name>_loss`. Defaults to the class's `default_name`.
        **kwargs: Other `keras.layers.Layer` arguments (e.g. `dtype`).

    Example:

    ```python
    @keras.saving.register_keras_serializable()
    class CosineLogits(keras_kd.losses.DistillationTerm):
        default_name = "cosine"

        def compute(self, teacher_outputs, student_outputs, labels,
                    temperature):
            t = keras.ops.normalize(teacher_outputs, axis=-1)
            s = keras.ops.normalize(student_outputs, axis=-1)
            return 1.0 - keras.ops.sum(t * s, axis=-1)
    ```
    """

    default_name = "term"

    def __init__(
        self,
        weight=1.0,
        temperature=None,
        teacher_layer=None,
        student_layer=None,
        name=None,
        **kwargs,
    ):
        kwargs.setdefault("dtype", "float32")
        super().__init__(name=name or self.default_name, **kwargs)
        checks.check_weight(weight, f"{self.name}.weight")
        if temperature is not None:
            checks.check_temperature(temperature)
        self.teacher_layer = teacher_layer
        self.student_layer = student_layer
        self.weight = self._live_weight("weight", weight)
        self.temperature = None
        if temperature is not None:
            self.temperature = self._live_weight("temperature", temperature)
        self.built = True

    def _live_weight(self, name, value):
        return self.add_weight(
            name=name,
            shape=(),
            dtype="float32",
            initializer=keras.initializers.Constant(float(value)),
            trainable=False,
        )

    def build_for(self, teacher_shape, student_shape):
        """Called once by the `Distiller` with the shapes the term will get.

        A term that owns trainable layers (e.g. `FeatureHint`'s adapter)
        creates them here, so they exist before training and are saved with
        the `Distiller`. The default does nothing.

        Args:
            teacher_shape: Static shape of the teacher outputs the term reads
                (batch axis first), or `None` when unknown.
            student_shape: The same for the student.
        """

    def compute(self, teacher_outputs, student_outputs, labels, temperature):
        """Returns the term's loss for each example.

        Args:
            teacher_outputs: Tensor from the teacher: its logits, or the output
                of `teacher_layer`. Never carries a gradient.
            student_outputs: Tensor from the student: its logits, or the
                output of `student_layer`.
            labels: The batch's labels as the dataset yields them, or `None`
                when the data carries none.
            temperature: Scalar float32 tensor, the live temperature that
                applies to this term.

        Returns:
            A float tensor of shape `(batch_size,)`: one value per example
            (for sequence outputs `(batch_size, time, classes)`, one per
            position, `(batch_size, time)`; the `Distiller` then applies the
            mask and reduces over the valid positions).
        """
        raise NotImplementedError(
            f"{type(self).__name__} must implement `compute(teacher_outputs, "
            "student_outputs, labels, temperature)`."
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "weight": float(keras.ops.convert_to_numpy(self.weight)),
                "temperature": (
                    None
                    if self.temperature is None
                    else float(keras.ops.convert_to_numpy(self.temperature))
                ),
                "teacher_layer": self.teacher_layer,
                "student_layer": self.student_layer,
            }
        )
        return config

