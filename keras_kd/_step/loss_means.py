"""One metric that averages all the Distiller's loss values at once."""

import keras
from keras import ops

from keras_kd._internal import keras_internals as internals


class LossMeans(keras.metrics.Metric):
    """Running means of several scalar losses, updated with one assignment.

    Equivalent to one `keras.metrics.Mean` per name, all weighted by the
    batch size, but a training step pays for a single `assign_add` of a
    vector instead of two assignments per name. Its variables sum across
    replicas, so the means are exact under `tf.distribute`.

    Args:
        names: The names of the values, in the order `update_state` gets them.
        name: The metric's own name. Defaults to `"loss"`: Keras orders the
            values `evaluate()` returns by metric name, so the total loss
            comes first, as for any Keras model.
    """

    def __init__(self, names, name="loss"):
        super().__init__(name=name)
        self.names = list(names)
        self.reported = list(names)
        self.totals = self.add_variable(
            shape=(len(self.names),), initializer="zeros", name="totals", aggregation="sum"
        )
        self.count = self.add_variable(
            shape=(), initializer="zeros", name="count", aggregation="sum"
        )

    def update_state(self, values, batch_size):
        """Adds `values` (one scalar per name, `None` for 0) for a batch."""
        batch_size = ops.cast(batch_size, "float32")
        stacked = ops.stack(
            [ops.zeros((), "float32") if v is None else ops.cast(v, "float32") for v in values]
        )
        self.totals.assign_add(stacked * batch_size)
        self.count.assign_add(batch_size)

    def record(self, parts, batch_size):
        """Adds a batch's loss parts `{name: value}` with their global
        (unscaled) values: under `tf.distribute` each replica's loss is its
        share of the global one, a learned temperature is not a share."""
        self.update_state(
            [
                parts[name] if name == "temperature" or parts[name] is None
                else internals.unscale_loss_for_distribution(parts[name])
                for name in self.names
            ],
            batch_size,
        )

    def result(self):
        means = ops.divide_no_nan(self.totals, self.count)
        return {
            name: means[index]
            for index, name in enumerate(self.names)
            if name in self.reported
        }

    def reset_state(self):
        self.totals.assign(ops.zeros(self.totals.shape, self.totals.dtype))
        self.count.assign(0.0)
