"""The one batch format of cached and replayed teacher outputs.

A `keras_kd.TeacherCache` or `keras_kd.ReplayCache` attaches what the teacher
produced to each example. The attached inputs are a dict with reserved keys:

```
{
    INPUTS_KEY: x,                    # the inputs the models see
    LOGITS_KEY: teacher_logits,       # the teacher's raw logits
    TRANSFORMATIONS_KEY: {...},       # ReplayCache only: what each view drew
}
```

`attach` builds it, `split` reads it back (the Distiller's step calls it on
every batch), and `check_fingerprint` refuses a cache attached to other data,
with one message for both caches. `fingerprint`, `as_dataset` and
`chunked_rows` are what both caches compute and read their arrays with.

Example:

```python
inputs = keras_kd.data.batch_format.attach(x, teacher_logits)
split = keras_kd.data.batch_format.split(inputs)
split.inputs is x  # True
```
"""

import collections

import numpy as np

from keras_kd._internal.backends import tf

INPUTS_KEY = "keras_kd_inputs"
LOGITS_KEY = "keras_kd_teacher_logits"
TRANSFORMATIONS_KEY = "keras_kd_transformations"
# Rows a cache on disk reads per chunk of its memory-mapped arrays.
CHUNK_ROWS = 4096
_FINGERPRINT_MODULUS = 2**62

__all__ = [
    "CHUNK_ROWS",
    "INPUTS_KEY",
    "LOGITS_KEY",
    "SplitInputs",
    "TRANSFORMATIONS_KEY",
    "as_dataset",
    "attach",
    "check_fingerprint",
    "chunked_rows",
    "fingerprint",
    "split",
]

SplitInputs = collections.namedtuple("SplitInputs", ["inputs", "teacher_logits", "transformations"])
SplitInputs.__doc__ = """A batch's inputs, split from what a cache attached.

Fields:
    inputs: The inputs the models see.
    teacher_logits: The cached or replayed teacher logits, or `None`.
    transformations: A `ReplayCache`'s stored draws `{"<layer>/<key>":
        tensor}`, or `None`.
"""


def split(x):
    """Splits attached inputs into their parts.

    Args:
        x: A batch's (or an example's) inputs: attached by a cache, or not.

    Returns:
        A `SplitInputs`; plain inputs come back with `None` for the rest.
    """
    if isinstance(x, dict) and LOGITS_KEY in x:
        return SplitInputs(x[INPUTS_KEY], x[LOGITS_KEY], x.get(TRANSFORMATIONS_KEY))
    return SplitInputs(x, None, None)


def attach(element, teacher_logits, transformations=None):
    """Attaches teacher outputs to a dataset element or to inputs.

    Args:
        element: `x`, or a tuple `(x, y, ...)` whose first item is the inputs.
        teacher_logits: The teacher's raw logits for `x`.
        transformations: Optional stored draws of a replayed view.

    Returns:
        `element` with its inputs replaced by the reserved-key dict.
    """
    inputs = element[0] if isinstance(element, tuple) else element
    attached = {INPUTS_KEY: inputs, LOGITS_KEY: teacher_logits}
    if transformations is not None:
        attached[TRANSFORMATIONS_KEY] = transformations
    return (attached,) + element[1:] if isinstance(element, tuple) else attached


def check_fingerprint(count, input_fingerprint, cache_count, cache_fingerprint, what):
    """Raises if data with `(count, input_fingerprint)` is not the cache's.

    Args:
        count: The number of examples of the data being attached.
        input_fingerprint: Their fingerprint (see `fingerprint`).
        cache_count: The number of examples the cache was computed for.
        cache_fingerprint: Their fingerprint.
        what: What the cache holds, e.g. `"teacher logits"`.
    """
    if (count, input_fingerprint) != (cache_count, cache_fingerprint):
        raise ValueError(
            f"These {what} were computed for other data: the dataset has "
            f"{count} examples with input fingerprint {input_fingerprint}, the "
            f"cache {cache_count} examples with fingerprint {cache_fingerprint}. "
            "Attach the cache to the exact dataset it was computed from, before "
            "shuffling, or compute it again."
        )


def _inputs_of(element):
    """The inputs of a dataset element: `x`, or the first item of `(x, y, ...)`."""
    return element[0] if isinstance(element, tuple) else element


def fingerprint(dataset):
    """Returns `(count, fingerprint)` of a dataset's inputs, order-sensitive.

    Each example's serialized input tensors are hashed together with its
    index; the hashes are summed modulo 2**62. Any change of content, order or
    length changes the result (up to hash collisions).

    Args:
        dataset: An unbatched `tf.data.Dataset` of `x` or `(x, y, ...)`.

    Returns:
        A tuple of two Python ints.
    """

    def example_hash(index, element):
        parts = [
            tf.io.serialize_tensor(t) for t in tf.nest.flatten(_inputs_of(element))
        ]
        parts.append(tf.strings.as_string(index))
        return tf.strings.to_hash_bucket_fast(
            tf.strings.reduce_join(parts, separator="|"), _FINGERPRINT_MODULUS
        )

    def combine(state, indexed):
        count, total = state
        index, element = indexed
        value = example_hash(index, element)
        return count + 1, tf.math.floormod(total + value, _FINGERPRINT_MODULUS)

    count, total = dataset.enumerate().reduce(
        (tf.constant(0, tf.int64), tf.constant(0, tf.int64)), combine
    )
    return int(count), int(total)


def as_dataset(data):
    """`data` as an unbatched `tf.data.Dataset`.

    Args:
        data: An unbatched `tf.data.Dataset`, or a numpy array of inputs.

    Returns:
        The dataset.
    """
    if isinstance(data, tf.data.Dataset):
        return data
    if isinstance(data, np.ndarray):
        return tf.data.Dataset.from_tensor_slices(data)
    raise ValueError(
        "Argument `dataset` must be an unbatched tf.data.Dataset (e.g. "
        "tf.data.Dataset.from_tensor_slices((x, y))) or a numpy array of "
        f"inputs. Received: {type(data).__name__}"
    )


def chunked_rows(chunks, signature, count):
    """An unbatched dataset of `count` rows read chunk by chunk.

    Args:
        chunks: A function returning an iterator of chunks: arrays (or
            structures of arrays) of at most `CHUNK_ROWS` rows, e.g. slices
            of memory-mapped arrays.
        signature: The `tf.TensorSpec` structure of one chunk.
        count: The number of rows in all.

    Returns:
        A `tf.data.Dataset` of single rows, of known cardinality.
    """
    dataset = tf.data.Dataset.from_generator(chunks, output_signature=signature)
    return dataset.unbatch().apply(tf.data.experimental.assert_cardinality(count))
