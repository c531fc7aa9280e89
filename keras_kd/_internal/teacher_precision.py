"""The frozen teacher's pass in a cheaper number format.

The teacher only ever runs inference, so its pass can run in bfloat16 or
float16 while the student trains in its own dtype. The pass then runs on a
copy of the teacher whose layers store and compute in that format (built
with Keras's own dtype policies, `keras.models.clone_model`, the teacher's
weights); the user's teacher object is never changed, and the copy's logits
are cast to float32 before any term. How close the copy is to the float32
teacher is measured, not assumed (`agreement`).
"""

import time

import keras
import numpy as np

from keras_kd._internal.backends import tf

PRECISIONS = ("float32", "bfloat16", "float16")
CHOICES = PRECISIONS + ("auto",)
# "auto" keeps a cheaper format only if its pass takes at most this share of
# the float32 pass's CPU time, and agrees with it on this share of examples.
AUTO_MAX_TIME_RATIO = 0.9
MIN_AGREEMENT = 0.98


def check_precision(value):
    """Returns `value` if it is a valid `teacher_precision`, else raises."""
    if value not in CHOICES:
        raise ValueError(
            f"Argument `teacher_precision` must be one of {CHOICES}. "
            f"Received: teacher_precision={value!r}"
        )
    return value


def inference_copy(model, precision):
    """A non-trainable copy of `model` storing and computing in `precision`.

    Args:
        model: A Functional or Sequential `keras.Model` (nested models are
            copied too).
        precision: `"bfloat16"` or `"float16"`.

    Returns:
        The copy, with `model`'s weights (rounded to `precision`).
    """
    check_copyable(model, precision)

    def in_precision(layer):
        config = layer.get_config()
        config["dtype"] = precision
        return layer.__class__.from_config(config)

    copy = keras.models.clone_model(model, clone_function=in_precision, recursive=True)
    copy.trainable = False
    sync_weights(copy, model)
    return copy


def check_copyable(model, precision):
    """Raises, with the fix, if `model` cannot be copied into `precision`."""
    if not getattr(model, "inputs", None):
        raise ValueError(
            f"Argument `teacher_precision={precision!r}` needs a Functional or "
            f"Sequential teacher (it runs a copy of it in {precision}); the "
            f"teacher {model.name!r} is a subclassed model. Use "
            "teacher_precision='float32', or build the teacher functionally."
        )


def sync_weights(copy, model):
    """Gives `copy` the current weights of `model` (e.g. after loading them),
    variable by variable on the device: no round trip through the host."""
    for target, source in zip(copy.weights, model.weights):
        target.assign(keras.ops.cast(source, target.dtype))


def agreement(reference_logits, logits, temperature):
    """How closely `logits` follow the float32 teacher's `reference_logits`.

    Returns:
        `{"top1_agreement": share of examples with the same top class,
        "kl": mean KL(softmax(reference/T) ‖ softmax(logits/T))}`, floats.
    """
    reference = np.asarray(reference_logits, np.float64) / temperature
    cheap = np.asarray(logits, np.float64) / temperature
    reference = reference.reshape(-1, reference.shape[-1])
    cheap = cheap.reshape(-1, cheap.shape[-1])

    def log_softmax(z):
        z = z - z.max(axis=-1, keepdims=True)
        return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))

    log_p, log_q = log_softmax(reference), log_softmax(cheap)
    kl = (np.exp(log_p) * (log_p - log_q)).sum(axis=-1).mean()
    top1 = (reference.argmax(-1) == cheap.argmax(-1)).mean()
    return {"top1_agreement": float(top1), "kl": float(kl)}


def cpu_seconds(function, x, repeats=10, rounds=3):
    """The median over `rounds` of the process CPU time of `repeats` calls."""
    function(x)  # Traced and warm.
    times = []
    for _ in range(rounds):
        start = time.process_time()
        for _ in range(repeats):
            np.asarray(function(x))
        times.append(time.process_time() - start)
    return float(np.median(times))


def choose(time_ratios, agreements):
    """The precision `"auto"` keeps.

    Args:
        time_ratios: `{precision: its pass's CPU time / the float32 pass's}`.
        agreements: `{precision: top-1 agreement with the float32 teacher}`.

    Returns:
        The fastest precision whose ratio is at most `AUTO_MAX_TIME_RATIO` and
        whose agreement is at least `MIN_AGREEMENT`, else `"float32"`.
    """
    candidates = [
        p for p, ratio in time_ratios.items()
        if ratio <= AUTO_MAX_TIME_RATIO and agreements[p] >= MIN_AGREEMENT
    ]
    return min(candidates, key=time_ratios.get) if candidates else "float32"


def first_inputs(x, limit=256):
    """Up to `limit` examples of the inputs `fit` is given, or `None`.

    Reads a `tf.data.Dataset` of `x` or `(x, y, ...)` batches, or arrays.
    """
    if isinstance(x, tf.data.Dataset):
        for element in x.take(1):
            return element[0] if isinstance(element, tuple) else element
        return None
    if isinstance(x, (np.ndarray, tf.Tensor)):
        return x[:limit]
    return None


class AgreementLog(keras.callbacks.Callback):
    """Writes the cheap teacher's measured agreement into every epoch's logs.

    Added by `Distiller.fit` when the teacher's pass runs in a cheaper
    precision, so History, CSVLogger and TensorBoard show
    `teacher_agreement` (top-1 agreement with the float32 teacher on the
    first batch). Not part of the public API.

    Args:
        report: The Distiller's `teacher_precision_report`.
    """

    def __init__(self, report):
        super().__init__()
        self.agreement = report["top1_agreement"]

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["teacher_agreement"] = self.agreement
