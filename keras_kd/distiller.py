"""The Distiller: a `keras.Model` that trains a student to mimic a teacher."""

import inspect

import keras
import tensorflow as tf
from keras import ops
from keras.src import backend as keras_backend  # get/set_keras_mask, as Keras's losses use them

from keras_kd import cache
from keras_kd import compat
from keras_kd import distribution
from keras_kd import ensemble
from keras_kd import fused_update
from keras_kd import nonfinite
from keras_kd import validation
from keras_kd import views
from keras_kd import xla
from keras_kd.learned_temperature import LearnedTemperature
from keras_kd.learned_temperature import check_reversal
from keras_kd.loss_means import LossMeans
from keras_kd.losses.kl_divergence import KLDivergence
from keras_kd.views import FINAL_OUTPUT
from keras_kd.views import OutputView

TEACHER_OUTPUTS = ("logits", "probabilities")


@keras.saving.register_keras_serializable(package="keras_kd")
class Distiller(keras.Model):
    """Trains a student on labels and on a frozen teacher's outputs.

    For each batch, with student logits `s` and teacher logits `t`:

    ```
    loss = alpha * student_loss(y, s)
         + (1 - alpha) * sum_i(weight_i * term_i(t, s, y))
         + the student's regularization losses
    ```

    `student_loss` is the `loss` given to `compile()`, with all its Keras
    conventions (sparse or one-hot labels, `from_logits`, `ignore_class`,
    reduction). Each term is a `keras_kd.losses.DistillationTerm`; the default
    is one `KLDivergence` term, Hinton's `T² · KL(softmax(t/T) ‖ softmax(s/T))`.
    Sample weights and `class_weight` apply to every part of the loss with
    Keras's `"sum_over_batch_size"` reduction.

    The temperature, `alpha` and every term's weight are live: variables read
    inside the compiled step, reachable by name through `live_variables`, so a
    schedule or a plain assignment changes the loss from the next step on
    without retracing, with `jit_compile=True` too.

    The teacher is frozen: it is made non-trainable and always called with
    `training=False`, so its weights and BatchNorm statistics never change.
    Calling the distiller (or `predict`) runs the student alone.

    History logs `loss`, `student_loss` (before weighting), one `<name>_loss`
    per term (before weighting), the compiled metrics on the student's
    outputs, and their `val_` twins; all are exact under `tf.distribute`
    (with a sequence mask, each replica averages over its own valid
    positions, as Keras does for its own losses).

    Args:
        teacher: A trained `keras.Model` that outputs logits, or a list of
            them: the soft target is then the weighted mean of the teachers'
            temperature-softened probabilities (not of their logits).
        student: The `keras.Model` to train; it outputs logits of the same
            shape as the teacher's.
        temperature: Positive float, the softening temperature `T` shared by
            the logit terms, or a `keras_kd.LearnedTemperature` (CTKD).
            Defaults to `4.0`.
        alpha: Float in [0, 1], the weight of the student loss. Defaults to
            `0.1` (or `student_loss_weight`, see below).
        terms: A `DistillationTerm` or a list of them. Each needs a unique
            `name`. Defaults to `[keras_kd.losses.KLDivergence()]`.
        teacher_outputs: `"logits"`, or `"probabilities"` for a teacher that
            ends in a softmax: its outputs are then turned into log-probabilities,
            which soften exactly like logits. Defaults to `"logits"`.
        teacher_weights: With a list of teachers, one non-negative weight per
            teacher (normalized to sum 1). Defaults to `None` (equal).
        distillation_losses: Same as `terms`, for code written for
            `keras.distillation`; `keras.distillation.LogitsDistillation`
            objects are converted to the equivalent keras_kd term.
        distillation_loss_weights: Optional list of floats, one weight per
            entry of `distillation_losses`. Defaults to `None` (all `1.0`).
        student_loss_weight: Same as `alpha`, for `keras.distillation` code.
            When `distillation_losses` is given and neither this nor `alpha`
            is, `alpha` is `0.5`, `keras.distillation`'s default.
        skip_nonfinite_steps: Bool. If `True`, a training step whose loss or
            gradients are not finite is skipped and counted in the logs as
            `skipped_steps` (see `keras_kd.nonfinite`). `False` applies every
            update, as Keras does, and saves the check: one pass over the
            gradients, 3-4% of a benchmark MLP step with 1.3M student weights
            (`benchmarks/step_overhead.py`). Defaults to `True`.
        name: String, the model's name. Defaults to `"distiller"`.
        **kwargs: Other `keras.Model` arguments.

    Example:

    ```python
    distiller = keras_kd.Distiller(teacher, student, temperature=4.0, alpha=0.1)
    distiller.compile(
        optimizer="adam",
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    ).fit(train_ds, validation_data=val_ds, epochs=3)
    distiller.temperature.assign(2.0)  # takes effect at the next step
    student = distiller.student
    ```
    """

    def __init__(
        self,
        teacher,
        student,
        temperature=4.0,
        alpha=None,
        terms=None,
        teacher_outputs="logits",
        teacher_weights=None,
        distillation_losses=None,
        distillation_loss_weights=None,
        student_loss_weight=None,
        skip_nonfinite_steps=True,
        name="distiller",
        **kwargs,
    ):
        super().__init__(name=name, **kwargs)
        teachers, teacher_weights = ensemble.resolve_teachers(teacher, teacher_weights)
        for one in teachers:
            _check_models(one, student)
        learned = None
        if isinstance(temperature, LearnedTemperature):
            learned, temperature = temperature, temperature.initial
        temperature = validation.check_temperature(temperature)
        alpha = _resolve_alpha(alpha, student_loss_weight, distillation_losses)
        terms = _resolve_terms(
            terms, distillation_losses, distillation_loss_weights
        )
        if not isinstance(skip_nonfinite_steps, bool):
            raise ValueError(
                "Argument `skip_nonfinite_steps` must be True or False. "
                f"Received: skip_nonfinite_steps={skip_nonfinite_steps!r}"
            )
        if teacher_outputs not in TEACHER_OUTPUTS:
            raise ValueError(
                f"Argument `teacher_outputs` must be one of {TEACHER_OUTPUTS}. "
                f"Received: teacher_outputs={teacher_outputs!r}"
            )
        for one in teachers:
            _check_ends_in_logits(one, "teacher", teacher_outputs)
        _check_ends_in_logits(student, "student", "logits")
        ensemble.check_teacher_shapes(teachers)
        _check_output_shapes(teachers[0], student)
        if len(teachers) > 1:
            _check_terms_read_logits_of_several_teachers(terms)

        for one in teachers:
            one.trainable = False
        self.teachers = teachers
        self.teacher_weights = teacher_weights
        self.student = student
        self.terms = terms
        self.teacher_outputs = teacher_outputs
        self._temperature_variable = self._live_weight("temperature", temperature)
        self.learned_temperature = learned
        self._alpha_variable = self._live_weight("alpha", alpha)
        self._teacher_views = [
            OutputView(one, [term.teacher_layer for term in terms], "teacher")
            for one in teachers
        ]
        self._teacher_view = self._teacher_views[0]
        self._student_view = OutputView(
            student, [term.student_layer for term in terms], "student"
        )
        for term in terms:
            term.build_for(
                self._teacher_view.shape(term.teacher_layer),
                self._student_view.shape(term.student_layer),
            )
        self._student_loss = None
        self._student_loss_config = None
        self._loss_means = LossMeans(
            ["loss", "student_loss"]
            + [f"{term.name}_loss" for term in terms]
            + (["temperature"] if learned is not None else [])
        )
        self.skip_nonfinite_steps = skip_nonfinite_steps
        self._skipped_steps = nonfinite.SkippedSteps()
        self._evaluating = False
        if student.built and all(one.built for one in teachers):
            self.built = True

    @property
    def teacher(self):
        """The teacher, or the list of teachers when there are several."""
        return self.teachers[0] if len(self.teachers) == 1 else list(self.teachers)

    def _live_weight(self, name, value):
        return self.add_weight(
            name=name,
            shape=(),
            dtype="float32",
            initializer=keras.initializers.Constant(value),
            trainable=False,
        )

    # Live state ------------------------------------------------------------

    @property
    def temperature(self):
        """The shared temperature: a non-trainable `keras.Variable`, or the
        current value of a `LearnedTemperature` (a tensor)."""
        if self.learned_temperature is not None:
            return self.learned_temperature.value()
        return self._temperature_variable

    @temperature.setter
    def temperature(self, value):
        self.set_live_value("temperature", value)

    @property
    def alpha(self):
        """The weight of the student loss, a non-trainable `keras.Variable`."""
        return self._alpha_variable

    @alpha.setter
    def alpha(self, value):
        self.set_live_value("alpha", value)

    @property
    def live_variables(self):
        """Every live value by name: a dict of `keras.Variable`s.

        Keys: `"temperature"` (or `"temperature_reversal"` with a
        `LearnedTemperature`), `"alpha"`, `"<term>_weight"` for every term and
        `"<term>_temperature"` for every term with its own temperature.
        """
        variables = {"alpha": self._alpha_variable}
        if self.learned_temperature is None:
            variables["temperature"] = self._temperature_variable
        else:
            variables["temperature_reversal"] = self.learned_temperature.reversal
        for term in self.terms:
            variables[f"{term.name}_weight"] = term.weight
            if term.temperature is not None:
                variables[f"{term.name}_temperature"] = term.temperature
        return variables

    def set_live_value(self, name, value):
        """Checks `value` and assigns it to the live variable `name`.

        Args:
            name: A key of `live_variables`, e.g. `"temperature"`, `"alpha"`
                or `"kl_weight"`.
            value: The new value; temperatures must be finite and > 0, alpha
                in [0, 1], weights finite and >= 0.

        Returns:
            The value assigned, as a float.
        """
        variables = self.live_variables
        if name not in variables:
            raise ValueError(
                f"Unknown live value name: {name!r}. "
                f"Available names: {sorted(variables)}"
            )
        if name == "temperature_reversal":
            value = check_reversal(value, name)
        elif name.endswith("temperature"):
            value = validation.check_temperature(value, name)
        elif name == "alpha":
            value = validation.check_alpha(value, name)
            if value > 0 and self.compiled and self._student_loss is None:
                raise ValueError(
                    "Argument `alpha` must be 0 when `compile()` was given no "
                    f"student `loss`. Received: alpha={value}"
                )
        else:
            value = validation.check_weight(value, name)
        variables[name].assign(value)
        return value

    # Compilation -----------------------------------------------------------

    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):
        """Configures the distiller for training; returns the distiller.

        Args:
            optimizer: An optimizer or its name. It is wrapped in a
                `keras.optimizers.LossScaleOptimizer` when the student computes
                in float16. Defaults to `"adam"`.
            loss: The student loss on the labels, e.g.
                `keras.losses.SparseCategoricalCrossentropy(from_logits=True)`
                (a loss object, function or name). Required when `alpha > 0`.
                Defaults to `None`.
            metrics: Metrics computed on the student's outputs, as in
                `keras.Model.compile`. Defaults to `None`.
            **kwargs: Other `keras.Model.compile` arguments (`run_eagerly`,
                `jit_compile`, `steps_per_execution`, `weighted_metrics`...).

        Returns:
            The distiller itself, so that `compile(...).fit(...)` chains.
        """
        if kwargs.get("loss_weights") is not None:
            raise ValueError(
                "Argument `loss_weights` is not used by the Distiller: weigh "
                "the student loss with `alpha` and the terms with their "
                "`weight`. Received: loss_weights="
                f"{kwargs['loss_weights']!r}"
            )
        alpha = float(ops.convert_to_numpy(self._alpha_variable))
        if loss is None and alpha > 0:
            raise ValueError(
                "Argument `loss` (the student loss) is required when alpha > 0. "
                "Pass e.g. loss=keras.losses.SparseCategoricalCrossentropy("
                "from_logits=True), or build the Distiller with alpha=0 for "
                f"pure distillation. Received: loss=None, alpha={alpha:g}"
            )
        optimizer = keras.optimizers.get(optimizer)
        if _computes_in_float16(self.student) and not isinstance(
            optimizer, keras.optimizers.LossScaleOptimizer
        ):
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        super().compile(optimizer=optimizer, metrics=metrics, **kwargs)
        self._student_loss = _as_loss_object(loss)
        self._student_loss_config = loss
        self._loss_means.reported = [
            name
            for name in self._loss_means.names
            if name != "student_loss" or self._student_loss is not None
        ]
        return self

    def get_compile_config(self):
        config = super().get_compile_config()
        if config:
            config["loss"] = keras.saving.serialize_keras_object(
                self._student_loss_config
            )
        return config

    def compile_from_config(self, config):
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    @property
    def metrics(self):
        metrics = [self._loss_means]
        # Evaluation skips nothing: no count.
        if self.skip_nonfinite_steps and not self._evaluating:
            metrics.append(self._skipped_steps)
        if getattr(self, "_compile_metrics", None) is not None:
            metrics.append(self._compile_metrics)
        return metrics

    # Steps -----------------------------------------------------------------

    def make_train_function(self, force=False):
        if self.train_function is None or force:
            super().make_train_function(force=True)
            self.train_function = self._with_xla_guard(
                self.train_function, self.train_step, self.make_train_function
            )
        return self.train_function

    def make_test_function(self, force=False):
        if self.test_function is None or force:
            super().make_test_function(force=True)
            self.test_function = self._with_xla_guard(
                self.test_function, self.test_step, self.make_test_function
            )
        return self.test_function

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Overrides a private Keras 3.15 method (pinned by
        # tests/test_multi_worker.py): under multi-worker, build from one
        # replica's share of the first batch instead of reducing the nested
        # batch, which the collective strategy cannot do (see distribution.py).
        strategy = self._distribute_strategy
        if iterator is not None and strategy is not None and (
            distribution.is_multi_worker(strategy)
        ):
            for _, _, batches in iterator:
                data_batch = distribution.local_share(next(batches), strategy)
                break
            iterator = None
        return super()._maybe_symbolic_build(
            iterator=iterator, data_batch=data_batch
        )

    def _with_xla_guard(self, function, step_function, make_function):
        """Falls back to no XLA if XLA cannot compile the step (see xla.py)."""
        if not self.jit_compile or self.run_eagerly:
            return function
        return xla.guard_first_call(
            self, function, step_function,
            rebuild=lambda: make_function(force=True),
        )

    def call(self, inputs, training=False):
        inputs, _ = cache.split_cached(inputs)
        return views.logits_of(self.student(inputs, training=training))

    def train_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        # State the forward pass updates (BatchNorm statistics), kept to be
        # put back if the step is skipped.
        updated_state = (
            self.student.non_trainable_weights if self.skip_nonfinite_steps else []
        )
        state_before = [tf.identity(v.value) for v in updated_state]
        with tf.GradientTape() as tape:
            student_logits, loss = self._forward(
                x, y, sample_weight, training=True
            )
            scaled_loss = self.optimizer.scale_loss(loss)
        trainable_variables = self.trainable_variables
        gradients = tape.gradient(scaled_loss, trainable_variables)
        if self.skip_nonfinite_steps:
            finite = nonfinite.apply_if_finite(
                self.optimizer, loss, gradients, trainable_variables
            )
            for variable, value in zip(updated_state, state_before):
                variable.assign(ops.where(finite, variable.value, value))
            self._skipped_steps.update_state(finite)
        else:
            fused_update.apply_gradients(
                self.optimizer, gradients, trainable_variables
            )
        return distribution.as_reducible_logs(
            self.compute_metrics(x, y, student_logits, sample_weight)
        )

    def test_step(self, data):
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        student_logits, _ = self._forward(x, y, sample_weight, training=False)
        return distribution.as_reducible_logs(
            self.compute_metrics(x, y, student_logits, sample_weight)
        )

    def fit(self, *args, **kwargs):
        """Trains the student; same arguments and return value as `keras.Model.fit`.

        Besides Keras's behaviour, a step whose loss or gradients are not
        finite is skipped (see `keras_kd.nonfinite`; `skip_nonfinite_steps`):
        the weights and the optimizer state stay as they were, `skipped_steps`
        in the logs counts such steps per epoch, and a warning is given once
        per epoch with some.
        A plain `keras.optimizers.Adam` or `AdamW` update is applied with
        TensorFlow's fused Adam kernel: Keras's formula in one pass over the
        weights, with `1 - beta` rounded in float32 (see
        `keras_kd.fused_update`).
        """
        keras_fit = super().fit
        arguments = inspect.signature(keras_fit).bind(*args, **kwargs)
        callbacks = list(arguments.arguments.get("callbacks") or [])
        if self.skip_nonfinite_steps:
            callbacks.append(nonfinite.SkippedStepsWarning(self._skipped_steps.name))
        arguments.arguments["callbacks"] = callbacks
        return keras_fit(*arguments.args, **arguments.kwargs)

    def evaluate(self, *args, **kwargs):
        """Evaluates the student; same arguments as `keras.Model.evaluate`."""
        self._evaluating = True
        try:
            return super().evaluate(*args, **kwargs)
        finally:
            self._evaluating = False

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Updates the compiled metrics on the student's outputs.

        As in Keras, `metrics` count every row and `weighted_metrics` apply the
        sample weights; rows whose label is the student loss's `ignore_class`
        (unlabeled rows) get weight 0 there. Without labels, only the losses
        are reported.
        """
        compiled = getattr(self, "_compile_metrics", None)
        if compiled is not None and y is not None:
            compiled.update_state(
                y, y_pred, self._labeled_rows_weight(y, y_pred, sample_weight)
            )
        return self.get_metrics_result()

    def _forward(self, x, y, sample_weight, training):
        """Runs both models once; returns the student logits and the loss.

        The loss is scaled for `tf.distribute` as Keras scales its own (each
        replica's share of the global mean), and the logged values are the
        unscaled ones, so both match a single-device run.
        """
        replicas = tf.distribute.get_strategy().num_replicas_in_sync
        x, cached_logits = cache.split_cached(x)
        if cached_logits is None:
            teacher_outputs = {
                key: ops.stop_gradient(value)
                for key, value in self._teacher_views[0](x, training=False).items()
            }
            every_teacher = [teacher_outputs[FINAL_OUTPUT]] + [
                ops.stop_gradient(view(x, training=False)[FINAL_OUTPUT])
                for view in self._teacher_views[1:]
            ]
        else:
            self._check_terms_use_logits_only()
            every_teacher = self._split_cached_logits(cached_logits)
            teacher_outputs = {}
        if self.teacher_outputs == "probabilities":
            every_teacher = [ops.log(ops.cast(t, "float32")) for t in every_teacher]
        student_outputs = self._student_view(x, training=training)
        # Sequence outputs (batch, time, classes) may carry a Keras mask:
        # masked positions count in no loss and no metric.
        mask = keras_backend.get_keras_mask(student_outputs[FINAL_OUTPUT])
        # One float32 copy of the logits feeds every loss, so under
        # mixed_float16 the gradients of all parts are summed in float32 and
        # rounded to float16 once.
        student_logits = ops.cast(student_outputs[FINAL_OUTPUT], "float32")
        if mask is not None:
            keras_backend.set_keras_mask(student_logits, mask)
        student_outputs[FINAL_OUTPUT] = student_logits
        _check_logit_shapes(every_teacher[0], student_logits)
        if mask is not None:
            # Teacher logits at padded positions may be anything (a cache
            # padded with NaN): zeros there keep the gradients finite.
            every_teacher = [_zero_masked(t, mask) for t in every_teacher]
        teacher_outputs[FINAL_OUTPUT] = every_teacher[0]
        batch_size = ops.shape(student_logits)[0]
        sample_weight = _per_position(sample_weight, student_logits)

        loss = ops.zeros((), "float32")
        student_loss = None
        if y is None:
            self._check_alpha_without_labels()
        elif self._student_loss is not None:
            student_loss = self._compute_student_loss(
                y, student_logits, sample_weight
            )
            loss += self._alpha_variable * student_loss

        distillation = ops.zeros((), "float32")
        term_values = []
        shared_temperature = self.temperature  # Learned: computed once.
        mixtures = {}  # Several teachers: one mixture per temperature used.
        for term in self.terms:
            temperature = (
                shared_temperature
                if term.temperature is None
                else term.temperature
            )
            teacher_input = teacher_outputs[term.teacher_layer]
            if len(every_teacher) > 1:
                if id(temperature) not in mixtures:
                    mixtures[id(temperature)] = ensemble.mixture_logits(
                        every_teacher, self.teacher_weights, temperature
                    )
                teacher_input = mixtures[id(temperature)]
            per_example = term.compute(
                teacher_input,
                student_outputs[term.student_layer],
                y,
                temperature,
            )
            value = _sum_over_batch_size(per_example, sample_weight, mask) / replicas
            term_values.append(value)
            distillation += term.weight * value
        loss += (1.0 - self._alpha_variable) * distillation

        regularization = self.student.losses
        for term in self.terms:
            regularization = regularization + term.losses
        if regularization:
            loss += ops.cast(ops.sum(regularization), "float32") / replicas
        # Logged unscaled (x replicas), as Keras logs its own loss.
        self._loss_means.update_state(
            [
                None if value is None else value * replicas
                for value in [loss, student_loss] + term_values
            ]
            + ([shared_temperature] if self.learned_temperature is not None else []),
            batch_size,
        )
        return student_logits, loss

    def _split_cached_logits(self, cached_logits):
        """One `(batch, classes)` tensor per teacher from cached logits."""
        count = len(self.teachers)
        if count == 1:
            return [cached_logits]
        if len(cached_logits.shape) != 3 or cached_logits.shape[1] != count:
            raise ValueError(
                f"The Distiller has {count} teachers, so cached teacher logits "
                f"must have shape (batch, {count}, classes): compute the cache "
                f"with the list of teachers. Received shape {tuple(cached_logits.shape)}"
            )
        return [cached_logits[:, index] for index in range(count)]

    def _check_terms_use_logits_only(self):
        layers = [t.teacher_layer for t in self.terms if t.teacher_layer]
        if layers:
            raise ValueError(
                "Cached teacher outputs hold the teacher's logits only, but "
                f"terms read the teacher layers {layers}. Train on the "
                "uncached dataset (the teacher then runs every step), or drop "
                "those terms."
            )

    def _compute_student_loss(self, y, student_logits, sample_weight):
        try:
            return ops.cast(
                self._student_loss(
                    y, student_logits, sample_weight=sample_weight
                ),
                "float32",
            )
        except (ValueError, tf.errors.InvalidArgumentError) as error:
            raise ValueError(
                "The labels do not fit the student loss "
                f"`{self._student_loss.name}`: labels of shape "
                f"{tuple(y.shape)} and dtype {y.dtype}, student outputs of "
                f"shape {tuple(student_logits.shape)}. Integer class ids need "
                "`SparseCategoricalCrossentropy`, one-hot labels "
                f"`CategoricalCrossentropy`. Keras said: {error}"
            ) from error

    def _check_alpha_without_labels(self):
        # Runs while the step is traced, before any step: reads the current
        # alpha outside the graph.
        with tf.init_scope():
            alpha = float(ops.convert_to_numpy(self._alpha_variable))
        if alpha > 0:
            raise ValueError(
                "The data carries no labels, so alpha must be 0 (pure "
                "distillation). Build the Distiller with alpha=0, or yield "
                f"(x, y) batches. Received: alpha={alpha:g}"
            )

    def _labeled_rows_weight(self, y, y_pred, sample_weight):
        sample_weight = _per_position(sample_weight, y_pred)
        ignore_class = getattr(self._student_loss, "ignore_class", None)
        if ignore_class is None or len(y.shape) == 0:
            return sample_weight
        # Class ids: one per row of `y_pred` without its class axis.
        labeled = ops.cast(
            ops.not_equal(ops.reshape(y, ops.shape(y_pred)[:-1]), ignore_class),
            "float32",
        )
        return labeled if sample_weight is None else labeled * sample_weight

    # Serialization ---------------------------------------------------------

    def _random_states(self):
        """The student's and the terms' random-number states (e.g. Dropout's).

        Keras leaves them out of saved weights; the Distiller saves them with
        its own variables, so a run restored from a checkpoint (for example
        by `keras.callbacks.BackupAndRestore`) draws the same dropout masks
        as an uninterrupted one.
        """
        states = []
        for model in [self.student] + list(self.terms):
            weights = {id(w) for w in model.weights}
            states += [v for v in model.variables if id(v) not in weights]
        return states

    def save_own_variables(self, store):
        super().save_own_variables(store)
        for index, state in enumerate(self._random_states()):
            store[f"random_state_{index}"] = state

    def load_own_variables(self, store):
        keys = list(store.keys())
        own = {k: store[k] for k in keys if not k.startswith("random_state_")}
        super().load_own_variables(own)
        for index, state in enumerate(self._random_states()):
            key = f"random_state_{index}"
            if key in keys:  # Files saved by older versions lack them.
                state.assign(store[key])

    def get_config(self):
        return {
            "name": self.name,
            "trainable": self.trainable,
            "teacher": (
                keras.saving.serialize_keras_object(self.teachers[0])
                if len(self.teachers) == 1
                else [keras.saving.serialize_keras_object(t) for t in self.teachers]
            ),
            "teacher_weights": (
                None if len(self.teachers) == 1 else list(self.teacher_weights)
            ),
            "student": keras.saving.serialize_keras_object(self.student),
            "temperature": (
                float(ops.convert_to_numpy(self._temperature_variable))
                if self.learned_temperature is None
                else keras.saving.serialize_keras_object(self.learned_temperature)
            ),
            "alpha": float(ops.convert_to_numpy(self.alpha)),
            "terms": [keras.saving.serialize_keras_object(t) for t in self.terms],
            "teacher_outputs": self.teacher_outputs,
            "skip_nonfinite_steps": self.skip_nonfinite_steps,
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = dict(config)
        if isinstance(config.get("temperature"), dict):
            config["temperature"] = keras.saving.deserialize_keras_object(
                config["temperature"], custom_objects=custom_objects
            )
        if isinstance(config["teacher"], list):
            config["teacher"] = [
                keras.saving.deserialize_keras_object(t, custom_objects=custom_objects)
                for t in config["teacher"]
            ]
        else:
            config["teacher"] = keras.saving.deserialize_keras_object(
                config["teacher"], custom_objects=custom_objects
            )
        config["student"] = keras.saving.deserialize_keras_object(
            config["student"], custom_objects=custom_objects
        )
        config["terms"] = [
            keras.saving.deserialize_keras_object(
                term, custom_objects=custom_objects
            )
            for term in config["terms"]
        ]
        return cls(**config)


def _per_position(sample_weight, logits):
    """Sample weights as float32, one per example or per sequence position.

    `(batch,)` or `(batch, 1)` weights of `(batch, classes)` logits become
    `(batch,)`; `(batch, time)` weights of `(batch, time, classes)` logits
    stay as they are; `(batch,)` or `(batch, 1)` weights of sequence logits
    weigh every position of the example. Works without a static rank.
    """
    if sample_weight is None:
        return None
    sample_weight = ops.cast(sample_weight, "float32")
    positions = ops.shape(logits)[:-1]
    per_example = ops.reshape(sample_weight, (positions[0], -1))
    if len(logits.shape) == 2:
        return ops.reshape(per_example, positions)
    size = 1
    for axis in positions[1:]:
        size = size * axis
    return ops.reshape(ops.broadcast_to(per_example, (positions[0], size)), positions)


def _zero_masked(logits, mask):
    """`logits` with zeros at the positions where `mask` is False."""
    keep = ops.expand_dims(ops.cast(mask, "bool"), -1)
    return ops.where(keep, logits, ops.zeros_like(logits))


def _sum_over_batch_size(values, sample_weight, mask=None):
    """Keras's default reduction of per-example (or per-position) values.

    `sum(values * sample_weight) / values.size`; with a Keras `mask` (a
    sequence output's padding), `sum(values * sample_weight * mask) /
    sum(mask)`: the mean over valid positions, as Keras reduces its own
    losses. Masked positions contribute nothing, even a non-finite value.
    Under `tf.distribute` each replica reduces its own share, as Keras does.
    """
    values = ops.cast(values, "float32")
    positions = sample_weight if sample_weight is not None else mask
    if positions is not None and len(values.shape) < len(positions.shape):
        sample_weight, mask = _per_example(values, sample_weight, mask), None
    if sample_weight is not None:
        values = values * sample_weight
    if mask is None:
        return ops.sum(values) / ops.cast(ops.size(values), "float32")
    mask = ops.reshape(ops.cast(mask, "bool"), ops.shape(values))
    valid = ops.sum(ops.cast(mask, "float32"))
    return ops.divide_no_nan(ops.sum(ops.where(mask, values, 0.0)), valid)


def _per_example(values, sample_weight, mask):
    """One weight per example for a term that gives one value per example
    (e.g. a feature hint) on a model with sequence outputs: the mean of the
    example's weights over its valid positions."""
    valid = ops.cast(mask if mask is not None else ops.ones_like(sample_weight), "float32")
    if sample_weight is None:
        sample_weight = ops.ones_like(valid)
    valid = ops.reshape(valid, ops.shape(sample_weight))
    axes = tuple(range(len(values.shape), len(sample_weight.shape)))
    return ops.divide_no_nan(
        ops.sum(sample_weight * valid, axis=axes), ops.sum(valid, axis=axes)
    )


class _LossFunction(keras.losses.Loss):
    """Gives a plain loss function Keras's reduction and sample weights."""

    def __init__(self, fn):
        super().__init__(name=getattr(fn, "__name__", "student_loss"))
        self.fn = fn

    def call(self, y_true, y_pred):
        return self.fn(y_true, y_pred)


def _as_loss_object(loss):
    if loss is None or isinstance(loss, keras.losses.Loss):
        return loss
    loss_fn = keras.losses.get(loss)
    if loss_fn is None or not callable(loss_fn):
        raise ValueError(
            "Argument `loss` must be a keras.losses.Loss, a loss function or "
            f"its name. Received: loss={loss!r}"
        )
    if isinstance(loss_fn, keras.losses.Loss):
        return loss_fn
    return _LossFunction(loss_fn)


def _resolve_alpha(alpha, student_loss_weight, distillation_losses):
    if alpha is not None and student_loss_weight is not None:
        raise ValueError(
            "Pass either `alpha` or its keras.distillation name "
            "`student_loss_weight`, not both. Received: "
            f"alpha={alpha}, student_loss_weight={student_loss_weight}"
        )
    if student_loss_weight is not None:
        return validation.check_alpha(student_loss_weight, "student_loss_weight")
    if alpha is None:
        # keras.distillation code keeps keras.distillation's default weight.
        alpha = 0.5 if distillation_losses is not None else 0.1
    return validation.check_alpha(alpha)


def _resolve_terms(terms, distillation_losses, distillation_loss_weights):
    if terms is not None and distillation_losses is not None:
        raise ValueError(
            "Pass either `terms` or its keras.distillation name "
            "`distillation_losses`, not both."
        )
    if terms is None:
        terms = distillation_losses
    if terms is None:
        terms = [KLDivergence()]
    if not isinstance(terms, (list, tuple)):
        terms = [terms]
    terms = [compat.to_term(term) for term in terms]
    if not terms:
        raise ValueError(
            "Argument `terms` must hold at least one distillation term. "
            "Received: terms=[]"
        )
    if distillation_loss_weights is not None:
        if len(distillation_loss_weights) != len(terms):
            raise ValueError(
                "Argument `distillation_loss_weights` must have one weight "
                f"per distillation loss ({len(terms)}). Received: "
                f"distillation_loss_weights={distillation_loss_weights}"
            )
        for term, weight in zip(terms, distillation_loss_weights):
            term.weight.assign(
                validation.check_weight(weight, "distillation_loss_weights")
            )
    names = [term.name for term in terms]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(
            f"Each term needs a unique `name` (logged as `<name>_loss`); "
            f"{duplicates} is used more than once. Pass e.g. "
            f"KLDivergence(name='kl_t2'). Received names: {names}"
        )
    return terms


def _check_terms_read_logits_of_several_teachers(terms):
    layers = [term.teacher_layer for term in terms if term.teacher_layer]
    if layers:
        raise ValueError(
            "With several teachers, terms compare the student with the "
            "teachers' combined soft target, so they cannot read teacher "
            f"layers; these terms read {layers}. Use one teacher for feature "
            "terms."
        )


def _check_models(teacher, student):
    for role, model in (("teacher", teacher), ("student", student)):
        if not isinstance(model, keras.Model):
            raise ValueError(
                f"Argument `{role}` must be a keras.Model. "
                f"Received: {role}={model!r} of type {type(model).__name__}"
            )
    if teacher is student:
        raise ValueError(
            "Arguments `teacher` and `student` must be two different models "
            f"(the teacher is frozen, the student trained). Received the same "
            f"model {teacher.name!r} for both."
        )


def _final_activation(model):
    history = getattr(views.logits_spec(model), "_keras_history", None)
    if history is not None:
        last = history.operation  # The layer that makes the logits.
    elif getattr(model, "layers", None):
        last = model.layers[-1]
    else:
        return None
    if isinstance(last, keras.layers.Softmax):
        return "softmax"
    activation = getattr(last, "activation", None)
    return getattr(activation, "__name__", None)


def _check_ends_in_logits(model, role, outputs):
    if outputs == "logits" and _final_activation(model) == "softmax":
        fix = (
            "pass teacher_outputs='probabilities' (they are then used as "
            "log-probabilities), or remove the softmax"
            if role == "teacher"
            else "remove the softmax (losses take from_logits=True)"
        )
        raise ValueError(
            f"The {role} {model.name!r} ends in a softmax: it outputs "
            f"probabilities, and distillation needs logits. To fix: {fix}."
        )


def _static_output_shape(model):
    logits = views.logits_spec(model)
    return None if logits is None else tuple(logits.shape)


def _check_output_shapes(teacher, student):
    teacher_shape = _static_output_shape(teacher)
    student_shape = _static_output_shape(student)
    if teacher_shape is None or student_shape is None:
        return  # Checked on the first batch instead.
    if teacher_shape[1:] != student_shape[1:]:
        raise ValueError(
            "The teacher and the student must output logits of the same "
            f"shape. Received: teacher output shape {teacher_shape}, student "
            f"output shape {student_shape}"
        )


def _check_logit_shapes(teacher_logits, student_logits):
    if tuple(teacher_logits.shape[1:]) != tuple(student_logits.shape[1:]):
        raise ValueError(
            "The teacher and the student must output logits of the same "
            f"shape. Received: teacher output shape "
            f"{tuple(teacher_logits.shape)}, student output shape "
            f"{tuple(student_logits.shape)}"
        )


def _computes_in_float16(model):
    return any(
        layer.compute_dtype == "float16" for layer in [model] + model.layers
    )
