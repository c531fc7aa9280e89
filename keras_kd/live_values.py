"""Live values: the variables a compiled step reads, changed between steps by name."""

from keras_kd import validation
from keras_kd.learned_temperature import check_reversal


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
        if learned_temperature is None:
            self.variables["temperature"] = temperature
        else:
            self.variables["temperature_reversal"] = learned_temperature.reversal
        for term in terms:
            self.variables[f"{term.name}_weight"] = term.weight
            if term.temperature is not None:
                self.variables[f"{term.name}_temperature"] = term.temperature

    def check(self, name, value):
        """Returns `value` as a float if it is valid for live value `name`."""
        if name not in self.variables:
            raise ValueError(
                f"Unknown live value name: {name!r}. "
                f"Available names: {sorted(self.variables)}"
            )
        if name == "temperature_reversal":
            return check_reversal(value, name)
        if name.endswith("temperature"):
            return validation.check_temperature(value, name)
        if name == "alpha":
            return validation.check_alpha(value, name)
        return validation.check_weight(value, name)

    def set(self, name, value):
        """Checks `value` and assigns it to live value `name`; returns it."""
        value = self.check(name, value)
        self.variables[name].assign(value)
        return value
