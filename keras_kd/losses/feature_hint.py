"""FitNets hints: regress a teacher layer's output from a student layer's."""

import keras
from keras import ops

from keras_kd.losses.base import DistillationTerm

ADAPTERS = ("auto", "always", "none")


@keras.saving.register_keras_serializable(package="keras_kd")
class FeatureHint(DistillationTerm):
    """Mean squared difference between a teacher layer and an adapted student layer.

    The hint of FitNets (Romero et al., 2015): the output of a student layer
    (the "guided" layer), passed through a small trainable adapter (the
    "regressor"), should match the output of a teacher layer (the "hint").
    The adapter is created from the two layers' shapes when the `Distiller`
    is built:

    - vectors `(batch, d)`: a `Dense(d_teacher)`;
    - feature maps `(batch, h, w, c)` of the same size: a 1×1 `Conv2D`;
    - a student map twice the teacher's size: a 3×3 `Conv2D` with stride 2;
    - a student map half the teacher's size: a 2×2 `Conv2DTranspose` with
      stride 2.

    The adapter belongs to this term: it trains with the student, is saved
    with the `Distiller`, and is **not** part of `distiller.student` — the
    model you export is exactly the student you built.

    Args:
        teacher_layer: Name of the teacher layer (the hint).
        student_layer: Name of the student layer (the guided layer).
        adapter: `"auto"` (an adapter only when the shapes differ),
            `"always"`, or `"none"` (the shapes must then be equal).
            Defaults to `"auto"`.
        weight: Non-negative float, the term's live weight. Defaults to `1.0`.
        name: String, logged as `<name>_loss`. Defaults to `"hint"`.
        **kwargs: Other `DistillationTerm` arguments.

    Example:

    ```python
    terms = [
        keras_kd.losses.KLDivergence(),
        keras_kd.losses.FeatureHint("teacher_block2", "student_conv2", weight=0.5),
    ]
    distiller = keras_kd.Distiller(teacher, student, terms=terms)
    ```
    """

    default_name = "hint"

    def __init__(self, teacher_layer, student_layer, adapter="auto", weight=1.0, **kwargs):
        super().__init__(
            weight=weight,
            teacher_layer=teacher_layer,
            student_layer=student_layer,
            **kwargs,
        )
        if adapter not in ADAPTERS:
            raise ValueError(
                f"Argument `adapter` must be one of {ADAPTERS}. "
                f"Received: adapter={adapter!r}"
            )
        self.adapter_mode = adapter
        self.adapter = None

    def build_for(self, teacher_shape, student_shape):
        if teacher_shape is None or student_shape is None:
            raise ValueError(
                "FeatureHint needs the static output shapes of "
                f"{self.teacher_layer!r} and {self.student_layer!r} to build "
                "its adapter: use Functional or Sequential models, or build "
                "a subclassed model that returns a dict (call it on a batch) "
                "before creating the Distiller."
            )
        teacher_shape, student_shape = tuple(teacher_shape), tuple(student_shape)
        if self.adapter_mode == "none" or (
            self.adapter_mode == "auto" and teacher_shape[1:] == student_shape[1:]
        ):
            if teacher_shape[1:] != student_shape[1:]:
                raise ValueError(
                    f"FeatureHint {self.name!r} has adapter='none', but the "
                    f"shapes differ: teacher {teacher_shape}, student "
                    f"{student_shape}. Use adapter='auto'."
                )
            return
        self.adapter = make_adapter(teacher_shape, student_shape, name=f"{self.name}_adapter")
        self.adapter.build(student_shape)

    def compute(self, teacher_outputs, student_outputs, labels, temperature):
        student = ops.cast(student_outputs, "float32")
        if self.adapter is not None:
            student = self.adapter(student)
        difference = ops.cast(teacher_outputs, "float32") - student
        flat = ops.reshape(ops.square(difference), (ops.shape(difference)[0], -1))
        return ops.mean(flat, axis=-1)

    def get_config(self):
        config = super().get_config()
        config["adapter"] = self.adapter_mode
        return config


def make_adapter(teacher_shape, student_shape, name):
    """The layer that maps the student's feature shape to the teacher's.

    Args:
        teacher_shape: Shape of the teacher features, batch axis first.
        student_shape: Shape of the student features, batch axis first.
        name: The layer's name.

    Returns:
        An unbuilt float32 Keras layer.
    """
    if len(teacher_shape) == 2 and len(student_shape) == 2:
        return keras.layers.Dense(teacher_shape[-1], name=name, dtype="float32")
    if len(teacher_shape) == 4 and len(student_shape) == 4:
        channels = teacher_shape[-1]
        teacher_size, student_size = teacher_shape[1:3], student_shape[1:3]
        if teacher_size == student_size:
            return keras.layers.Conv2D(channels, 1, name=name, dtype="float32")
        if all(s == 2 * t for s, t in zip(student_size, teacher_size)):
            return keras.layers.Conv2D(
                channels, 3, strides=2, padding="same", name=name, dtype="float32"
            )
        if all(2 * s == t for s, t in zip(student_size, teacher_size)):
            return keras.layers.Conv2DTranspose(
                channels, 2, strides=2, padding="same", name=name, dtype="float32"
            )
    raise ValueError(
        "FeatureHint cannot adapt these shapes (vectors to vectors, or maps of "
        "the same size, twice or half the teacher's): teacher "
        f"{tuple(teacher_shape)}, student {tuple(student_shape)}."
    )
