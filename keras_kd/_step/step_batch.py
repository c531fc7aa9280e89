"""What one step needs of a batch, read once and passed on as a value.

`read` turns a batch into a `StepBatch`: the inputs both models see (the
batch's one training view: drawn, replayed from a `ReplayCache`, mixed), the
labels, the sample weights, how it was mixed and the cached or replayed teacher
logits. The Distiller's step takes that value as an argument from there on.

On JAX and PyTorch, Keras's own train and test steps call the model, then
`compute_loss`, then `compute_metrics`. The Distiller marks the batch's
inputs (`mark`); `call` reads the marked batch, runs the student and returns
the `StepBatch` and the student's outputs together (`step_outputs`), which
Keras hands, as `y_pred`, to `compute_loss` and `compute_metrics`
(`read_step_outputs`). Every part is a tensor or a structure of tensors, so it
passes through JAX's compiled step as any `y_pred` does.
"""

import collections

import keras

from keras_kd._internal import backends
from keras_kd._internal import checks
from keras_kd.data import replay
from keras_kd.data.augmentation import Mix
from keras_kd.data import batch_format
from keras_kd._step.output_views import FINAL_OUTPUT

StepBatch = collections.namedtuple(
    "StepBatch", ["x", "y", "sample_weight", "teacher_logits", "mix"]
)
StepBatch.__doc__ = """One batch, as the step uses it.

Fields:
    x: The inputs both models see (in training: the augmented, mixed view).
    y: The labels, or `None`.
    sample_weight: The sample weights, or `None`.
    teacher_logits: Cached or replayed teacher logits, or `None` (the
        teachers run).
    mix: How `x` was mixed (`keras_kd.data.Mix`), or `None`.
"""

# Marks the inputs Keras's own step passes to `call` (JAX, PyTorch).
_MARK = "keras_kd_step_inputs"
# Entries of what `call` returns for a marked batch.
_STEP = "keras_kd_step"
_LOGITS = "logits"
_LAYERS = "layers"


def read(x, y, sample_weight, views, student, training):
    """The `StepBatch` of one batch.

    In training, the batch's one view is made here: a replay of the stored
    draws, else a fresh draw of the augmentation, then the mixing. Outside
    training nothing is drawn, and replayed views are refused.

    Args:
        x: The batch's inputs, as the data gives them (maybe attached by a
            cache, see `keras_kd.data.batch_format`).
        y: The labels, or `None`.
        sample_weight: The sample weights, or `None`.
        views: The Distiller's `ConsistentAugmentation`.
        student: The student (its input shape checks the view).
        training: Whether the batch is trained on.

    Returns:
        A `StepBatch`.
    """
    split = batch_format.split(x)
    if not training:
        checks.check_not_replayed(split.transformations)
        return StepBatch(split.inputs, y, sample_weight, split.teacher_logits, None)
    checks.check_view_sources(views, split.teacher_logits, split.transformations)
    x = split.inputs
    if split.transformations is not None:
        backends.require_tensorflow("ReplayCache")
        x = replay.replay(views, x, split.transformations)
    elif views.augmentation is not None:
        x = views.view(x)[0]
    x, mix = views.mix(x)
    if views.enabled:
        checks.check_input_shape(x.shape, student, "student", checks.KEEP_SIZE)
    return StepBatch(x, y, sample_weight, split.teacher_logits, mix)


def unpack(data):
    """`(x, y, sample_weight)` of a batch, as Keras unpacks it."""
    return keras.utils.unpack_x_y_sample_weight(data)


def unaugmented(data, mixing):
    """The `StepBatch` of a raw batch with an identity mix (when `mixing` is
    set): the XLA part of an augmented step is probed on it."""
    x, y, sample_weight = unpack(data)
    split = batch_format.split(x)
    mix = None
    if mixing is not None:
        size = keras.ops.shape(split.inputs)[0]
        mix = Mix(keras.ops.ones((size,), "float32"), keras.ops.arange(size))
    return StepBatch(split.inputs, y, sample_weight, split.teacher_logits, mix)


def mark(data):
    """The batch `data` with its inputs marked for `call` (see the module)."""
    x, y, sample_weight = unpack(data)
    return keras.utils.pack_x_y_sample_weight({_MARK: x}, y, sample_weight)


def marked_inputs(inputs):
    """The batch's inputs if `inputs` were marked by `mark`, else `None`."""
    if isinstance(inputs, dict) and _MARK in inputs:
        return inputs[_MARK]
    return None


def step_outputs(batch, student_outputs):
    """What `call` returns for a marked batch: its `StepBatch` (labels and
    weights left out: Keras passes them on) and the student's outputs."""
    layers = {name: value for name, value in student_outputs.items() if name is not FINAL_OUTPUT}
    mix = None if batch.mix is None else tuple(batch.mix)
    return {
        _LOGITS: student_outputs.get(FINAL_OUTPUT),  # None under a chunked loss.
        _LAYERS: layers,
        _STEP: {"x": batch.x, "teacher_logits": batch.teacher_logits, "mix": mix},
    }


def read_step_outputs(y_pred, y, sample_weight):
    """`(StepBatch, student outputs)` from what `call` returned for a marked
    batch, or `None` when `y_pred` is anything else."""
    if not (isinstance(y_pred, dict) and _STEP in y_pred):
        return None
    step = y_pred[_STEP]
    mix = None if step["mix"] is None else Mix(*step["mix"])
    batch = StepBatch(step["x"], y, sample_weight, step["teacher_logits"], mix)
    return batch, {FINAL_OUTPUT: y_pred[_LOGITS], **y_pred[_LAYERS]}


def logits_of_step_outputs(y_pred):
    """The student's logits in `y_pred` (step outputs or plain logits)."""
    if isinstance(y_pred, dict) and _STEP in y_pred:
        return y_pred[_LOGITS]
    return y_pred
