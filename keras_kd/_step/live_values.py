"""Live values: the variables a compiled step reads, changed between steps by name."""

from keras_kd._internal import checks
from keras_kd.losses.learned_temperature import check_reversal


class LiveValues:
    """The Distiller's live values by name, with the checks of each kind.

    A live value is a non-trainable `keras.Variable` read inside the compiled
    step: assigning it changes the loss from the next step on, without
    retracing (with `jit_compile=True` too). Schedules
    (`keras_kd.callbacks.LiveValueScheduler`) and plain assignments go
    through `set`, which checks the value first.

    Args:
        temperature: The shared temperature variable.
        alpha: The student-loss weight variable.
        learned_temperature: A `keras_kd.LearnedTemperature`, or `None`.
        terms: The distillation terms (their weights and own temperatures).
    """

    def __init__(self, temperature, alpha, learned_temperature, terms):
        self.variables = {"alpha": alpha}
        self._checks = {}  # Names whose term checks their values itself.
        if learned_temperature is None:
            self.variables["temperature"] = temperature
        else:
            self.variables["temperature_reversal"] = learned_temperature.reversal
        for term in terms:
            self.variables[f"{term.name}_weight"] = term.weight
            if term.temperature is not None:
                self.variables[f"{term.name}_temperature"] = term.temperature
            for suffix, (variable, check) in getattr(term, "own_live_values", dict)().items():
                self.variables[f"{term.name}_{suffix}"] = variable
                self._checks[f"{term.name}_{suffix}"] = check

    def check(self, name, value):
        """Returns `value` as a float if it is valid for live value `name`."""
        if name not in self.variables:
            raise ValueError(
                f"Unknown live value name: {name!r}. "
                f"Available names: {sorted(self.variables)}"
            )
        if name in self._checks:
            return self._checks[name](value, name)
        if name == "temperature_reversal":
            return check_reversal(value, name)
        if name.endswith("temperature"):
            return checks.check_temperature(value, name)
        if name == "alpha":
            return checks.check_alpha(value, name)
        return checks.check_weight(value, name)

    def set(self, name, value):
        """Checks `value` and assigns it to live value `name`; returns it."""
        value = self.check(name, value)
        self.variables[name].assign(value)
        return value


class LiveValuesMixin:
    """The Distiller's live-value API over its `LiveValues` (`self._live_values`)."""

    temperature = property(
        lambda self: self.learned_temperature.value() if self.learned_temperature is not None
        else self._temperature_variable,
        lambda self, value: self.set_live_value("temperature", value),
        doc="The shared temperature (a `LearnedTemperature`'s current value).",
    )
    alpha = property(
        lambda self: self._alpha_variable,
        lambda self, value: self.set_live_value("alpha", value),
        doc="The weight of the student loss, a non-trainable `keras.Variable`.",
    )

    @property
    def live_variables(self):
        """Every live value by name (`"temperature"`, `"alpha"`, `"<term>_weight"`...)."""
        return dict(self._live_values.variables)

    def set_live_value(self, name, value):
        """Checks `value` and assigns it to the live variable `name` (a key
        of `live_variables`); returns the value assigned, as a float."""
        checked = self._live_values.check(name, value)
        if name == "alpha" and checked > 0 and self.compiled and self._student_loss is None:
            raise ValueError(
                "Argument `alpha` must be 0 when `compile()` was given no "
                f"student `loss`. Received: alpha={checked}"
            )
        return self._live_values.set(name, checked)
