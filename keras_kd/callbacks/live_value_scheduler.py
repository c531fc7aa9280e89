"""Anneal the Distiller's temperature, alpha or any term's weight."""

import math
import warnings

import keras

from keras_kd._internal import messages as _messages
from keras_kd._internal import backends
from keras_kd import schedules as schedules_module

PER = ("epoch", "batch")


class LiveValueScheduler(keras.callbacks.Callback):
    """Sets the Distiller's live values from schedules, per epoch or per batch.

    Modelled on `keras.callbacks.LearningRateScheduler`: at the start of each
    epoch (or batch) it computes every value from its schedule and assigns it
    to the Distiller's live variable, which the compiled step reads, so
    nothing is retraced. The values are written into `logs` under their names
    (`temperature`, `alpha`, `kl_weight`, ...), so History, CSVLogger and
    TensorBoard show them.

    Schedules in fractions of the run (`fractions=True`) are resolved at the
    start of training from `epochs` (per epoch) or `epochs × steps` (per
    batch). The step is computed from the epoch index, so a run resumed by
    `keras.callbacks.BackupAndRestore` (`initial_epoch` > 0) continues at the
    right value. A value that is not finite, a temperature ≤ 0 or an alpha
    outside [0, 1] stops training with a `ValueError`.

    Args:
        schedule: The temperature's schedule: a `keras_kd.schedules.Schedule`
            or a plain function of the step returning a float. Defaults to
            `None` (temperature left alone).
        per: `"epoch"` or `"batch"`: what one step of the schedules is.
            Defaults to `"epoch"`.
        schedules: Optional dict from other live value names (`"alpha"`,
            `"kl_weight"`, `"<term>_temperature"`, ... — the keys of
            `Distiller.live_variables`) to their schedules. Defaults to `None`.
        verbose: Int. `1` prints each value set at the start of an epoch (to
            the `"keras_kd"` log instead where Keras's interactive logging is
            disabled). Defaults to `0`.

    Example:

    ```python
    annealing = keras_kd.callbacks.LiveValueScheduler(
        keras_kd.schedules.Cosine(8.0, 2.0, duration=1.0, fractions=True),
        per="batch",
        schedules={"alpha": keras_kd.schedules.Linear(0.0, 0.5, duration=10)},
    )
    distiller.fit(train_ds, epochs=20, callbacks=[annealing])
    ```
    """

    def __init__(self, schedule=None, per="epoch", schedules=None, verbose=0):
        super().__init__()
        if per not in PER:
            raise ValueError(
                f"Argument `per` must be one of {PER}. Received: per={per!r}"
            )
        if isinstance(schedule, dict):
            raise ValueError(
                "Argument `schedule` is the temperature's schedule; pass a "
                "dict of schedules by name as `schedules=`. Received: "
                f"schedule={schedule!r}"
            )
        given = dict(schedules or {})
        if schedule is not None:
            if "temperature" in given:
                raise ValueError(
                    "The temperature's schedule is given twice: as `schedule` "
                    "and as schedules['temperature']. Pass it once."
                )
            given = {"temperature": schedule, **given}
        if not given:
            raise ValueError(
                f"{type(self).__name__} needs at least one schedule: pass "
                "`schedule` (the temperature's) or `schedules`. Received none."
            )
        for name, value in given.items():
            if not callable(value):
                raise ValueError(
                    f"The schedule for `{name}` must be a keras_kd.schedules "
                    f"object or a function of the step. Received: {value!r}"
                )
        self.per = per
        self.verbose = verbose
        self._given = given
        self._resolved = {}
        self._epoch = 0
        self._batches_seen = 0
        self._last_values = {}

    def on_train_begin(self, logs=None):
        live_variables = getattr(self.model, "live_variables", None)
        if live_variables is None:
            raise ValueError(
                f"{type(self).__name__} drives a keras_kd.Distiller's live "
                f"values; it was given a {type(self.model).__name__} "
                f"({self.model.name!r}). Use it in `distiller.fit(...)`."
            )
        unknown = sorted(set(self._given) - set(live_variables))
        if unknown:
            raise ValueError(
                f"{type(self).__name__} got schedules for {unknown}, which the "
                f"Distiller does not have. Live value names: "
                f"{sorted(live_variables)}"
            )
        total_steps = self._total_steps()
        self._resolved = {}
        for name, schedule in self._given.items():
            if isinstance(schedule, schedules_module.Schedule):
                if total_steps is None and _has_fractions(schedule):
                    raise ValueError(
                        f"The schedule for `{name}` is written in fractions "
                        "of the run, but the number of steps per epoch is "
                        "unknown: pass `steps_per_epoch` to fit()."
                    )
                schedule = schedule.resolve(total_steps or 1)
            self._resolved[name] = schedule

    def _total_steps(self):
        epochs = self.params.get("epochs") or 1
        if self.per == "epoch":
            return epochs
        steps = self.params.get("steps")
        return epochs * steps if steps else None

    def on_epoch_begin(self, epoch, logs=None):
        self._epoch = epoch
        if self.per == "epoch":
            values = self._apply(epoch)
            if self.verbose > 0:
                text = ", ".join(f"{k} to {v:.4g}" for k, v in values.items())
                _messages.print_msg(f"\nEpoch {epoch + 1}: {type(self).__name__} setting {text}.")

    def on_train_batch_begin(self, batch, logs=None):
        if self.per == "batch":
            steps = self.params.get("steps")
            # With a known epoch length the step follows from the epoch, which
            # keeps it right after a resumed run; otherwise batches are counted.
            step = self._epoch * steps + batch if steps else self._batches_seen
            self._apply(step)
            self._batches_seen += 1

    def on_train_batch_end(self, batch, logs=None):
        self._log(logs)

    def on_epoch_end(self, epoch, logs=None):
        self._log(logs)

    def _apply(self, step):
        # On JAX, Keras holds the variables' values in its own state during an
        # epoch: write it back first, so the assignments reach the next step.
        backends.sync_training_state(self.model)
        values = {}
        for name, schedule in self._resolved.items():
            value = float(keras.ops.convert_to_numpy(schedule(step)))
            if not math.isfinite(value):
                raise ValueError(
                    f"The schedule for `{name}` gave {value} at step {step}: "
                    "live values must be finite. Training stopped."
                )
            values[name] = self.model.set_live_value(name, value)
        self._last_values.update(values)
        return values

    def _log(self, logs):
        # The values this callback set (on JAX the variables themselves are
        # not readable in the middle of an epoch).
        if logs is not None:
            logs.update(self._last_values)


def _has_fractions(schedule):
    children = getattr(schedule, "schedules", [])
    return schedule.fractions or any(_has_fractions(s) for s in children)


class TemperatureScheduler(LiveValueScheduler):
    """Deprecated name of `LiveValueScheduler`, which schedules any live value."""

    def __init__(self, *args, **kwargs):
        warnings.warn(
            "`keras_kd.callbacks.TemperatureScheduler` is renamed "
            "`keras_kd.callbacks.LiveValueScheduler` (it schedules any live "
            "value, not only the temperature); the old name will be removed.",
            DeprecationWarning,
            stacklevel=2,
        )
        super().__init__(*args, **kwargs)
