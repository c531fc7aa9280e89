"""The main job's images: the embedded Fashion-MNIST subset, the students'
labeled share of it, and the large teachers' training images (tfds)."""

import os

import numpy as np

from keras_kd._internal import optional as _optional
from keras_kd.demo.settings import DATA_PATH
from keras_kd.demo.settings import DEFAULT


def load(path=DATA_PATH):
    """Returns `(train, val, test)`, each `(images, labels)`: float32 images
    of shape `(n, 28, 28, 1)` in [0, 1] and int32 labels."""
    arrays = np.load(path)

    def split(name):
        images = arrays[f"x_{name}"].astype("float32")[..., None] / 255.0
        return images, arrays[f"y_{name}"].astype("int32")

    return split("train"), split("val"), split("test")


def student_training_data(train, setting=DEFAULT):
    """The student's training images: the first `setting.labeled_per_class`
    of each class of `train` (in its stored, shuffled order), or all of them.

    Args:
        train: `(images, labels)`, the embedded training split.
        setting: The `Setting` (its `labeled_per_class`).

    Returns:
        `(images, labels)`, in `train`'s order.
    """
    per_class = setting.labeled_per_class
    if per_class is None:
        return train
    images, labels = train
    rows = np.sort(np.concatenate([np.flatnonzero(labels == c)[:per_class] for c in np.unique(labels)]))
    return images[rows], labels[rows]


def teacher_training_data(data_dir=None, data_path=DATA_PATH):
    """The large teachers' training images: tfds `fashion_mnist` "train"
    without the demo's validation images (58,000; the demo's 10,000 training
    images among them, its test images come from "test").

    Needs tensorflow-datasets's copy of Fashion-MNIST (`data_dir`, else
    `TFDS_DATA_DIR`, else tfds's own folder, which downloads it).

    Returns:
        `(images, labels)`: float32 images in [0, 1] (tfds's shape, `(n,
        28, 28, 1)`) and int32 labels.
    """
    tfds = _optional.require(
        "tensorflow_datasets", "examples", "`keras_kd.demo.teacher_training_data`"
    )
    (images, labels), = tfds.load(
        "fashion_mnist", split=["train"], as_supervised=True, batch_size=-1,
        data_dir=data_dir or os.environ.get("TFDS_DATA_DIR"),
    )
    keep = np.ones(len(labels), bool)
    keep[np.load(data_path)["val_index"]] = False
    images = np.asarray(images)[keep].astype("float32") / 255.0
    return images, np.asarray(labels)[keep].astype("int32")
