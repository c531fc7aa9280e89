"""Cached teacher outputs: run the teacher once, distil for many epochs.

When the training data is static (no random augmentation), the teacher's
logits are the same every epoch. `TeacherCache.compute` runs the teacher once
over an unbatched dataset and keeps its **raw logits** (never probabilities at
some temperature, so annealing still works), in memory or in a `.npy` file.
`TeacherCache.attach` pairs them with the same dataset, before any shuffling:

```python
examples = tf.data.Dataset.from_tensor_slices((x_train, y_train))
cache = keras_kd.TeacherCache.compute(teacher, examples)
train = cache.attach(examples).shuffle(60_000).batch(256)
distiller.fit(train, epochs=20)  # the teacher never runs
```

The pairing cannot silently go wrong: `compute` stores an order-sensitive
fingerprint of every input and the number of examples, and `attach` checks
both against the dataset it is given; a mismatch is a clear error.

The attached dataset yields `({"keras_kd_inputs": x, "keras_kd_teacher_logits":
t}, y, ...)`; the `Distiller` recognises it and skips the teacher.

With in-memory arrays, pass the arrays instead: `attach(x_train)` returns that
dict of arrays, and `fit(attached, y_train, shuffle=True)` lets Keras shuffle
and slice it as cheaply as plain arrays:

```python
cache = keras_kd.TeacherCache.compute(teacher, x_train)
distiller.fit(cache.attach(x_train), y_train, batch_size=256, epochs=20)
```
"""

import json
import os

import keras
import numpy as np

from keras_kd._internal.backends import tf
from keras_kd._internal import files
from keras_kd.data import batch_format
from keras_kd._internal import teacher_precision as teacher_precision_module
from keras_kd._internal.model_outputs import logits_of

__all__ = [
    "TeacherCache",
    "INPUTS_KEY",
    "LOGITS_KEY",
]

# The batch format's names, kept here for code written against this module.
INPUTS_KEY = batch_format.INPUTS_KEY
LOGITS_KEY = batch_format.LOGITS_KEY
fingerprint = batch_format.fingerprint


def split_cached(x):
    """`(inputs, cached teacher logits or None)`: the old name of
    `keras_kd.data.batch_format.split`, kept for code written against it."""
    split = batch_format.split(x)
    return split.inputs, split.teacher_logits


class TeacherCache:
    """A teacher's raw logits for every example of a static dataset.

    Build it with `TeacherCache.compute` (or load one with
    `TeacherCache.load`), then `attach` it to the same dataset.

    Args:
        logits: Array of shape `(num_examples, ...)`, the raw logits.
        fingerprint: Int, the inputs' fingerprint (see `fingerprint`).
        path: Optional path of the `.npy` file the logits live in.
    """

    def __init__(self, logits, fingerprint, path=None):
        self.logits = logits
        self.fingerprint = int(fingerprint)
        self.path = path

    def __len__(self):
        return len(self.logits)

    @classmethod
    def compute(
        cls, teacher, dataset, batch_size=256, dtype="float32", path=None,
        verbose=1, teacher_precision="float32",
    ):
        """Runs the teacher once over `dataset` and keeps its logits.

        Args:
            teacher: The teacher `keras.Model` (called with `training=False`),
                or a list of teachers: their raw logits are then stored side
                by side, `(examples, teachers, classes)`, for a `Distiller`
                with the same list of teachers.
            dataset: An unbatched `tf.data.Dataset` of `x` or `(x, y, ...)`
                elements, in a fixed order, before any shuffling; or an
                array of inputs (the first axis is the example).
            batch_size: Int, the batch size of the teacher pass. Defaults to
                `256`.
            dtype: `"float32"` or `"float16"` (half the memory; logits are
                rounded to float16). Defaults to `"float32"`.
            path: Optional `.npy` path: the logits are written there
                (atomically, with a `.json` beside it holding the fingerprint)
                and read back memory-mapped, for datasets that do not fit in
                memory. Defaults to `None` (in memory).
            verbose: Int, `1` shows a Keras progress bar. Defaults to `1`.
            teacher_precision: `"float32"`, `"bfloat16"` or `"float16"`: the
                number format the teacher's pass runs in (on a copy of the
                teacher, see `keras_kd._internal.teacher_precision`); the logits are
                stored in `dtype` either way. Defaults to `"float32"`.

        Returns:
            A `TeacherCache`.
        """
        if dtype not in ("float32", "float16"):
            raise ValueError(
                "Argument `dtype` must be 'float32' or 'float16'. "
                f"Received: dtype={dtype!r}"
            )
        dataset = batch_format.as_dataset(dataset)
        teachers = list(teacher) if isinstance(teacher, (list, tuple)) else [teacher]
        if teacher_precision not in teacher_precision_module.PRECISIONS:
            raise ValueError(
                "Argument `teacher_precision` must be one of "
                f"{teacher_precision_module.PRECISIONS} (a cache is computed "
                f"once: there is no step to time for 'auto'). Received: "
                f"teacher_precision={teacher_precision!r}"
            )
        if teacher_precision != "float32":
            teachers = [teacher_precision_module.inference_copy(t, teacher_precision) for t in teachers]
        _check_unbatched(teachers[0], dataset)
        count, input_fingerprint = batch_format.fingerprint(dataset)
        if count == 0:
            raise ValueError("Argument `dataset` is empty: there is nothing to cache.")
        progress = keras.utils.Progbar(count, verbose=verbose, unit_name="example")
        if len(teachers) == 1:
            predict = tf.function(
                lambda x: tf.cast(logits_of(teachers[0](x, training=False)), "float32")
            )
        else:
            predict = tf.function(
                lambda x: tf.stack(
                    [tf.cast(logits_of(t(x, training=False)), "float32") for t in teachers],
                    axis=1,
                )
            )
        batches = dataset.map(lambda *element: element[0]).batch(batch_size)
        first = predict(next(iter(batches.take(1))))
        shape = (count,) + tuple(first.shape[1:])

        def fill(logits):
            position = 0
            for batch in batches:
                values = np.asarray(predict(batch))
                logits[position:position + len(values)] = values
                position += len(values)
                progress.update(position)

        if path is None:
            logits = np.empty(shape, dtype)
            fill(logits)
            return cls(logits, input_fingerprint)
        path = os.path.abspath(os.fspath(path))
        if not path.endswith(".npy"):
            raise ValueError(
                f"Argument `path` must end with '.npy'. Received: path={path!r}"
            )
        with files.atomic_write(path, suffix=".npy") as temporary:
            logits = np.lib.format.open_memmap(
                temporary, mode="w+", dtype=dtype, shape=shape
            )
            fill(logits)
            logits.flush()
            del logits
            # Never leave new logits beside an old fingerprint: drop the old
            # fingerprint first; a cache without one refuses to load.
            if os.path.exists(path + ".json"):
                os.remove(path + ".json")
        files.write_json(
            path + ".json",
            {"count": count, "fingerprint": input_fingerprint, "dtype": dtype},
        )
        return cls.load(path)

    @classmethod
    def load(cls, path):
        """Loads a cache written by `compute(..., path=...)`, memory-mapped.

        Args:
            path: The `.npy` path.

        Returns:
            A `TeacherCache`.
        """
        path = os.path.abspath(os.fspath(path))
        try:
            with open(path + ".json") as f:
                meta = json.load(f)
        except FileNotFoundError:
            raise ValueError(
                f"No teacher cache at {path!r}: its fingerprint file "
                f"{path + '.json'!r} is missing."
            ) from None
        logits = np.load(path, mmap_mode="r")
        if len(logits) != meta["count"]:
            raise ValueError(
                f"The teacher cache at {path!r} is inconsistent: {len(logits)} "
                f"rows of logits for {meta['count']} examples."
            )
        return cls(logits, meta["fingerprint"], path=path)

    def attach(self, dataset):
        """Pairs each example of `dataset` with its cached teacher logits.

        Call it on the data the cache was computed from (the same dataset,
        or the same input array), before shuffling and batching. It checks
        the data's fingerprint first.

        Args:
            dataset: The unbatched `tf.data.Dataset` given to `compute`, or
                the array of its inputs.

        Returns:
            For a dataset: a dataset of `({"keras_kd_inputs": x,
            "keras_kd_teacher_logits": t}, y, ...)` elements (or of that dict
            alone when the dataset holds inputs only), ready to `shuffle` and
            `batch`. For an array: the dict of the two arrays, ready for
            `fit(attached, y, shuffle=True)`.
        """
        count, input_fingerprint = batch_format.fingerprint(batch_format.as_dataset(dataset))
        batch_format.check_fingerprint(
            count, input_fingerprint, len(self), self.fingerprint, "teacher logits"
        )
        if not isinstance(dataset, tf.data.Dataset):
            return batch_format.attach(dataset, np.asarray(self.logits))
        paired = tf.data.Dataset.zip((dataset, self._logits_dataset()))
        return paired.map(batch_format.attach, num_parallel_calls=tf.data.AUTOTUNE)

    def read(self, rows):
        """The cached logits of the examples numbered `rows`, as a new array.

        A cache in a file is read with one `os.preadv` call per row, not
        through its memory map: when the file is bigger than free memory,
        random rows read through a memory map fault in page by page (on the
        LM example's 22.7 GB cache, `benchmarks/cache_reads.py` measured a
        median 92.8 ms per random 32-row batch through the memory map, 43.5 ms
        with `read`).

        Args:
            rows: A 1-D array of example numbers, in any order, repeats
                allowed.

        Returns:
            A numpy array of shape `(len(rows),) + logits.shape[1:]`.
        """
        rows = np.asarray(rows).reshape(-1).astype(np.int64)
        if rows.size and (rows.min() < 0 or rows.max() >= len(self)):
            raise ValueError(
                f"Argument `rows` must hold example numbers in [0, {len(self)}). "
                f"Received: rows from {rows.min()} to {rows.max()}"
            )
        if self.path is None or not hasattr(os, "preadv") or not isinstance(self.logits, np.memmap):
            return np.asarray(self.logits[rows])
        values = np.empty((len(rows),) + self.logits.shape[1:], self.logits.dtype)
        row_bytes = values.itemsize * int(np.prod(values.shape[1:], dtype=np.int64))
        descriptor = os.open(self.path, os.O_RDONLY)
        try:
            for position, row in enumerate(rows):
                _read_exactly(descriptor, memoryview(values[position]).cast("B"),
                              self.logits.offset + int(row) * row_bytes)
        finally:
            os.close(descriptor)
        return values

    def attach_batched(self, dataset, batch_size, shuffle_seed=None):
        """Pairs, shuffles and batches `dataset` with its cached logits.

        The same batches as `attach(dataset).shuffle(len(dataset),
        seed=shuffle_seed).batch(batch_size)`, in the same order as
        `dataset.shuffle(len(dataset), seed=shuffle_seed).batch(batch_size)`,
        but only each example's row number goes through the shuffle: a
        batch's logits are read (see `read`) when the batch is made. Use it
        when the logits are bigger than memory, where a shuffle buffer of
        attached examples cannot hold them.

        Args:
            dataset: The unbatched `tf.data.Dataset` given to `compute`, or
                the array of its inputs.
            batch_size: Int, examples per batch.
            shuffle_seed: Optional int: reshuffle every epoch with this seed.
                Defaults to `None` (the dataset's order).

        Returns:
            A batched dataset of `({"keras_kd_inputs": x,
            "keras_kd_teacher_logits": t}, y, ...)` elements (or of the dict
            alone when the dataset holds inputs only).

        Example:

        ```python
        cache = keras_kd.TeacherCache.compute(teacher, examples, path="t.npy")
        train = cache.attach_batched(examples, 32, shuffle_seed=0)
        distiller.fit(train.prefetch(2), epochs=5)
        ```
        """
        if not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(
                f"Argument `batch_size` must be an int >= 1. Received: batch_size={batch_size!r}"
            )
        dataset = batch_format.as_dataset(dataset)
        count, input_fingerprint = batch_format.fingerprint(dataset)
        batch_format.check_fingerprint(
            count, input_fingerprint, len(self), self.fingerprint, "teacher logits"
        )
        numbered = tf.data.Dataset.zip((dataset, tf.data.Dataset.range(count)))
        if shuffle_seed is not None:
            numbered = numbered.shuffle(count, seed=shuffle_seed, reshuffle_each_iteration=True)
        dtype = tf.as_dtype(self.logits.dtype)
        shape = (None,) + tuple(self.logits.shape[1:])

        @tf.autograph.experimental.do_not_convert  # Plain graph code: nothing to convert.
        def with_logits(element, rows):
            logits = tf.numpy_function(self.read, [rows], dtype, stateful=False)
            logits.set_shape(shape)
            return batch_format.attach(element, logits)

        return numbered.batch(batch_size).map(with_logits, num_parallel_calls=tf.data.AUTOTUNE)

    def _logits_dataset(self):
        if self.path is None:
            return tf.data.Dataset.from_tensor_slices(self.logits)
        logits = self.logits

        def chunks():
            for start in range(0, len(logits), batch_format.CHUNK_ROWS):
                yield np.asarray(logits[start:start + batch_format.CHUNK_ROWS])

        spec = tf.TensorSpec((None,) + logits.shape[1:], tf.as_dtype(logits.dtype))
        return batch_format.chunked_rows(chunks, spec, len(logits))


def _read_exactly(descriptor, buffer, offset):
    """Fills `buffer` from the file at `offset`; a short file is an error."""
    while len(buffer):
        count = os.preadv(descriptor, [buffer], offset)
        if count == 0:
            raise ValueError(
                "The teacher cache file ends before its last row: it is "
                "truncated. Compute the cache again."
            )
        buffer, offset = buffer[count:], offset + count


def _check_unbatched(teacher, dataset):
    inputs = getattr(teacher, "inputs", None)
    element = dataset.element_spec
    spec = tf.nest.flatten(element[0] if isinstance(element, tuple) else element)[0]
    if inputs and len(spec.shape) == len(inputs[0].shape):
        raise ValueError(
            "Argument `dataset` looks batched: its inputs have shape "
            f"{tuple(spec.shape)}, like the teacher's batches "
            f"{tuple(inputs[0].shape)}. Cache the dataset before `.batch()` "
            "(and before `.shuffle()`), then batch the attached dataset."
        )
