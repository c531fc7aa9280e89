"""Raw strings in, as keras-hub users pass them: through the student's preprocessor.

`keras_hub.models.CausalLM.fit` takes a list of strings or a batched
`tf.data.Dataset` of strings and runs its preprocessor over each batch. The
Distiller does the same with the **student's** preprocessor: teacher and
student share one tokenizer (checked when the Distiller is built), so the
teacher reads the same token ids, and its own preprocessor is not used.

`prepare` turns what `fit`, `evaluate` or `predict` were given into a batched
`tf.data.Dataset` of the preprocessor's `(x, y, sample_weight)` when it holds
strings (or a dict of them, such as keras-hub's `{"prompts": ...,
"responses": ...}`, whose `sample_weight` leaves the prompt out), and leaves
anything else as it is.

Example:

```python
x, y, sample_weight, batch_size = text_inputs.prepare(
    student, ["a tweet", "another"], batch_size=32
)
```
"""

import math
import sys

import numpy as np

from keras_kd._internal.backends import tf
from keras_kd.data import batch_format

__all__ = ["contains_strings", "needs_preprocessing", "prepare", "prepare_fit_arguments", "split_for_validation"]


def contains_strings(x):
    """Whether `x` holds raw strings: a list of `str`, a string array or
    tensor, a `tf.data.Dataset` of strings, or a dict of such."""
    if isinstance(x, dict):
        return any(contains_strings(value) for value in x.values())
    if isinstance(x, (list, tuple)):
        return bool(x) and all(isinstance(item, (str, bytes)) for item in x)
    if isinstance(x, np.ndarray):
        return x.dtype.kind in "US" or (x.dtype.kind == "O" and x.size > 0 and isinstance(x.flat[0], (str, bytes)))
    if isinstance(x, str):
        return True
    if _is_dataset(x):
        return any(spec.dtype == tf.string for spec in tf.nest.flatten(x.element_spec))
    return getattr(x, "dtype", None) is not None and str(getattr(x.dtype, "name", x.dtype)) == "string"


def prepare(student, x, y=None, sample_weight=None, batch_size=None, shuffle=False):
    """What `fit`/`evaluate`/`predict` get, with raw strings preprocessed.

    Args:
        student: The student; its `preprocessor` preprocesses the strings.
        x: The inputs given: raw strings (see `contains_strings`) or anything
            Keras takes.
        y: The labels given, or `None`.
        sample_weight: The sample weights given, or `None`.
        batch_size: The batch size given, or `None` (32 for strings).
        shuffle: Whether to shuffle a list or array of strings before each
            epoch (as Keras shuffles arrays); a dataset is left as it is.
            Defaults to `False`.

    Returns:
        `(x, y, sample_weight, batch_size)`: for strings, a batched
        `tf.data.Dataset` of the preprocessor's output and three `None`s;
        else the arguments unchanged (also strings for a student without a
        preprocessor that takes strings itself, e.g. `TextVectorization`).
    """
    if not needs_preprocessing(student, x):
        return x, y, sample_weight, batch_size
    preprocessor = student.preprocessor
    if _is_dataset(x):
        _check_dataset_alone(x, y, sample_weight, batch_size)
        dataset = x.map(lambda *element: preprocessor(*element), num_parallel_calls=tf.data.AUTOTUNE)
        return dataset.prefetch(tf.data.AUTOTUNE), None, None, None
    given = {"x": x, "y": y, "sample_weight": sample_weight}
    dataset = tf.data.Dataset.from_tensor_slices({k: v for k, v in given.items() if v is not None})
    if shuffle:
        dataset = dataset.shuffle(int(dataset.cardinality()), reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size or 32).map(
        lambda element: preprocessor(element["x"], element.get("y"), element.get("sample_weight")),
        num_parallel_calls=tf.data.AUTOTUNE,
    )
    return dataset.prefetch(tf.data.AUTOTUNE), None, None, None


def needs_preprocessing(student, x):
    """Whether `x` holds raw strings for the student's preprocessor.

    Strings attached by a cache, or given to a student without a
    preprocessor that takes strings itself, are passed on as they are.
    Strings for a student that takes neither are refused with the fix.
    """
    if isinstance(x, dict) and batch_format.LOGITS_KEY in x:
        return False
    if not contains_strings(x):
        return False
    if getattr(student, "preprocessor", None) is not None:
        return True
    if _takes_strings(student):
        return False
    raise ValueError(
        "The data holds raw strings, but the student "
        f"{getattr(student, 'name', student)!r} has no `preprocessor` to "
        "tokenize them. Build the student with one (e.g. "
        "keras_hub.models.GPT2CausalLM(backbone, preprocessor)), or pass "
        "preprocessed `(x, y, sample_weight)` batches, e.g. "
        "`preprocessor(strings)`."
    )


def _takes_strings(model):
    """Whether `model` takes strings itself (or its inputs are unknown)."""
    inputs = getattr(model, "inputs", None)
    if not inputs:
        return True  # A subclassed model: Keras says what it cannot take.
    return any("string" in str(getattr(tensor, "dtype", "")) for tensor in inputs)


def prepare_bound(student, bound, method):
    """Preprocesses raw strings in the bound arguments of `fit`, `evaluate` or
    `predict` (an `inspect.BoundArguments`, changed in place).

    Args:
        student: The student (its `preprocessor`).
        bound: The call's arguments, bound to Keras's signature.
        method: `"fit"`, `"evaluate"` or `"predict"`.
    """
    arguments = bound.arguments
    if method == "fit":
        prepared = prepare_fit_arguments(student, arguments)
        arguments.clear()
        arguments.update(prepared)
        return
    names = ("x", "y", "sample_weight", "batch_size") if method == "evaluate" else ("x",)
    given = {name: arguments.get(name) for name in names}
    x, y, sample_weight, batch_size = prepare(
        student, given["x"], given.get("y"), given.get("sample_weight"), arguments.get("batch_size")
    )
    arguments.update(x=x, batch_size=batch_size)
    if method == "evaluate":
        arguments.update(y=y, sample_weight=sample_weight)


def prepare_fit_arguments(student, arguments):
    """`fit`'s arguments (a dict of those given) with raw strings, in `x`
    and in `validation_data`, preprocessed as `prepare` does; a
    `validation_split` of strings is taken first, as Keras takes it."""
    arguments = dict(arguments)
    x, y, sample_weight = (arguments.get(k) for k in ("x", "y", "sample_weight"))
    if not needs_preprocessing(student, x):
        return arguments
    split = arguments.pop("validation_split", None)
    if split and arguments.get("validation_data") is None:
        (x, y, sample_weight), arguments["validation_data"] = split_for_validation(x, y, sample_weight, split)
    batch_size = arguments.get("batch_size")
    arguments["x"], arguments["y"], arguments["sample_weight"], arguments["batch_size"] = prepare(
        student, x, y, sample_weight, batch_size, shuffle=arguments.get("shuffle", True)
    )
    arguments["shuffle"] = False  # Done above, for lists and arrays.
    validation = arguments.get("validation_data")
    if validation is not None and contains_strings(validation if _is_dataset(validation) else validation[0]):
        parts = (validation,) if _is_dataset(validation) else tuple(validation) + (None,) * (3 - len(validation))
        validation_batch_size = arguments.get("validation_batch_size") or batch_size
        arguments["validation_data"] = prepare(
            student, *parts[:3], batch_size=None if _is_dataset(validation) else validation_batch_size
        )[0]
    return arguments


def split_for_validation(x, y, sample_weight, validation_split):
    """Keras's `validation_split` for raw strings: the last fraction of the
    examples, before any shuffling. Returns `((x, y, sample_weight),
    validation_data)`."""
    if _is_dataset(x):
        raise ValueError(
            "Argument `validation_split` is only supported for arrays or lists, "
            "not a tf.data.Dataset: pass `validation_data=` instead."
        )
    count = len(x) if not isinstance(x, dict) else len(next(iter(x.values())))
    split_at = int(math.floor(count * (1.0 - validation_split)))

    def part(value, start, end):
        if value is None:
            return None
        if isinstance(value, dict):
            return {key: part(item, start, end) for key, item in value.items()}
        return value[start:end]

    train = tuple(part(v, 0, split_at) for v in (x, y, sample_weight))
    validation = tuple(part(v, split_at, count) for v in (x, y, sample_weight))
    return train, tuple(v for v in validation if v is not None)


def _check_dataset_alone(dataset, y, sample_weight, batch_size):
    for name, value in (("y", y), ("sample_weight", sample_weight), ("batch_size", batch_size)):
        if value is not None:
            raise ValueError(
                f"Argument `{name}` must be None when `x` is a tf.data.Dataset of "
                f"strings (the dataset carries everything). Received: {name}={value!r}"
            )
    first = tf.nest.flatten(dataset.element_spec)[0]
    if first.shape.rank == 0:
        raise ValueError(
            "The tf.data.Dataset of strings is not batched: its elements are "
            "single strings. Batch it first, e.g. `dataset.batch(32)`, as "
            "`keras_hub.models.CausalLM.fit` also needs."
        )


def _is_dataset(x):
    # A tf.data.Dataset exists only once TensorFlow is imported: no import here.
    tensorflow = sys.modules.get("tensorflow")
    return tensorflow is not None and isinstance(x, tensorflow.data.Dataset)
