"""Export the student to TFLite at the end of training or at each improvement."""

import keras
import numpy as np

from keras_kd._internal import messages as _messages
from keras_kd._step import distribution
from keras_kd.deployment import export


class TFLiteExport(keras.callbacks.Callback):
    """Exports the student (or the model) to a verified `.tflite` file.

    Thin: the work is `keras_kd.export_tflite`, usable without `fit()`. The
    path is checked when training begins, so an unwritable folder fails before
    any epoch runs. Without `monitor` the export happens once, at the end of
    training; with it, at every epoch where the monitored value improves, each
    time replacing the file atomically. The report of the last export is
    printed once, at the end of training, and kept in `self.report`. Under
    multi-worker training only the chief (worker 0) writes the file.

    Args:
        path: Path of the `.tflite` file.
        quantization: `None`, `"dynamic"`, `"float16"` or `"int8"`. Defaults
            to `None`.
        representative_data: Calibration inputs, required for `"int8"`.
            Defaults to `None`.
        sample: Inputs to verify the file on. Defaults to `None`.
        monitor: Optional name of a logged value, e.g. `"val_accuracy"`.
            Defaults to `None` (export at the end of training).
        mode: `"min"`, `"max"` or `"auto"` (max for names containing "acc",
            else min), as in `keras.callbacks.ModelCheckpoint`. Defaults to
            `"auto"`.
        int8_io: Bool, see `export_tflite`. Defaults to `False`.
        float_ops: Optional TFLite op names kept in float32 in the `"int8"`
            mode, see `export_tflite`. Defaults to `None`.
        verbose: Int. `1` prints the report at the end (to the `"keras_kd"`
            log instead where Keras's interactive logging is disabled).
            Defaults to `1`.

    Example:

    ```python
    export = keras_kd.callbacks.TFLiteExport(
        "student.tflite", quantization="int8", representative_data=train_ds
    )
    distiller.fit(train_ds, epochs=5, callbacks=[export])
    ```
    """

    def __init__(
        self,
        path,
        quantization=None,
        representative_data=None,
        sample=None,
        monitor=None,
        mode="auto",
        int8_io=False,
        float_ops=None,
        verbose=1,
    ):
        super().__init__()
        if quantization not in export.QUANTIZATIONS:
            raise ValueError(
                f"Argument `quantization` must be one of {export.QUANTIZATIONS}."
                f" Received: quantization={quantization!r}"
            )
        if quantization == "int8" and representative_data is None:
            raise ValueError(
                "Argument `representative_data` is required for "
                "quantization='int8'. Received: representative_data=None"
            )
        float_ops = export.check_float_ops(float_ops, quantization, int8_io)
        if mode not in ("auto", "min", "max"):
            raise ValueError(
                "Argument `mode` must be one of ('auto', 'min', 'max'). "
                f"Received: mode={mode!r}"
            )
        self.path = path
        self.quantization = quantization
        self.representative_data = representative_data
        self.sample = sample
        self.monitor = monitor
        self.int8_io = int8_io
        self.float_ops = float_ops
        self.verbose = verbose
        if mode == "auto":
            mode = "max" if monitor and "acc" in monitor else "min"
        self._better = np.greater if mode == "max" else np.less
        self._best = None
        self.report = None

    def on_train_begin(self, logs=None):
        export.check_export_path(self.path)
        self._best = None

    def on_epoch_end(self, epoch, logs=None):
        if self.monitor is None:
            return
        value = (logs or {}).get(self.monitor)
        if value is None:
            raise ValueError(
                f"TFLiteExport monitors {self.monitor!r}, which is not logged. "
                f"Logged values: {sorted(logs or {})}"
            )
        if self._best is None or self._better(value, self._best):
            self._best = value
            self._export()

    def on_train_end(self, logs=None):
        if self.monitor is None:
            self._export()
        if self.verbose > 0 and self.report is not None:
            _messages.print_msg(self.report)

    def _export(self):
        if not distribution.is_chief(self.model.distribute_strategy):
            return  # Under multi-worker training, worker 0 alone writes.
        model = getattr(self.model, "student", self.model)
        self.report = export.export_tflite(
            model,
            self.path,
            quantization=self.quantization,
            representative_data=self.representative_data,
            sample=self.sample,
            int8_io=self.int8_io,
            float_ops=self.float_ops or None,
        )
