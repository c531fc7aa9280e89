"""The Distiller: a `keras.Model` that trains a student to mimic a teacher."""

import inspect
import warnings

import keras
from keras import ops

from keras_kd.backends import tf
from keras_kd import _keras_internals as internals
from keras_kd import augmentation as augmentation_module
from keras_kd import backends
from keras_kd import cache
from keras_kd import checks
from keras_kd import distribution
from keras_kd import ensemble
from keras_kd import nonfinite
from keras_kd import random_states
from keras_kd import reduction
from keras_kd import replay
from keras_kd import student_loss
from keras_kd import teacher_precision as teacher_precision_module
from keras_kd import validation
from keras_kd import views
from keras_kd import xla
from keras_kd.learned_temperature import LearnedTemperature
from keras_kd.live_values import LiveValues
from keras_kd.live_values import LiveValuesMixin
from keras_kd.loss_means import LossMeans
from keras_kd.teachers import Teachers
from keras_kd.views import FINAL_OUTPUT
from keras_kd.views import OutputView


DEFAULT_ALPHA = 0.1


@keras.saving.register_keras_serializable(package="keras_kd")
class Distiller(LiveValuesMixin, keras.Model):
    """Trains a student on labels and on a frozen teacher's outputs.

    For each batch, with student logits `s` and teacher logits `t`:

    ```
    loss = alpha * student_loss(y, s)
         + (1 - alpha) * sum_i(weight_i * term_i(t, s, y))
         + the student's regularization losses
    ```

    `student_loss` is the `loss` given to `compile()`, with all its Keras
    conventions. Each term is a `keras_kd.losses.DistillationTerm` (default:
    `KLDivergence`, Hinton's `T² · KL(softmax(t/T) ‖ softmax(s/T))`), reduced
    by Keras's own loss reduction: masks, sample weights and `class_weight`,
    `"sum_over_batch_size"`, the scaling under `tf.distribute`. The loss is
    computed in `compute_loss`; the optimizer given to `compile()` applies
    the update unchanged.

    The temperature, `alpha` and every term's weight are live values
    (`live_variables`): assigning one changes the loss from the next step on
    without retracing. The teacher is frozen (non-trainable, always called
    with `training=False`). Calling the distiller runs the student alone.

    History logs `loss`, `student_loss` (before weighting), one `<name>_loss`
    per term (before weighting), `skipped_steps`, the compiled metrics on the
    student's outputs, and their `val_` twins.

    Args:
        teacher: A trained `keras.Model` that outputs logits, or a list of
            them: the soft target is then the weighted mixture of their
            temperature-softened probabilities.
        student: The `keras.Model` to train; it outputs logits of the
            teacher's shape.
        temperature: Positive float, the temperature `T` shared by the logit
            terms, or a `keras_kd.LearnedTemperature`. Defaults to `4.0`.
        alpha: Float in [0, 1], the weight of the student loss (`None`: the
            default). Defaults to `0.1`.
        terms: A `DistillationTerm` or a list of them, with unique names.
            Defaults to `[keras_kd.losses.KLDivergence()]`.
        teacher_outputs: `"logits"`, or `"probabilities"` for a teacher ending
            in a softmax. Defaults to `"logits"`.
        teacher_weights: With several teachers, one weight >= 0 per teacher.
            Defaults to `None` (equal).
        skip_nonfinite_steps: Bool. Skip (and count as `skipped_steps`) a step
            whose loss or gradients are not finite; `False` applies every
            update, as Keras does. Defaults to `None`: `True` on TensorFlow
            and JAX, `False` on PyTorch, which cannot skip an update without
            a host sync (see `keras_kd.nonfinite`).
        teacher_precision: The number format of the teacher's pass:
            `"float32"`, `"bfloat16"`, `"float16"` (a copy of the teacher in
            that format runs; its agreement with the float32 teacher on the
            first batch is in `teacher_precision_report`, with a warning when
            low), or `"auto"` (the cheaper format is kept only where it is
            clearly faster, see `keras_kd.teacher_precision`). Defaults to
            `"float32"`.
        augmentation: Applied in training only, once per batch, to the
            images both models see ("consistent augmentation"): Keras
            augmentation layers (one, or a `keras.Sequential` of them, drawn
            per replica and replayable, see `keras_kd.augmentation`) or any
            callable `x -> x`, on every backend (on JAX, the random draws of
            a plain function, not a Keras layer, are not part of the step's
            state). `evaluate` and `predict` never augment. With
            `jit_compile=True` it runs before the XLA-compiled rest of the
            step (Keras's projective transforms do not compile under XLA).
            Defaults to `None`.
        mixing: `"mixup"`, `"cutmix"` (or a `keras.layers.MixUp` /
            `keras.layers.CutMix` layer): mixes the (augmented) images of each
            training batch for both models; the student loss becomes
            `w * loss(y) + (1 - w) * loss(y[partner])` with the user's own loss
            and the drawn weights `w`. With `alpha=0` this is function
            matching. Defaults to `None`.
        mixing_strength: How strongly images are mixed: for mixup the
            concentration `a > 0` of `Beta(a, a)` (Keras's MixUp `alpha`), for
            cutmix a value in (0, 1] (Keras's CutMix `factor`: the upper end
            of the range each batch draws its concentration from). Defaults to
            `None` (Keras's defaults, 0.2 and 1.0).
        teacher_inputs: Optional function from the student's (augmented)
            batch to the teacher's inputs, for a teacher that takes another
            resolution or encoding of the same view. Defaults to `None` (the
            same inputs).
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

    # Extra names logged by subclasses (`keras_kd.compat.Distiller`).
    extra_logged_losses = ()

    def __init__(
        self,
        teacher,
        student,
        temperature=4.0,
        alpha=0.1,
        terms=None,
        teacher_outputs="logits",
        teacher_weights=None,
        skip_nonfinite_steps=None,
        teacher_precision="float32",
        augmentation=None,
        mixing=None,
        mixing_strength=None,
        teacher_inputs=None,
        name="distiller",
        **kwargs,
    ):
        checks.refuse_peer_spellings(kwargs)
        super().__init__(name=name, **kwargs)
        teachers, teacher_weights = ensemble.resolve_teachers(teacher, teacher_weights)
        for one in teachers:
            checks.check_models(one, student)
        learned = temperature if isinstance(temperature, LearnedTemperature) else None
        if learned is not None:
            backends.require_tensorflow("LearnedTemperature")
        if skip_nonfinite_steps is None:
            skip_nonfinite_steps = backends.name() != backends.TORCH
        temperature = validation.check_temperature(learned.initial if learned else temperature)
        alpha = validation.check_alpha(DEFAULT_ALPHA if alpha is None else alpha)
        terms = checks.as_terms(terms)
        if checks.check_bool(skip_nonfinite_steps, "skip_nonfinite_steps"):
            _refuse_skipping_on_torch()
        if teacher_precision != "float32":
            backends.require_tensorflow("teacher_precision")
        self._teachers = Teachers(
            teachers, teacher_weights, teacher_outputs,
            [t.teacher_layer for t in terms], teacher_precision,
        )
        checks.check_pair(teachers, student, terms, teacher_outputs)
        self._teachers.freeze()  # Only once every check has passed.

        self.teachers = teachers
        self.teacher_weights = teacher_weights
        self.student = student
        self.terms = terms
        self.teacher_outputs = teacher_outputs
        self._temperature_variable = self._live_weight("temperature", temperature)
        self.learned_temperature = learned
        self._alpha_variable = self._live_weight("alpha", alpha)
        self._live_values = LiveValues(
            self._temperature_variable, self._alpha_variable, learned, terms
        )
        self._student_view = OutputView(student, [t.student_layer for t in terms], "student")
        for term in terms:
            term.build_for(
                self._teachers.views[0].shape(term.teacher_layer),
                self._student_view.shape(term.student_layer),
            )
        self._student_loss = self._student_loss_config = None
        self._loss_means = LossMeans(self._logged_losses())
        self._step_guard = nonfinite.StepGuard(skip_nonfinite_steps)  # Before metrics.
        self._skipped_steps = self._step_guard.skipped_steps
        self._evaluating = False
        self._views = augmentation_module.ConsistentAugmentation(
            augmentation, mixing, mixing_strength
        )
        if teacher_inputs is not None and not callable(teacher_inputs):
            raise ValueError(
                "Argument `teacher_inputs` must be a function from the "
                "student's (augmented) inputs to the teacher's. Received: "
                f"teacher_inputs={teacher_inputs!r}"
            )
        self.teacher_inputs = teacher_inputs
        checks.check_augmentation_shape(self._views, student)
        if not backends.is_tensorflow():
            # JAX's step reads and returns every variable as state: the
            # augmentation's seeds join it, or its draws would repeat.
            for layer in self._views.random_layers:
                internals.add_seed_generators(self, internals.seed_generators(layer))
        self._xla_update = None  # The step after augmentation, under XLA.
        self._step_student_outputs = None  # See `call`.
        self._keras_training_step = False  # See `train_step`.
        self._step_view = None  # See `call`.
        if student.built and all(one.built for one in teachers):
            self.built = True

    @property
    def augmentation(self):
        """The `augmentation` given. Not tracked as a sublayer (Keras would
        then refuse `jit_compile` for the whole model); its seed states are
        saved with the Distiller's own variables."""
        return self._views.augmentation

    @property
    def mixing(self):
        """The mixing layer (`keras.layers.MixUp`/`CutMix`), or `None`."""
        return self._views.mixing

    @property
    def teacher_precision(self):
        """The `teacher_precision` given (`"auto"` stays `"auto"`)."""
        return self._teachers.precision

    @property
    def teacher_precision_report(self):
        """`{"precision", "top1_agreement", "kl"}` measured on the first batch
        of `fit` (`None` before, or with the float32 teacher)."""
        report = self._teachers.report
        chosen = self._teachers.chosen_precision
        return None if report is None else {"precision": chosen, **report}

    @property
    def skip_nonfinite_steps(self):
        """Whether a step with a non-finite loss or gradient is skipped; may
        be changed before `fit` (the step is then rebuilt)."""
        return self._step_guard.enabled

    @skip_nonfinite_steps.setter
    def skip_nonfinite_steps(self, value):
        if checks.check_bool(value, "skip_nonfinite_steps"):
            _refuse_skipping_on_torch()
        self._step_guard.enabled = value
        self.train_function = None  # Traced with the old setting.

    def _live_weight(self, name, value):
        return self.add_weight(
            name=name, shape=(), dtype="float32", trainable=False,
            initializer=keras.initializers.Constant(value),
        )

    def _logged_losses(self):
        learned = ["temperature"] if self.learned_temperature is not None else []
        terms = [f"{term.name}_loss" for term in self.terms]
        return ["loss", "student_loss"] + terms + learned + list(self.extra_logged_losses)

    @property
    def teacher(self):
        """The teacher, or the list of teachers when there are several."""
        return self.teachers[0] if len(self.teachers) == 1 else list(self.teachers)

    # Compilation -----------------------------------------------------------

    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):
        """Configures the distiller for training; returns the distiller.

        Args:
            optimizer: An optimizer or its name; it trains the student as
                given (wrapped in a `keras.optimizers.LossScaleOptimizer` only
                when the student computes in float16). Defaults to `"adam"`.
            loss: The student loss on the labels (a loss object, function or
                name), e.g. `keras.losses.SparseCategoricalCrossentropy(
                from_logits=True)`. Required when `alpha > 0`. Defaults to
                `None`.
            metrics: Metrics on the student's outputs, as in
                `keras.Model.compile`. Defaults to `None`.
            **kwargs: Other `keras.Model.compile` arguments (`run_eagerly`,
                `jit_compile`, `steps_per_execution`, `weighted_metrics`...).

        Returns:
            The distiller itself, so that `compile(...).fit(...)` chains.
        """
        checks.check_compile_arguments(loss, float(ops.convert_to_numpy(self.alpha)), kwargs)
        optimizer = keras.optimizers.get(optimizer)
        if checks.computes_in_float16(self.student) and not isinstance(
            optimizer, keras.optimizers.LossScaleOptimizer
        ):
            optimizer = keras.optimizers.LossScaleOptimizer(optimizer)
        super().compile(optimizer=optimizer, metrics=metrics, **kwargs)
        self._student_loss = student_loss.as_loss_object(loss)
        if self.mixing is not None:
            student_loss.check_mixable(self._student_loss)
        self._student_loss_config = loss
        self._loss_means.reported = [
            name for name in self._loss_means.names
            if name != "student_loss" or self._student_loss is not None
        ]
        return self

    def get_compile_config(self):
        config = super().get_compile_config()
        if config:
            config["loss"] = keras.saving.serialize_keras_object(self._student_loss_config)
            config["optimizer"] = _portable_optimizer_config(config.get("optimizer"))
        return config

    def compile_from_config(self, config):
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built:
            self.optimizer.build(self.trainable_variables)

    @property
    def metrics(self):
        # Keras's own "loss" tracker is replaced by the loss means; evaluation
        # skips no step, so it reports no count.
        own = [self._loss_means, self._skipped_steps]
        shown = own[:1] if self._evaluating or not self.skip_nonfinite_steps else own
        return shown + [
            metric for metric in super().metrics
            if all(metric is not m for m in own)
            and not (isinstance(metric, keras.metrics.Mean) and metric.name == "loss")
        ]

    # Steps -----------------------------------------------------------------

    def call(self, inputs, training=False):
        if self._keras_training_step and self._views.enabled:
            # Keras's own step (JAX, PyTorch) calls the student here first:
            # the view is drawn once, and kept for `compute_loss`'s teachers.
            inputs, cached_logits, drawn = replay.split(inputs)
            if drawn is not None:
                backends.require_tensorflow("ReplayCache")
            self._step_view = self._training_view(inputs, cached_logits, drawn)
            inputs = self._step_view[0]
        inputs, _ = cache.split_cached(inputs)
        if self._student_view.layer_names and not backends.is_tensorflow():
            # Keras's own step (JAX, PyTorch) passes `compute_loss` only the
            # logits: the other outputs terms read are kept for it, so the
            # student still runs once per step (BatchNorm updates once).
            outputs = self._student_pass(inputs, training)
            self._step_student_outputs = outputs
            return outputs[FINAL_OUTPUT]
        return views.logits_of(self.student(inputs, training=training))

    def train_step(self, *args):
        if not backends.is_tensorflow():
            # Keras's own step (JAX: `(state, data)`; PyTorch: `data`) calls
            # `call` for the student and `compute_loss` for the rest.
            self._keras_training_step = True
            try:
                result = super().train_step(*args)
                if backends.name() == backends.JAX:
                    result = self._step_guard.keep_finite_jax_state(self, args[0], result, self.student)
                return result
            finally:
                self._keras_training_step = False
                self._step_view = None
        (data,) = args
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        x, cached_logits, drawn = replay.split(x)
        x, mix = self._training_view(x, cached_logits, drawn)
        update = self._xla_update or self._update
        return update(x, y, sample_weight, cached_logits, mix)

    def _training_view(self, x, cached_logits, drawn):
        """The one view of the batch both models see, and how it was mixed."""
        views = self._views
        checks.check_view_sources(views, cached_logits, drawn)
        if drawn is not None:
            x = replay.replay(views, x, drawn)
        elif views.augmentation is not None:
            x = views.view(x)[0]
        x, mix = views.mix(x)
        if views.enabled:
            checks.check_input_shape(x.shape, self.student, "student", checks.KEEP_SIZE)
        return x, mix

    def _update(self, x, y, sample_weight, cached_logits, mix):
        """The step on the batch's view: both passes, the loss, the update."""
        teacher_outputs = self._teachers(self._teacher_view(x), cached_logits)
        kept = self._step_guard.keep(self.student)
        with tf.GradientTape() as tape:
            y_pred = self._student_pass(x, training=True)
            loss = self.compute_loss(
                x, y, y_pred, sample_weight, training=True,
                teacher_outputs=teacher_outputs, mix=mix,
            )
            scaled_loss = self.optimizer.scale_loss(loss)
        variables = self.trainable_variables
        gradients = tape.gradient(scaled_loss, variables)
        self._step_guard.apply(self.optimizer, loss, gradients, variables, kept)
        return distribution.as_reducible_logs(
            self.compute_metrics(x, y, y_pred[FINAL_OUTPUT], sample_weight)
        )

    def _teacher_view(self, x):
        if self.teacher_inputs is None:
            return x
        x = self.teacher_inputs(x)
        checks.check_input_shape(
            getattr(x, "shape", None), self.teachers[0], "teacher (after `teacher_inputs`)",
            "Make `teacher_inputs` return the teacher's input shape.",
        )
        return x

    def test_step(self, *args):
        if not backends.is_tensorflow():
            return super().test_step(*args)
        (data,) = args
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        x, cached_logits, drawn = replay.split(x)
        checks.check_not_replayed(drawn)
        teacher_outputs = self._teachers(self._teacher_view(x), cached_logits)
        y_pred = self._student_pass(x, training=False)
        self.compute_loss(
            x, y, y_pred, sample_weight, training=False,
            teacher_outputs=teacher_outputs,
        )
        return distribution.as_reducible_logs(
            self.compute_metrics(x, y, y_pred[FINAL_OUTPUT], sample_weight)
        )

    def _student_pass(self, x, training):
        """The student's outputs terms read, its logits as one float32 copy.

        Under mixed_float16 the gradients of every part of the loss are then
        summed in float32 and rounded to float16 once; a sequence output's
        Keras mask stays on the copy.
        """
        outputs = self._student_view(x, training=training)
        outputs[FINAL_OUTPUT] = _float32_logits(outputs[FINAL_OUTPUT])
        return outputs

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True,
        teacher_outputs=None, mix=None,
    ):
        """The batch's total loss; records each part for the logs.

        Args:
            x: The inputs (with cached teacher logits, if any).
            y: The labels, or `None` (then `alpha` must be 0).
            y_pred: The student's outputs from its pass in the step (a dict
                `{None: logits, layer: output}`), or its logits, or `None` to
                run the student on `x`.
            sample_weight: Optional sample weights.
            training: Whether the student runs in training mode.
            teacher_outputs: The teachers' `TeacherOutputs` for `x`, or `None`
                to run the teachers on `x`.
            mix: How `x` was mixed (`keras_kd.augmentation.Mix`), or `None`.

        Returns:
            The scalar float32 loss; under `tf.distribute` this replica's
            share of it, as Keras's own `compute_loss` returns.
        """
        if self._step_view is not None:  # Drawn in `call`, this step.
            (x, mix), self._step_view = self._step_view, None
            teacher_outputs = self._teachers(self._teacher_view(x), None)
        if teacher_outputs is None:
            x, cached_logits, drawn = replay.split(x)
            checks.check_not_replayed(drawn)
            teacher_outputs = self._teachers(self._teacher_view(x), cached_logits)
        kept = self._step_student_outputs
        self._step_student_outputs = None
        if kept is not None and y_pred is kept[FINAL_OUTPUT]:
            y_pred = kept  # From `call` in this step.
        elif y_pred is None or (not isinstance(y_pred, dict) and self._student_view.layer_names):
            y_pred = self._student_pass(x, training)  # Terms read its layers too.
        elif not isinstance(y_pred, dict):
            y_pred = {FINAL_OUTPUT: _float32_logits(y_pred)}
        student_logits = y_pred[FINAL_OUTPUT]
        if checks.compares_logits(self.terms):
            checks.check_logit_shapes(teacher_outputs.logits[0].shape, student_logits.shape)
        mask = internals.get_keras_mask(student_logits)
        if mask is not None:
            teacher_outputs.zero_masked(mask)
        sample_weight = reduction.per_position_weights(sample_weight, student_logits)
        parts = {"student_loss": self._compute_student_loss(y, student_logits, sample_weight, mix)}
        if mix is not None and sample_weight is not None:
            sample_weight = student_loss.mixed_weights(sample_weight, mix)
        parts.update(self._compute_terms(teacher_outputs, y_pred, y, sample_weight, mask))
        distillation = sum(
            term.weight * parts[f"{term.name}_loss"] for term in self.terms
        )
        alpha = self._alpha_variable
        loss = (1.0 - alpha) * distillation + self._regularization_loss()
        if parts["student_loss"] is not None:
            loss += alpha * parts["student_loss"]
        parts.update(loss=loss, total_loss=loss, distillation_loss=distillation)
        self._record(parts, ops.shape(student_logits)[0])
        if self._keras_training_step and backends.name() == backends.JAX:
            self._step_guard.record_loss(loss)
        return loss

    def _compute_student_loss(self, y, student_logits, sample_weight, mix=None):
        if y is None:
            checks.check_alpha_without_labels(self.alpha)
            return None
        if self._student_loss is None:
            return None
        if mix is not None:
            return student_loss.mixed_student_loss(
                self._student_loss, y, student_logits, sample_weight, mix
            )
        return student_loss.student_loss(self._student_loss, y, student_logits, sample_weight)

    def _compute_terms(self, teacher_outputs, student_outputs, y, sample_weight, mask):
        """`{"<term>_loss": value}`, each reduced as Keras reduces a loss."""
        shared_temperature = self.temperature  # A learned one: computed once.
        values = {}
        for term in self.terms:
            temperature = shared_temperature if term.temperature is None else term.temperature
            per_example = term.compute(
                teacher_outputs.for_term(term, temperature),
                student_outputs[term.student_layer], y, temperature,
            )
            values[f"{term.name}_loss"] = reduction.reduce_term(per_example, sample_weight, mask)
        if self.learned_temperature is not None:
            values["temperature"] = shared_temperature
        return values

    def _regularization_loss(self):
        losses = list(self.student.losses)
        for term in self.terms:
            losses += term.losses
        if not losses:
            return 0.0
        return internals.scale_loss_for_distribution(ops.cast(ops.sum(losses), "float32"))

    def _record(self, parts, batch_size):
        """Updates the logged means with the global (unscaled) values."""
        self._loss_means.update_state(
            [
                parts[name] if name == "temperature" or parts[name] is None
                else internals.unscale_loss_for_distribution(parts[name])
                for name in self._loss_means.names
            ],
            batch_size,
        )

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Updates the compiled metrics on the student's outputs.

        As in Keras, `metrics` count every row and `weighted_metrics` apply the
        sample weights; rows whose label is the student loss's `ignore_class`
        (unlabeled rows) get weight 0 there. Without labels, only the losses
        are reported.
        """
        if y is None:
            return self.get_metrics_result()
        weights = student_loss.labeled_rows_weight(self._student_loss, y, y_pred, sample_weight)
        return super().compute_metrics(x, y, y_pred, weights)

    # Training loops ---------------------------------------------------------

    def fit(self, *args, **kwargs):
        """Trains the student; same arguments and return value as `keras.Model.fit`.

        Besides Keras's behaviour, a step whose loss or gradients are not
        finite is skipped (`skip_nonfinite_steps`, see `keras_kd.nonfinite`):
        weights and optimizer state stay as they were, `skipped_steps` counts
        such steps per epoch, and a warning is given once per epoch with some.
        With a cheaper `teacher_precision`, the first batch's agreement with
        the float32 teacher is measured once and logged as `teacher_agreement`.
        """
        keras_fit = super().fit
        arguments = inspect.signature(keras_fit).bind(*args, **kwargs)
        if backends.is_tensorflow():
            first = None
            if self._teachers.wants_first_batch():  # Read only then: it costs a batch.
                first = teacher_precision_module.first_inputs(arguments.arguments.get("x"))
            self._teachers.prepare(
                self.distribute_strategy, first,
                float(ops.convert_to_numpy(self._temperature_variable)),
            )
        callbacks = list(arguments.arguments.get("callbacks") or [])
        if self.skip_nonfinite_steps:
            callbacks.append(nonfinite.SkippedStepsWarning(self._skipped_steps.name))
        if self.teacher_precision_report is not None:
            callbacks.append(teacher_precision_module.AgreementLog(self.teacher_precision_report))
        arguments.arguments["callbacks"] = callbacks
        return keras_fit(*arguments.args, **arguments.kwargs)

    def evaluate(self, *args, **kwargs):
        """Evaluates the student; same arguments as `keras.Model.evaluate`."""
        self._evaluating = True
        try:
            return super().evaluate(*args, **kwargs)
        finally:
            self._evaluating = False

    def make_train_function(self, force=False):
        # Falls back to no XLA if XLA cannot compile the step (see xla.py).
        if not backends.is_tensorflow():
            return super().make_train_function(force=force)
        self._teachers.prepare(self.distribute_strategy)
        if self.train_function is None or force:
            self._xla_update = None
            if self._views.enabled and self.jit_compile and not self.run_eagerly:
                self._build_split_train_function()
            else:
                super().make_train_function(force=True)
                self.train_function = xla.guarded_function(
                    self, self.train_function, self.train_step, self.make_train_function
                )
        return self.train_function

    def _build_split_train_function(self):
        """With augmentation under `jit_compile=True`: the augmentation runs in
        the graph, the rest of the step (both passes, loss, update) under XLA.

        Keras's projective transforms (`RandomTranslation`, `RandomRotation`,
        `RandomZoom`) and the mixing layers' Gamma draws have no XLA kernel,
        so compiling the whole step would fail, and fall back to no XLA.
        """
        self._jit_compile = False  # Keras builds the outer step as a graph...
        try:
            super().make_train_function(force=True)
        finally:
            self._jit_compile = True
        # ... which calls the XLA-compiled update.
        self._xla_update = tf.function(self._update, jit_compile=True, reduce_retracing=True)
        self.train_function = xla.guarded_function(
            self, self.train_function, self._unaugmented_step, self.make_train_function
        )

    def _unaugmented_step(self, data):
        """The XLA part of an augmented step, on the raw batch (the XLA probe)."""
        x, y, sample_weight = keras.utils.unpack_x_y_sample_weight(data)
        x, cached_logits, _ = replay.split(x)
        mix = None
        if self._views.mixing is not None:
            batch = ops.shape(x)[0]
            mix = augmentation_module.Mix(ops.ones((batch,), "float32"), ops.arange(batch))
        return self._update(x, y, sample_weight, cached_logits, mix)

    def make_test_function(self, force=False):
        if not backends.is_tensorflow():
            return super().make_test_function(force=force)
        self._teachers.prepare(self.distribute_strategy)
        if self.test_function is None or force:
            super().make_test_function(force=True)
            self.test_function = xla.guarded_function(
                self, self.test_function, self.test_step, self.make_test_function
            )
        return self.test_function

    def _maybe_symbolic_build(self, iterator=None, data_batch=None):
        # Overrides a private Trainer method (see _keras_internals): under
        # multi-worker, build from one replica's share of the first batch,
        # which the collective strategy can reduce (see distribution.py).
        strategy = getattr(self, "distribute_strategy", None)
        if iterator is not None and strategy is not None and distribution.is_multi_worker(strategy):
            for _, _, batches in iterator:
                data_batch = distribution.local_share(next(batches), strategy)
                break
            iterator = None
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    # Serialization ---------------------------------------------------------

    def _random_states(self):
        # Appended in this order, so that files saved before augmentation
        # existed load their states at the same indices. The augmentation is
        # not tracked as a sublayer: all its variables are saved here.
        states = random_states.random_states([self.student] + list(self.terms))
        return states + [v for layer in self._views.random_layers for v in layer.variables]

    def save_own_variables(self, store):
        super().save_own_variables(store)
        random_states.add_to_store(self._random_states(), store)

    def load_own_variables(self, store):
        own, saved = random_states.split(store)
        super().load_own_variables(own)
        random_states.assign_saved(self._random_states(), saved)

    def get_config(self):
        serialize = keras.saving.serialize_keras_object
        return {
            "name": self.name,
            "trainable": self.trainable,
            "teacher": (
                serialize(self.teachers[0]) if len(self.teachers) == 1
                else [serialize(t) for t in self.teachers]
            ),
            "teacher_weights": None if len(self.teachers) == 1 else list(self.teacher_weights),
            "student": serialize(self.student),
            "temperature": (
                float(ops.convert_to_numpy(self._temperature_variable))
                if self.learned_temperature is None
                else serialize(self.learned_temperature)
            ),
            "alpha": float(ops.convert_to_numpy(self.alpha)),
            "terms": [serialize(t) for t in self.terms],
            "teacher_outputs": self.teacher_outputs,
            "skip_nonfinite_steps": self.skip_nonfinite_steps,
            "teacher_precision": self.teacher_precision,
            **self._views.get_config(),
            "teacher_inputs": (
                None if self.teacher_inputs is None
                else serialize(self.teacher_inputs)
            ),
        }

    @classmethod
    def from_config(cls, config, custom_objects=None):
        config = deserialize_config(config, custom_objects)
        if config.get("skip_nonfinite_steps") and backends.name() == backends.TORCH:
            warnings.warn(
                "This Distiller was saved with skip_nonfinite_steps=True, which "
                "keras_kd does not do on the 'torch' backend: it loads with "
                "skip_nonfinite_steps=False (every update is applied, as Keras does).",
                stacklevel=2,
            )
            config["skip_nonfinite_steps"] = False
        return cls(**config)


# Where Keras keeps an optimizer's backend-specific twin (PyTorch's fused Adam...).
_BACKEND_MODULES = "keras.src.backend."


def _portable_optimizer_config(config):
    """A serialized optimizer that names `keras.optimizers`, not the saving
    backend's own class: Keras saves PyTorch's `Adam` as
    `keras.src.backend.torch.optimizers.torch_adam.Adam`, which TensorFlow
    cannot train with. Nested optimizers (`LossScaleOptimizer`) too."""
    if isinstance(config, dict):
        config = {key: _portable_optimizer_config(value) for key, value in config.items()}
        if str(config.get("module", "")).startswith(_BACKEND_MODULES):
            config["module"] = "keras.optimizers"
    return config


def _refuse_skipping_on_torch():
    backends.refuse_on_torch(
        "skip_nonfinite_steps=True",
        "PyTorch applies each update in place, so skipping one would need a "
        "copy of every weight per step or a host sync per step (see "
        "keras_kd.nonfinite); leave it at None or False there",
    )


# Config entries holding serialized Keras objects (or lists of them).
SERIALIZED_ENTRIES = (
    "teacher", "student", "temperature", "terms", "augmentation", "mixing", "teacher_inputs",
)


def deserialize_config(config, custom_objects=None, entries=SERIALIZED_ENTRIES):
    """`config` with the serialized objects under `entries` loaded."""

    def load(value):
        if isinstance(value, list):
            return [load(item) for item in value]
        if isinstance(value, dict):
            return keras.saving.deserialize_keras_object(value, custom_objects=custom_objects)
        return value

    return {
        key: load(value) if key in entries else value
        for key, value in config.items()
    }


def _float32_logits(logits):
    """A float32 copy of `logits` that keeps their Keras mask."""
    mask = internals.get_keras_mask(logits)
    logits = ops.cast(logits, "float32")
    if mask is not None:
        internals.set_keras_mask(logits, mask)
    return logits
