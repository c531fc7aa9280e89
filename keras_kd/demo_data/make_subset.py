"""Builds `fashion_mnist_subset.npz`, the demo's embedded data, from tfds.

    python -m keras_kd.demo_data.make_subset --data-dir ../shared/tensorflow_datasets

Stratified draws (per class, a permutation of that class's indices from
`np.random.default_rng(seed)`, classes visited 0..9 with one generator):
10,000 training images (1,000 per class) and 2,000 validation images (200
per class, disjoint) from tfds `fashion_mnist` "train" (seed 0); 5,000 test
images (500 per class) from "test" (seed 1). Indices sorted; pixels kept as
uint8. The file also stores the tfds indices of every image.
"""

import argparse
import os

import numpy as np

from keras_kd._internal import files

HERE = os.path.dirname(os.path.abspath(__file__))
PATH = os.path.join(HERE, "fashion_mnist_subset.npz")


def stratified_draw(labels, sizes, seed):
    """Per class, disjoint index sets of `sizes[i]` examples each; sorted."""
    rng = np.random.default_rng(seed)
    draws = [[] for _ in sizes]
    for label in range(10):
        indices = rng.permutation(np.flatnonzero(labels == label))
        start = 0
        for i, size in enumerate(sizes):
            draws[i].append(indices[start:start + size])
            start += size
    return [np.sort(np.concatenate(d)) for d in draws]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", default=os.environ.get("TFDS_DATA_DIR"))
    parser.add_argument("--out", default=PATH)
    args = parser.parse_args(argv)
    import tensorflow_datasets as tfds

    (x_train, y_train), (x_test, y_test) = tfds.as_numpy(tfds.load(
        "fashion_mnist", split=["train", "test"], as_supervised=True, batch_size=-1,
        data_dir=args.data_dir,
    ))
    train_index, val_index = stratified_draw(y_train, [1000, 200], seed=0)
    (test_index,) = stratified_draw(y_test, [500], seed=1)
    arrays = dict(
        x_train=x_train[train_index, ..., 0], y_train=y_train[train_index].astype("uint8"),
        x_val=x_train[val_index, ..., 0], y_val=y_train[val_index].astype("uint8"),
        x_test=x_test[test_index, ..., 0], y_test=y_test[test_index].astype("uint8"),
        train_index=train_index.astype("int32"), val_index=val_index.astype("int32"),
        test_index=test_index.astype("int32"),
    )
    with files.atomic_write(args.out, suffix=".npz") as temporary:
        np.savez_compressed(temporary, **arrays)
    print(f"wrote {args.out}: " + ", ".join(f"{k} {v.shape}" for k, v in arrays.items()))


if __name__ == "__main__":
    main()
