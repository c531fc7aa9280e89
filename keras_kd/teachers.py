"""The frozen teachers: one pass per step, and what each term reads of it."""

from keras import ops

from keras_kd import ensemble
from keras_kd.views import FINAL_OUTPUT
from keras_kd.views import OutputView

TEACHER_OUTPUTS = ("logits", "probabilities")


class Teachers:
    """Runs the frozen teacher(s) once per batch, or reads their cached logits.

    The teachers are always called with `training=False` and, once `freeze`
    is called, non-trainable, so their weights and BatchNorm statistics never
    change; their outputs carry no gradient.

    Args:
        models: List of teacher `keras.Model`s.
        weights: One weight per teacher, summing to 1.
        outputs: `"logits"`, or `"probabilities"` for teachers ending in a
            softmax: their outputs are then used as log-probabilities, which
            soften exactly like logits.
        layer_names: The teacher layers (or dict entries) terms read.
    """

    def __init__(self, models, weights, outputs, layer_names):
        if outputs not in TEACHER_OUTPUTS:
            raise ValueError(
                f"Argument `teacher_outputs` must be one of {TEACHER_OUTPUTS}. "
                f"Received: teacher_outputs={outputs!r}"
            )
        self.models = list(models)
        self.weights = list(weights)
        self.outputs = outputs
        self.layer_names = [name for name in layer_names if name is not None]
        self.views = [OutputView(model, self.layer_names, "teacher") for model in models]

    def freeze(self):
        """Makes every teacher non-trainable."""
        for model in self.models:
            model.trainable = False

    def __call__(self, x, cached_logits=None):
        """Returns the `TeacherOutputs` of batch `x`.

        Args:
            x: The batch's inputs.
            cached_logits: Logits from a `keras_kd.TeacherCache`, or `None`
                to run the teachers.
        """
        if cached_logits is not None:
            return TeacherOutputs(self._split_cached(cached_logits), {}, self)
        first = {
            key: ops.stop_gradient(value)
            for key, value in self.views[0](x, training=False).items()
        }
        logits = [first.pop(FINAL_OUTPUT)] + [
            ops.stop_gradient(view(x, training=False)[FINAL_OUTPUT])
            for view in self.views[1:]
        ]
        return TeacherOutputs(logits, first, self)

    def _split_cached(self, cached_logits):
        if self.layer_names:
            raise ValueError(
                "Cached teacher outputs hold the teacher's logits only, but "
                f"terms read the teacher layers {sorted(set(self.layer_names))}. "
                "Train on the uncached dataset (the teacher then runs every "
                "step), or drop those terms."
            )
        count = len(self.models)
        if count == 1:
            return [cached_logits]
        if len(cached_logits.shape) != 3 or cached_logits.shape[1] != count:
            raise ValueError(
                f"The Distiller has {count} teachers, so cached teacher logits "
                f"must have shape (batch, {count}, classes): compute the cache "
                "with the list of teachers. Received shape "
                f"{tuple(cached_logits.shape)}"
            )
        return [cached_logits[:, index] for index in range(count)]


class TeacherOutputs:
    """One batch's teacher outputs: logits per teacher and named layer outputs.

    Args:
        logits: List of tensors, one per teacher (`"probabilities"` teachers
            are turned into log-probabilities here).
        layers: `{layer name: output}` of the first teacher.
        teachers: The `Teachers` that made them.
    """

    def __init__(self, logits, layers, teachers):
        if teachers.outputs == "probabilities":
            logits = [ops.log(ops.cast(t, "float32")) for t in logits]
        self.logits = logits
        self.layers = layers
        self.weights = teachers.weights
        self._mixtures = {}

    def zero_masked(self, mask):
        """Zeros at padded positions: a cache padded with NaN stays harmless."""
        keep = ops.expand_dims(ops.cast(mask, "bool"), -1)
        self.logits = [ops.where(keep, t, ops.zeros_like(t)) for t in self.logits]
        self._mixtures = {}

    def for_term(self, term, temperature):
        """What `term` compares with the student: a layer's output, the logits,
        or, with several teachers, logits of their mixture at `temperature`
        (computed once per temperature)."""
        if term.teacher_layer is not None:
            return self.layers[term.teacher_layer]
        if len(self.logits) == 1:
            return self.logits[0]
        if id(temperature) not in self._mixtures:
            self._mixtures[id(temperature)] = ensemble.mixture_logits(
                self.logits, self.weights, temperature
            )
        return self._mixtures[id(temperature)]
