"""Function matching without the teacher pass: a replay cache of augmented views.

Consistent augmentation runs the teacher on a fresh view of every batch, at
every step. `ReplayCache.compute` (the idea of FKD, Shen & Xing 2022, "A Fast
Knowledge Distillation Framework for Visual Recognition") runs the teacher
once on `views` augmented views of every example and stores, per example and
view, the numbers Keras's augmentation layers drew
(`get_random_transformation`) and the teacher's raw logits on that view.
Training then replays each view (`transform_images` with the stored numbers)
on the student's side: the student sees exactly the image the teacher saw,
and the teacher never runs.

```python
augmentation = keras.Sequential([
    keras.layers.RandomTranslation(0.1, 0.1), keras.layers.RandomFlip("horizontal"),
])
examples = tf.data.Dataset.from_tensor_slices((x_train, y_train))
replay = keras_kd.ReplayCache.compute(teacher, examples, augmentation, views=8)
distiller = keras_kd.Distiller(teacher, student, augmentation=augmentation)
distiller.compile(...)
# One pass over the attached data holds every view once: 8 epochs' worth.
distiller.fit(replay.attach(examples).shuffle(10_000).batch(128), epochs=3)
```

Guarantees, as `keras_kd.TeacherCache`'s: `attach` checks the data's
order-sensitive fingerprint; a cache on disk (`path=`) is written atomically
(logits and transformations to temporary files, renamed into place, the
fingerprint last) and read back memory-mapped. Only Keras augmentation layers
whose draws are per example can be replayed (not `RandomCrop`, which draws one
crop per batch, nor plain callables). Mixing (mixup, cutmix) pairs examples
within a batch, so it stays online: `Distiller(..., mixing=...)` without a
replay cache.
"""

import json
import os

import keras
import numpy as np

from keras_kd._internal.backends import tf
from keras_kd._internal import files
from keras_kd.data import batch_format
from keras_kd._internal import teacher_precision as teacher_precision_module
from keras_kd.data.augmentation import ConsistentAugmentation
from keras_kd.data.augmentation import is_image_augmentation
from keras_kd._internal.model_outputs import logits_of

__all__ = [
    "ReplayCache",
    "TRANSFORMATIONS_KEY",
    "replay",
]

# The batch format's name, kept here for code written against this module.
TRANSFORMATIONS_KEY = batch_format.TRANSFORMATIONS_KEY


def split(x):
    """`(inputs, cached logits or None, stored transformations or None)`: the
    old name of `keras_kd.data.batch_format.split`, kept for code written
    against it."""
    return tuple(batch_format.split(x))


def _per_example_leaves(layer_index, layer, transformation, batch_size):
    """`{"<layer>/<key>": tensor}` of a transformation's per-example entries."""
    if not isinstance(transformation, dict) or any(isinstance(v, dict) for v in transformation.values()):
        raise ValueError(
            f"The augmentation layer {layer.name!r} ({type(layer).__name__}) "
            "draws a transformation that is not a flat dict of per-example "
            "tensors, so its views cannot be replayed; keep it online (no "
            "ReplayCache)."
        )
    leaves = {}
    for key, value in transformation.items():
        if not hasattr(value, "shape"):
            continue  # A shape or size: recomputed from the batch on replay.
        if len(value.shape) == 0 or value.shape[0] != batch_size:
            raise ValueError(
                f"The augmentation layer {layer.name!r} ({type(layer).__name__}) "
                f"draws {key!r} once per batch (shape {tuple(value.shape)}), "
                "not per example, so its views cannot be replayed; keep it "
                "online (no ReplayCache)."
            )
        leaves[f"{layer_index}/{key}"] = value
    return leaves


def replay(augmentation, x, stored):
    """Re-applies stored per-example transformations to the batch `x`.

    Args:
        augmentation: The `ConsistentAugmentation` the views were drawn with.
        x: The batch of original images.
        stored: `{"<layer>/<key>": tensor}` from the replay cache.

    Returns:
        The augmented views, identical to the ones the teacher saw.
    """
    layers = augmentation.layers
    if not layers:
        raise ValueError(
            "The data holds replayed views (a keras_kd.ReplayCache), but the "
            "Distiller has no Keras augmentation layers to replay them with: "
            "pass the augmentation the cache was computed with, "
            "Distiller(..., augmentation=cache.augmentation)."
        )
    indices = {int(name.split("/")[0]) for name in stored}
    if indices and max(indices) >= len(layers):
        raise ValueError(
            f"The replayed views were drawn by at least {max(indices) + 1} "
            f"augmentation layers, the Distiller's `augmentation` has "
            f"{len(layers)}: pass the augmentation the cache was computed with."
        )
    for index, layer in enumerate(layers):
        if not is_image_augmentation(layer):  # Draws nothing: applied as it is.
            x = layer(x)
            continue
        # Drawn with a fixed int seed (stateless; 1, not 0, which some
        # layers read as "no seed"): only its structure and the batch's
        # shapes are kept; its random entries are replaced.
        transformation = dict(layer.get_random_transformation(x, training=True, seed=1))
        for name, value in stored.items():
            layer_index, key = name.split("/", 1)
            if int(layer_index) == index:
                if key not in transformation:
                    raise ValueError(
                        f"The replayed views hold {key!r} for layer {index}, "
                        f"which {layer.name!r} does not draw: pass the "
                        "augmentation the cache was computed with."
                    )
                transformation[key] = tf.cast(value, transformation[key].dtype)
        x = layer.transform_images(x, transformation, training=True)
    return x


class ReplayCache:
    """The teacher's logits on `views` stored augmented views of each example.

    Build it with `ReplayCache.compute` (or `ReplayCache.load`), then
    `attach` it to the same data.

    Args:
        logits: Array `(views, examples, classes)`, the teacher's raw logits
            (`(views, examples, teachers, classes)` for several teachers).
        transformations: Dict from `"<layer>/<key>"` to arrays `(views,
            examples, ...)`: what each view's layers drew.
        fingerprint: Int, the inputs' fingerprint (`keras_kd.data.batch_format.fingerprint`).
        augmentation: The augmentation the views were drawn with.
        path: Optional folder the arrays live in.
    """

    def __init__(self, logits, transformations, fingerprint, augmentation=None, path=None):
        self.logits = logits
        self.transformations = dict(transformations)
        self.fingerprint = int(fingerprint)
        self.augmentation = augmentation
        self.path = path

    @property
    def views(self):
        """The number of stored views per example."""
        return int(self.logits.shape[0])

    def __len__(self):
        """The number of examples."""
        return int(self.logits.shape[1])

    @classmethod
    def compute(
        cls, teacher, dataset, augmentation, views=4, batch_size=256, dtype="float32",
        path=None, teacher_inputs=None, verbose=1, teacher_precision="float32",
    ):
        """Runs the teacher once on `views` augmented views of every example.

        The draws come from the augmentation layers' own seed generators
        (seed them, or call `keras.utils.set_random_seed`, for a repeatable
        cache).

        Args:
            teacher: The teacher `keras.Model` (called with `training=False`),
                or a list of teachers: their raw logits are then stored side
                by side, `(views, examples, teachers, classes)`, for a
                `Distiller` with the same list of teachers.
            dataset: An unbatched `tf.data.Dataset` of `x` or `(x, y, ...)`,
                in a fixed order, or an array of inputs.
            augmentation: Keras augmentation layers: one, or a
                `keras.Sequential` of them, each drawing per example.
            views: Int >= 1, the augmented views per example. Defaults to `4`.
            batch_size: Int, the batch size of the teacher pass. Defaults to
                `256`.
            dtype: `"float32"` or `"float16"`, how the logits are stored.
                Defaults to `"float32"`.
            path: Optional folder to write the cache to (atomically) and read
                it back from, memory-mapped. Defaults to `None` (in memory).
            teacher_inputs: Optional function from the augmented view to the
                teacher's inputs (as the Distiller's `teacher_inputs`).
            verbose: Int, `1` shows a progress bar. Defaults to `1`.
            teacher_precision: `"float32"`, `"bfloat16"` or `"float16"`, the
                number format of the teacher pass. Defaults to `"float32"`.

        Returns:
            A `ReplayCache`.
        """
        if dtype not in ("float32", "float16"):
            raise ValueError(
                f"Argument `dtype` must be 'float32' or 'float16'. Received: dtype={dtype!r}"
            )
        if not isinstance(views, int) or isinstance(views, bool) or views < 1:
            raise ValueError(f"Argument `views` must be an int >= 1. Received: views={views!r}")
        drawn = ConsistentAugmentation(augmentation)
        if not drawn.layers:
            raise ValueError(
                "Argument `augmentation` must be Keras augmentation layers (one, "
                "or a keras.Sequential of them: each draws with "
                "`get_random_transformation`), so that views can be replayed. "
                f"Received: augmentation={augmentation!r}"
            )
        teachers = list(teacher) if isinstance(teacher, (list, tuple)) else [teacher]
        if teacher_precision != "float32":
            teachers = [teacher_precision_module.inference_copy(t, teacher_precision) for t in teachers]
        dataset = batch_format.as_dataset(dataset)
        count, input_fingerprint = batch_format.fingerprint(dataset)
        if count == 0:
            raise ValueError("Argument `dataset` is empty: there is nothing to cache.")
        to_teacher = teacher_inputs or (lambda view: view)
        progress = keras.utils.Progbar(count * views, verbose=verbose, unit_name="view")
        batches = dataset.map(lambda *element: element[0]).batch(batch_size)
        logits, stored = [], {}
        for _ in range(views):
            view_logits, view_stored = [], {}
            for x in batches:
                view, transformations = drawn.view(x)
                leaves = {}
                for index, (layer, transformation) in enumerate(zip(drawn.layers, transformations)):
                    if transformation is not None:
                        leaves.update(_per_example_leaves(index, layer, transformation, len(x)))
                for name, value in leaves.items():
                    view_stored.setdefault(name, []).append(np.asarray(value))
                inputs = to_teacher(view)
                outputs = [tf.cast(logits_of(t(inputs, training=False)), "float32") for t in teachers]
                view_logits.append(np.asarray(outputs[0] if len(outputs) == 1 else tf.stack(outputs, axis=1)))
                progress.add(len(x))
            logits.append(np.concatenate(view_logits).astype(dtype))
            for name, parts in view_stored.items():
                stored.setdefault(name, []).append(np.concatenate(parts))
        logits = np.stack(logits)
        stored = {name: np.stack(parts) for name, parts in stored.items()}
        result = cls(logits, stored, input_fingerprint, augmentation)
        if path is None:
            return result
        result._write(path)
        return cls.load(path, augmentation)

    def _write(self, path):
        """Writes the cache into the folder `path`, atomically per file; the
        fingerprint file, written last, marks a complete cache."""
        path = os.path.abspath(os.fspath(path))
        os.makedirs(path, exist_ok=True)
        meta_path = os.path.join(path, "replay.json")
        if os.path.exists(meta_path):
            os.remove(meta_path)  # Never new arrays beside an old fingerprint.
        arrays = {"logits": self.logits, **self.transformations}
        names = {}
        for index, (name, array) in enumerate(arrays.items()):
            file_name = "logits.npy" if name == "logits" else f"transformation_{index}.npy"
            names[name] = file_name
            with files.atomic_write(os.path.join(path, file_name), suffix=".npy") as temporary:
                np.save(temporary, np.asarray(array))
        files.write_json(
            meta_path,
            {"count": len(self), "views": self.views, "fingerprint": self.fingerprint, "files": names},
        )

    @classmethod
    def load(cls, path, augmentation=None):
        """Loads a cache written by `compute(..., path=...)`, memory-mapped.

        Args:
            path: The cache's folder.
            augmentation: The augmentation it was computed with (kept as
                `cache.augmentation`). Defaults to `None`.

        Returns:
            A `ReplayCache` whose arrays are memory-mapped.
        """
        path = os.path.abspath(os.fspath(path))
        try:
            with open(os.path.join(path, "replay.json")) as f:
                meta = json.load(f)
        except FileNotFoundError:
            raise ValueError(
                f"No complete replay cache at {path!r}: its fingerprint file "
                "replay.json is missing."
            ) from None
        arrays = {
            name: np.load(os.path.join(path, file_name), mmap_mode="r")
            for name, file_name in meta["files"].items()
        }
        logits = arrays.pop("logits")
        for name, array in [("logits", logits)] + list(arrays.items()):
            if array.shape[:2] != (meta["views"], meta["count"]):
                raise ValueError(
                    f"The replay cache at {path!r} is inconsistent: {name!r} has "
                    f"shape {array.shape}, expected ({meta['views']}, {meta['count']}, ...)."
                )
        return cls(logits, arrays, meta["fingerprint"], augmentation, path=path)

    def attach(self, dataset):
        """Pairs the data with every stored view, view after view.

        Args:
            dataset: The unbatched `tf.data.Dataset` (or input array) given
                to `compute`.

        Returns:
            An unbatched dataset of `views × examples` elements, `({inputs,
            teacher logits, transformations}, y, ...)` (or the dict alone for
            inputs only): one pass over it shows every view once. Shuffle and
            batch it, and give the Distiller the same `augmentation`.
        """
        dataset = batch_format.as_dataset(dataset)
        count, input_fingerprint = batch_format.fingerprint(dataset)
        batch_format.check_fingerprint(
            count, input_fingerprint, len(self), self.fingerprint, "views"
        )
        paired = tf.data.Dataset.zip((dataset.repeat(self.views), self._stored_dataset()))
        return paired.map(_merge, num_parallel_calls=tf.data.AUTOTUNE)

    def _stored_dataset(self):
        """`(logits, transformations)` per example and view, view-major; read
        chunk by chunk from the memory-mapped files of a cache on disk."""
        if self.path is None:
            stored = {name: _flat_views(array) for name, array in self.transformations.items()}
            return tf.data.Dataset.from_tensor_slices((_flat_views(self.logits), stored))
        logits, transformations = self.logits, self.transformations

        def chunks():
            for view in range(self.views):
                for start in range(0, len(self), batch_format.CHUNK_ROWS):
                    end = start + batch_format.CHUNK_ROWS
                    yield (np.asarray(logits[view, start:end]),
                           {name: np.asarray(a[view, start:end]) for name, a in transformations.items()})

        def spec(array):
            return tf.TensorSpec((None,) + array.shape[2:], tf.as_dtype(array.dtype))

        signature = (spec(logits), {name: spec(a) for name, a in transformations.items()})
        return batch_format.chunked_rows(chunks, signature, self.views * len(self))


def _flat_views(array):
    """`(views, examples, ...)` as `(views * examples, ...)`, view-major."""
    return np.reshape(np.asarray(array), (-1,) + tuple(array.shape[2:]))


def _merge(element, stored):
    logits, transformations = stored
    return batch_format.attach(element, logits, transformations)
