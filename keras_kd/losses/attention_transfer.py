"""Attention transfer (Zagoruyko & Komodakis, 2017)."""

import keras
from keras import ops

from keras_kd.losses.base import DistillationTerm


@keras.saving.register_keras_serializable(package="keras_kd")
class AttentionTransfer(DistillationTerm):
    """Matches the spatial attention maps of a teacher and a student layer.

    The attention map of a feature map `A` of shape `(batch, height, width,
    channels)` (channels last, as Keras) is the channel mean of `A²`,
    flattened and L2-normalized per example. The term is the mean squared
    difference of the two maps, per example — so its batch mean equals the
    reference code's `(at(s) - at(t)).pow(2).mean()`. When the maps differ in
    size, the larger one is average-pooled to the smaller (sizes must divide).
    The channel counts may differ: the maps have none.

    The reference trains with `CE + β/2 · Σ_pairs at_loss` and `β = 1000`:
    one `AttentionTransfer` term per layer pair, each with `weight=500`, and
    `alpha` set so that the student loss keeps its weight, reproduce it.

    Args:
        teacher_layer: Name of the teacher layer (a 4-D feature map).
        student_layer: Name of the student layer (a 4-D feature map).
        weight: Non-negative float, the term's live weight. Defaults to `1.0`.
        name: String, logged as `<name>_loss`. Defaults to `"at"`.
        **kwargs: Other `DistillationTerm` arguments.

    Example:

    ```python
    terms = [
        keras_kd.losses.KLDivergence(),
        keras_kd.losses.AttentionTransfer("block2", "conv2", weight=500.0),
    ]
    distiller = keras_kd.Distiller(teacher, student, terms=terms)
    ```
    """

    default_name = "at"

    def __init__(self, teacher_layer, student_layer, weight=1.0, **kwargs):
        super().__init__(
            weight=weight,
            teacher_layer=teacher_layer,
            student_layer=student_layer,
            **kwargs,
        )

    def build_for(self, teacher_shape, student_shape):
        for role, shape in (("teacher", teacher_shape), ("student", student_shape)):
            if shape is not None and len(shape) != 4:
                raise ValueError(
                    f"AttentionTransfer needs 4-D feature maps (batch, height, "
                    f"width, channels); the {role} layer "
                    f"{getattr(self, role + '_layer')!r} outputs shape {shape}."
                )
        if teacher_shape is not None and student_shape is not None:
            _pool_factors(teacher_shape[1:3], student_shape[1:3])

    def compute(self, teacher_outputs, student_outputs, labels, temperature):
        teacher, student = attention_map(teacher_outputs), attention_map(student_outputs)
        teacher_factor, student_factor = _pool_factors(
            teacher.shape[1:3], student.shape[1:3]
        )
        teacher = _normalized(_pool(teacher, teacher_factor))
        student = _normalized(_pool(student, student_factor))
        return ops.mean(ops.square(teacher - student), axis=-1)


def attention_map(features):
    """Channel mean of the squared features, `(batch, height, width, 1)`, float32."""
    features = ops.cast(features, "float32")
    return ops.mean(ops.square(features), axis=-1, keepdims=True)


def _pool_factors(teacher_size, student_size):
    """How much each map is pooled so that both have the smaller size."""
    teacher_size, student_size = tuple(teacher_size), tuple(student_size)
    if None in teacher_size + student_size or teacher_size == student_size:
        return (1, 1), (1, 1)
    small = tuple(min(a, b) for a, b in zip(teacher_size, student_size))
    factors = []
    for size in (teacher_size, student_size):
        if any(s % m for s, m in zip(size, small)):
            raise ValueError(
                "AttentionTransfer pools the larger map to the smaller one, "
                "so their sizes must divide: teacher "
                f"{teacher_size}, student {student_size}."
            )
        factors.append(tuple(s // m for s, m in zip(size, small)))
    return tuple(factors)


def _pool(attention, factor):
    if factor == (1, 1):
        return attention
    return ops.average_pool(attention, pool_size=factor, strides=factor, padding="valid")


def _normalized(attention):
    flat = ops.reshape(attention, (ops.shape(attention)[0], -1))
    norm = ops.sqrt(ops.sum(ops.square(flat), axis=-1, keepdims=True))
    return flat / ops.maximum(norm, 1e-12)
