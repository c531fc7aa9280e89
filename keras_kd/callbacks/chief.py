"""Run a callback on the chief worker only."""

import keras

from keras_kd._step import distribution


class OnChief(keras.callbacks.Callback):
    """Runs `callback` on the chief only: for callbacks that write files.

    Under `tf.distribute.MultiWorkerMirroredStrategy` every worker runs the
    same `fit` with the same callbacks, so a `keras.callbacks.ModelCheckpoint`
    or a `CSVLogger` would write from every worker into the same path. Wrapped
    in `OnChief`, it runs on worker 0 alone (and as usual on one machine).
    The wrapped callback must not run collective operations (reading the
    model's weights and the logs is fine).

    Args:
        callback: A `keras.callbacks.Callback`.

    Example:

    ```python
    checkpoint = keras_kd.callbacks.OnChief(
        keras.callbacks.ModelCheckpoint("ckpt.weights.h5", save_weights_only=True)
    )
    distiller.fit(train_ds, epochs=10, callbacks=[checkpoint])
    ```
    """

    def __init__(self, callback):
        super().__init__()
        if not isinstance(callback, keras.callbacks.Callback):
            raise ValueError(
                "Argument `callback` must be a keras.callbacks.Callback. "
                f"Received: callback={callback!r}"
            )
        self.callback = callback

    def set_model(self, model):
        super().set_model(model)
        self.callback.set_model(model)

    def set_params(self, params):
        super().set_params(params)
        self.callback.set_params(params)

    def __getattribute__(self, name):
        # Forward every `on_*` hook to the wrapped callback on the chief.
        if name.startswith("on_"):
            callback = object.__getattribute__(self, "callback")
            model = object.__getattribute__(self, "model")
            if model is None or distribution.is_chief(model.distribute_strategy):
                return getattr(callback, name)
            return lambda *args, **kwargs: None
        return object.__getattribute__(self, name)
