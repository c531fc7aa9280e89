"""Warm up a new head: train it alone for the first epochs of a fit."""

import keras

from keras_kd._internal import keras_internals as internals
from keras_kd._internal import backends
from keras_kd._step.output_views import LOGITS_ENTRY


class HeadWarmup(keras.callbacks.Callback):
    """Trains only the student's head for the first `epochs` epochs.

    The warm-up of Learning without Forgetting (Li & Hoiem): the new task's
    head learns first with everything else frozen, so its random start does
    not disturb the shared layers; then every layer trains. At the start of
    each epoch the callback sets `trainable` on the student's other layers
    (frozen while `epoch < epochs`, restored after; a frozen BatchNormalization
    runs in inference mode, as in Keras's transfer-learning guide) and, when
    that changes, rebuilds the train function. The optimizer is built with
    every variable before the first epoch, so the one passed to `compile`
    trains throughout. `logs["head_warmup"]` is `1.0` for a warm-up epoch,
    else `0.0`. `epochs` may be changed between fits (or by another callback
    before an epoch starts); the epoch index counts from `fit`'s start, so a
    run resumed by `BackupAndRestore` stays in step.

    Args:
        epochs: Int >= 0, the warm-up epochs.
        head: Name of the head layer that trains alone. Defaults to `None`:
            the layer that makes the student's logits (the new head of
            `keras_kd.learn_without_forgetting`).

    Example:

    ```python
    lwf = keras_kd.learn_without_forgetting(model_a, new_head)
    lwf.compile(optimizer="adam", loss=loss)
    lwf.fit(task_b, epochs=12, callbacks=[keras_kd.callbacks.HeadWarmup(2)])
    ```
    """

    def __init__(self, epochs, head=None):
        super().__init__()
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 0:
            raise ValueError(
                f"Argument `epochs` must be an int >= 0. Received: epochs={epochs!r}"
            )
        self.epochs = epochs
        self.head = head
        self._restore = None  # {layer: trainable} while frozen.
        self._warm = False

    def on_train_begin(self, logs=None):
        backends.refuse_on_jax(
            "HeadWarmup",
            "Keras's JAX step applies the optimizer to the variables it was "
            "built with, all or none, so the trainable set cannot change "
            "within a fit; on JAX, fit the new head alone first (the other "
            "layers frozen, then compile), then everything"
        )

    def on_epoch_begin(self, epoch, logs=None):
        self._warm = epoch < self.epochs
        if self._warm and self._restore is None:
            optimizer = self.model.optimizer
            if not optimizer.built:  # With every variable, for the epochs after.
                optimizer.build(self.model.trainable_variables)
            student = self.model.student
            head = self._head_layer(student)
            self._restore = {
                layer: layer.trainable for layer in student.layers
                if layer is not head and layer.weights
            }
            for layer in self._restore:
                layer.trainable = False
            self.model.make_train_function(force=True)
        elif not self._warm and self._restore is not None:
            self._unfreeze()
            self.model.make_train_function(force=True)

    def on_epoch_end(self, epoch, logs=None):
        if logs is not None:
            logs["head_warmup"] = 1.0 if self._warm else 0.0

    def on_train_end(self, logs=None):
        if self._restore is not None:
            self._unfreeze()

    def _unfreeze(self):
        for layer, trainable in self._restore.items():
            layer.trainable = trainable
        self._restore = None

    def _head_layer(self, student):
        if self.head is not None:
            try:
                return student.get_layer(self.head)
            except ValueError as error:
                raise ValueError(
                    f"Argument `head` must name a layer of the student "
                    f"{student.name!r}. Received: head={self.head!r}"
                ) from error
        outputs = getattr(student, "output", None)
        if outputs is None and getattr(student, "outputs", None):
            outputs = student.outputs[0]  # A Sequential model.
        if isinstance(outputs, dict):
            outputs = outputs.get(LOGITS_ENTRY)
        history = internals.keras_history(outputs)
        if history is None:
            raise ValueError(
                f"HeadWarmup cannot tell which layer of the student "
                f"{student.name!r} is its head (it is not a Functional or "
                "Sequential model): pass `head=` (the head layer's name)."
            )
        return history.operation
