"""What the Distiller needs to train under `tf.distribute`, multi-worker included.

Keras 3.15's own `fit` fails before the first step under
`tf.distribute.MultiWorkerMirroredStrategy` in two places of
`keras/src/backend/tensorflow/trainer.py` (reproduced on a plain Keras model
by `tests/test_multi_worker.py`):

1. `_maybe_symbolic_build` reduces the whole first batch `(x, y)` with
   `strategy.reduce("MEAN", batch, axis=None)`; the collective strategy
   cannot reduce a nested structure ("Attempt to convert a value
   (PerReplica:{...}) ... to a Tensor").
2. `reduce_per_replica` reduces each value a step returns with
   `strategy.reduce("MEAN", value, axis=0)`; losses and metrics are scalars
   ("Invalid reduction dimension 0 for input with 0 dimensions").

The Distiller avoids both: it builds from one replica's share of the first
batch (only shapes matter for building), and under multi-worker it returns
its logged values from the step as shape-`(1,)` tensors, whose mean over
axis 0 across all replicas is the scalar Keras expects. Neither changes
anything on one device or under `MirroredStrategy`.
"""

from keras import ops

from keras_kd._internal.backends import tf
from keras_kd._internal import keras_internals as internals


def is_multi_worker(strategy=None):
    """Whether `strategy` (default: the current one) spans several workers."""
    strategy = strategy or tf.distribute.get_strategy()
    return isinstance(
        strategy, tf.distribute.MultiWorkerMirroredStrategy
    ) and internals.in_multi_worker_mode(strategy)


def is_chief(strategy=None):
    """Whether this process should write files (checkpoints, exports).

    True on one device, under `MirroredStrategy`, and on the chief (worker 0)
    of a multi-worker cluster; False on the other workers.

    Args:
        strategy: The `tf.distribute.Strategy`, e.g. `model.distribute_strategy`
            (callbacks run outside the strategy's scope). Defaults to the
            current strategy.
    """
    strategy = strategy or tf.distribute.get_strategy()
    return bool(strategy.extended.should_checkpoint)


def local_share(batch, strategy):
    """One replica's share of a distributed batch, leaf by leaf.

    Args:
        batch: A nested structure of `tf.distribute.DistributedValues` (or of
            tensors, returned as they are).
        strategy: The `tf.distribute.Strategy` that distributed it.

    Returns:
        The same structure with the first local replica's tensors.
    """

    def first(value):
        if isinstance(value, tf.distribute.DistributedValues):
            return strategy.experimental_local_results(value)[0]
        return value

    return tf.nest.map_structure(first, batch)


def as_reducible_logs(logs):
    """Makes a step's scalar logs reducible across workers (see module doc)."""
    if not is_multi_worker():
        return logs
    return {name: ops.reshape(value, (1,)) for name, value in logs.items()}


def symbolic_build_inputs(strategy, iterator, data_batch):
    """What Keras's symbolic build reads: under multi-worker, one replica's
    share of the first batch instead of the iterator (see above).

    Args:
        strategy: The model's `tf.distribute.Strategy`, or `None`.
        iterator: The epoch iterator Keras builds from, or `None`.
        data_batch: A batch Keras builds from, or `None`.

    Returns:
        `(iterator, data_batch)` for `Trainer._maybe_symbolic_build`.
    """
    if iterator is None or strategy is None or not is_multi_worker(strategy):
        return iterator, data_batch
    for _, _, batches in iterator:
        return None, local_share(next(batches), strategy)
    return None, data_batch
