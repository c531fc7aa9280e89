"""The frozen teachers: one pass per step, and what each term reads of it."""

import logging
import warnings

from keras import ops

from keras_kd._internal import checks
from keras_kd._internal.backends import tf
from keras_kd.data import batch_format
from keras_kd._step import several_teachers
from keras_kd._internal import teacher_precision as precision_module
from keras_kd._step.output_views import FINAL_OUTPUT
from keras_kd._step.output_views import OutputView

TEACHER_RETURNS = ("logits", "probabilities")

logger = logging.getLogger("keras_kd")


class Teachers:
    """Runs the frozen teacher(s) once per batch, or reads their cached logits.

    The teachers are always called with `training=False` and, once `freeze`
    is called, non-trainable, so their weights and BatchNorm statistics never
    change; their outputs carry no gradient.

    Args:
        models: List of teacher `keras.Model`s.
        weights: One weight per teacher, summing to 1.
        returns: `"logits"`, or `"probabilities"` for teachers ending in a
            softmax: their outputs are then used as log-probabilities, which
            soften exactly like logits.
        layer_names: The teacher layers (or dict entries) terms read.
        inputs: Optional function from the student's (augmented) batch to
            the teachers' inputs (the Distiller's `teacher_inputs`).
        precision: The teacher pass's number format: `"float32"`,
            `"bfloat16"`, `"float16"` or `"auto"` (see
            `keras_kd._internal.teacher_precision`). Defaults to `"float32"`.
    """

    def __init__(self, models, weights, returns, layer_names, precision="float32", inputs=None):
        if returns not in TEACHER_RETURNS:
            raise ValueError(
                f"Argument `teacher_returns` must be one of {TEACHER_RETURNS}. "
                f"Received: teacher_returns={returns!r}"
            )
        self.inputs = inputs
        self.models = list(models)
        self.weights = list(weights)
        self.returns = returns
        self.layer_names = [name for name in layer_names if name is not None]
        self.output_views = [OutputView(model, self.layer_names, "teacher") for model in models]
        self.precision = precision_module.check_precision(precision)
        if precision not in ("float32", "auto"):
            for model in models:
                precision_module.check_copyable(model, precision)
        self.chosen_precision = None if precision == "auto" else precision
        self.report = None
        self._copies = {}  # precision -> (copies, their views)
        # One `chunked_terms.Projection` per teacher when the loss is chunked:
        # the pass then stops at their final hidden states.
        self.projections = None

    def precision_report(self):
        """`{"precision", "top1_agreement", "kl"}` of the cheaper teacher on
        the first batch of `fit`, or `None`."""
        return None if self.report is None else {"precision": self.chosen_precision, **self.report}

    def wants_first_batch(self):
        """Whether `prepare` still has something to measure on a first batch."""
        return self.precision != "float32" and (
            self.chosen_precision is None
            or (self.chosen_precision != "float32" and self.report is None)
        )

    def prepare_for_fit(self, strategy, x, temperature):
        """`prepare` before `fit`, given `fit`'s `x`: its first batch is read
        only when a cheaper precision still has something to measure.

        Args:
            strategy: The `tf.distribute.Strategy` of the model.
            x: The `x` given to `fit`.
            temperature: The temperature the agreement's KL is taken at.
        """
        first = precision_module.first_inputs(x) if self.wants_first_batch() else None
        self.prepare(strategy, first, temperature)

    def prepare(self, strategy, x=None, temperature=1.0):
        """Readies the pass before a step is traced (call it eagerly).

        With a cheaper precision: builds the teachers' copies once, gives them
        the teachers' current weights (also after loading), and, given a batch
        `x`, measures their agreement with the float32 teachers (and with
        `"auto"` chooses the precision on it, once).

        Args:
            strategy: The `tf.distribute.Strategy` the copies' variables
                belong to.
            x: Optional inputs of a first batch.
            temperature: The temperature the agreement's KL is taken at.
        """
        if x is not None:
            split = batch_format.split(x)
            x = None if split.teacher_logits is not None else x  # A cache: no teacher pass.
        if self.chosen_precision is None:
            self._choose(strategy, x, temperature)
        if self.chosen_precision == "float32":
            return
        copies, _ = self._copies_in(self.chosen_precision, strategy)
        for copy, model in zip(copies, self.models):
            precision_module.sync_weights(copy, model)
        if x is not None and self.report is None:
            self.report = self._agreement(x, temperature, self.chosen_precision, strategy)
            if self.report["top1_agreement"] < precision_module.MIN_AGREEMENT:
                warnings.warn(
                    f"The teacher in {self.chosen_precision} agrees with the "
                    f"float32 teacher on {self.report['top1_agreement']:.1%} of "
                    f"the first batch's examples (below "
                    f"{precision_module.MIN_AGREEMENT:.0%}): pass "
                    "teacher_precision='float32' for the exact teacher.",
                    RuntimeWarning,
                    stacklevel=2,
                )

    def _copies_in(self, precision, strategy):
        if precision not in self._copies:
            with strategy.scope():
                copies = [precision_module.inference_copy(m, precision) for m in self.models]
            views = [OutputView(c, self.layer_names, "teacher") for c in copies]
            self._copies[precision] = (copies, views)
        return self._copies[precision]

    def _first_logits(self, views, x):
        return views[0](x, training=False)[FINAL_OUTPUT]

    def _agreement(self, x, temperature, precision, strategy):
        _, views = self._copies_in(precision, strategy)
        reference = self._first_logits(self.output_views, x)
        cheap = ops.cast(self._first_logits(views, x), "float32")
        return precision_module.agreement(reference, cheap, temperature)

    def _choose(self, strategy, x, temperature):
        """`"auto"`: the cheapest precision that is clearly faster here."""
        if x is None:
            return  # Chosen at the first `fit` given uncached inputs.
        if not all(getattr(model, "inputs", None) for model in self.models):
            self.chosen_precision = "float32"
            logger.info(
                "teacher_precision='auto' keeps 'float32': a subclassed "
                "teacher cannot be copied into another precision."
            )
            return
        inputs = x
        reference = tf.function(lambda batch: self._first_logits(self.output_views, batch))
        base = precision_module.cpu_seconds(reference, inputs)
        ratios, agreements = {}, {}
        for precision in ("bfloat16", "float16"):
            _, views = self._copies_in(precision, strategy)
            cheap = tf.function(lambda batch, views=views: self._first_logits(views, batch))
            ratios[precision] = precision_module.cpu_seconds(cheap, inputs) / base
            agreements[precision] = self._agreement(inputs, temperature, precision, strategy)["top1_agreement"]
        self.chosen_precision = precision_module.choose(ratios, agreements)
        # Only the chosen copy stays in memory.
        self._copies = {p: c for p, c in self._copies.items() if p == self.chosen_precision}
        logger.info(
            f"teacher_precision='auto' chose {self.chosen_precision!r} "
            "(teacher pass CPU time / float32: "
            + ", ".join(f"{p} {r:.2f}" for p, r in ratios.items())
            + "; top-1 agreement: "
            + ", ".join(f"{p} {a:.1%}" for p, a in agreements.items())
            + f"; kept only at <= {precision_module.AUTO_MAX_TIME_RATIO} and >= "
            f"{precision_module.MIN_AGREEMENT:.0%})."
        )

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
        if self.inputs is not None:
            x = self._teacher_inputs(x)
        if self.projections is not None:
            hidden = [ops.stop_gradient(p.hidden_states(x, training=False)) for p in self.projections]
            return TeacherOutputs([], {}, self, hidden_states=hidden)
        views = self.output_views
        if self.chosen_precision not in (None, "float32") and self.chosen_precision in self._copies:
            views = self._copies[self.chosen_precision][1]
        first = {
            key: _float32_constant(value)
            for key, value in views[0](x, training=False).items()
        }
        logits = [first.pop(FINAL_OUTPUT)] + [
            _float32_constant(view(x, training=False)[FINAL_OUTPUT]) for view in views[1:]
        ]
        return TeacherOutputs(logits, first, self)

    def _teacher_inputs(self, x):
        x = self.inputs(x)
        checks.check_input_shape(
            getattr(x, "shape", None), self.models[0], "teacher (after `teacher_inputs`)",
            "Make `teacher_inputs` return the teacher's input shape.",
        )
        return x

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


def _float32_constant(value):
    """A teacher output as float32 (it may come from a cheaper copy), no gradient."""
    return ops.stop_gradient(ops.cast(value, "float32"))


class TeacherOutputs:
    """One batch's teacher outputs: logits per teacher and named layer outputs
    (or, when the loss is chunked, their final hidden states).

    Args:
        logits: List of tensors, one per teacher (`"probabilities"` teachers
            are turned into log-probabilities here).
        layers: `{layer name: output}` of the first teacher.
        teachers: The `Teachers` that made them.
        hidden_states: With a chunked loss and no cached logits, the
            teachers' final hidden states (and `logits` is empty).
    """

    def __init__(self, logits, layers, teachers, hidden_states=None):
        if teachers.returns == "probabilities":
            logits = [ops.log(ops.cast(t, "float32")) for t in logits]
        self.logits = logits
        self.layers = layers
        self.weights = teachers.weights
        self.hidden_states = hidden_states
        self._teachers = teachers
        self._mixtures = {}

    def positions(self, start, stop, projections, ordered=lambda hidden: hidden):
        """The outputs at positions `[start, stop)` of each sequence: the
        logits sliced, or made from the hidden states by `projections` (one
        `chunked_terms.Projection` per teacher) after `ordered` (which makes
        the slice wait for an earlier chunk)."""
        if self.hidden_states is None:
            logits = [t[:, start:stop] for t in self.logits]
        else:
            logits = [
                _float32_constant(projection.logits(ordered(hidden[:, start:stop])))
                for projection, hidden in zip(projections, self.hidden_states)
            ]
        chunk = TeacherOutputs([], {}, self._teachers)
        chunk.logits = logits
        return chunk

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
            self._mixtures[id(temperature)] = several_teachers.mixture_logits(
                self.logits, self.weights, temperature
            )
        return self._mixtures[id(temperature)]
