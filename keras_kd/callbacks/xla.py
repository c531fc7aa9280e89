"""Compile the training step with XLA, where it helps."""

import keras

from keras_kd._internal import messages as _messages
from keras_kd._internal import backends
from keras_kd._step import xla


class XLACompile(keras.callbacks.Callback):
    """Turns XLA compilation of the training step on or off for this fit.

    Keras builds the train function before callbacks start, and reads
    `model.train_function` at every step; at `on_train_begin` this callback
    sets `model.jit_compile` and rebuilds the train and test functions. With
    `"auto"`, XLA is used where a GPU is visible and left off on CPUs.

    If XLA cannot compile an op of the step, the `Distiller` notices on the
    first call, before any data is consumed, warns once naming the op and
    trains on without XLA. `model.xla_first_call_seconds` then holds the
    duration of the first XLA call (compile and one step).

    TensorFlow only: on JAX every step is already compiled with XLA
    (`jax.jit`), and the callback raises a `ValueError` saying so.

    Args:
        mode: `"auto"`, `True` or `False`. Defaults to `"auto"`.
        verbose: Int. `1` prints the decision and the first call's duration
            (to the `"keras_kd"` log instead where Keras's interactive
            logging is disabled). Defaults to `0`.

    Example:

    ```python
    distiller.fit(train_ds, epochs=5, callbacks=[keras_kd.callbacks.XLACompile()])
    ```
    """

    def __init__(self, mode="auto", verbose=0):
        super().__init__()
        backends.require_tensorflow("XLACompile")
        if mode != "auto":
            xla.resolve_jit_compile(mode)  # Checks the argument.
        self.mode = mode
        self.verbose = verbose
        self.jit_compile = None
        self._reported = False

    def on_train_begin(self, logs=None):
        self.jit_compile = xla.resolve_jit_compile(self.mode)
        self.model.jit_compile = self.jit_compile
        # Keras may refuse XLA for this model (and warn): keep its decision.
        self.jit_compile = bool(self.model.jit_compile)
        self.model.make_train_function(force=True)
        self.model.make_test_function(force=True)
        if self.verbose > 0:
            state = "on" if self.jit_compile else "off"
            _messages.print_msg(f"XLACompile(mode={self.mode!r}): XLA {state}.")

    def on_train_batch_end(self, batch, logs=None):
        seconds = getattr(self.model, "xla_first_call_seconds", None)
        if self.verbose > 0 and not self._reported and seconds is not None:
            self._reported = True
            _messages.print_msg(f"\nXLACompile: first XLA call (compile + step) {seconds:.2f} s.")
