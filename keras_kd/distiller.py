"""The Distiller: a `keras.Model` that trains a student to mimic a teacher."""

import inspect
import warnings

import keras
from keras import ops

from keras_kd._internal.backends import tf
from keras_kd._internal import backends
from keras_kd._internal import checks
from keras_kd._step import compilation
from keras_kd._step import chunked_terms
from keras_kd._step import construction
from keras_kd._step import distiller_config
from keras_kd._step import distribution
from keras_kd._step import nonfinite
from keras_kd._step import random_states
from keras_kd._step import step_batch
from keras_kd._step import student_loss
from keras_kd._step import output_views
from keras_kd._step import xla
from keras_kd._step.construction import DEFAULT_ALPHA
from keras_kd._step.live_values import LiveValues
from keras_kd._step.live_values import LiveValuesMixin
from keras_kd._step.loss_means import LossMeans
from keras_kd._step.output_views import FINAL_OUTPUT
from keras_kd.data import text_inputs


@keras.saving.register_keras_serializable(package="keras_kd")
class Distiller(LiveValuesMixin, keras.Model):
    """Trains a student on labels and on a frozen teacher's outputs.

    For each batch, with student logits `s` and teacher logits `t`:

    ```
    loss = alpha * student_loss(y, s)
         + (1 - alpha) * sum_i(weight_i * term_i(t, s, y))
         + the student's regularization losses
    ```

    `student_loss` is the `loss` given to `compile()`. Each term is a
    `keras_kd.losses.DistillationTerm` (default: `KLDivergence`, Hinton's
    `T² · KL(softmax(t/T) ‖ softmax(s/T))`), reduced as Keras reduces a loss
    (masks, sample weights, `class_weight`, `tf.distribute` scaling). The
    optimizer given to `compile()` applies the update unchanged. The
    temperature, `alpha` and every term's weight are live values
    (`live_variables`). The teacher is frozen. Calling the distiller runs the
    student alone. History logs `loss`, `student_loss`, one `<name>_loss`
    per term (before weighting), `skipped_steps` and the compiled metrics.

    Args:
        teacher: A trained `keras.Model` that outputs logits, or a list of
            them (their softened probabilities are mixed).
        student: The `keras.Model` to train (logits of the teacher's shape).
        temperature: Positive float, the temperature `T` shared by the logit
            terms, or a `keras_kd.LearnedTemperature`. Defaults to `4.0`.
        alpha: Float in [0, 1], the weight of the student loss (`None`: the
            default). Defaults to `0.1`.
        terms: A `DistillationTerm` or a list of them, with unique names.
            Defaults to `[keras_kd.losses.KLDivergence()]`.
        teacher_returns: `"logits"`, or `"probabilities"` for a teacher
            ending in a softmax (named `teacher_outputs` before 0.3; still
            read). Defaults to `"logits"`.
        teacher_weights: With several teachers, one weight >= 0 per teacher.
            Defaults to `None` (equal).
        skip_nonfinite_steps: Bool: skip (and count as `skipped_steps`) a
            step whose loss or gradients are not finite (docs/reliability.md).
            Defaults to `None`: `True`, but `False` on PyTorch.
        teacher_precision: `"float32"`, `"bfloat16"`, `"float16"` or
            `"auto"`: the teacher pass's number format (docs/performance.md).
            Defaults to `"float32"`.
        augmentation: Keras augmentation layers (one, or a `keras.Sequential`
            of them) or any callable `x -> x`, applied in training only, once
            per batch, to the images both models see (see
            docs/augmentation.md). Defaults to `None`.
        mixing: `"mixup"`, `"cutmix"`, or a `keras.layers.MixUp` / `CutMix`
            layer, for both models and both labels. Defaults to `None`.
        mixing_strength: Mixup's `Beta(a, a)` concentration `a > 0`, or
            cutmix's `factor` in (0, 1]. Defaults to `None` (Keras's
            defaults, 0.2 and 1.0).
        teacher_inputs: Optional function from the student's (augmented)
            batch to the teacher's inputs. Defaults to `None`.
        chunk_size: keras-hub causal LMs: positions per chunk of a loss made from
            the hidden states, never holding all logits; `"auto"`: from 32,000
            tokens of vocabulary; `None`: never (docs/language_models.md). Defaults to `"auto"`.
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
        self, teacher, student, temperature=4.0, alpha=DEFAULT_ALPHA, terms=None,
        teacher_returns=construction.DEFAULT_TEACHER_RETURNS, teacher_weights=None, skip_nonfinite_steps=None,
        teacher_precision="float32", augmentation=None, mixing=None, mixing_strength=None,
        teacher_inputs=None, chunk_size="auto", name="distiller", **kwargs,
    ):
        teacher_returns = _renamed_argument(kwargs, teacher_returns=teacher_returns)
        checks.refuse_peer_spellings(kwargs)
        super().__init__(name=name, **kwargs)
        parts = construction.checked_parts(
            teacher, student, temperature, alpha, terms, teacher_returns, teacher_weights,
            skip_nonfinite_steps, teacher_precision, augmentation, mixing, mixing_strength,
            teacher_inputs, chunk_size,
        )
        self.teachers, self.teacher_weights = parts.teachers, parts.teacher_weights
        self.student, self.terms, self.teacher_returns = student, parts.terms, teacher_returns
        self.teacher_inputs, self.learned_temperature = teacher_inputs, parts.learned_temperature
        self._teachers, self._augmentation = parts.teacher_pass, parts.augmentation
        self._student_view, self._chunks = parts.student_view, parts.chunks
        self._temperature_variable = construction.live_weight(self, "temperature", parts.temperature)
        self._alpha_variable = construction.live_weight(self, "alpha", parts.alpha)
        self._live_values = LiveValues(
            self._temperature_variable, self._alpha_variable, self.learned_temperature, self.terms
        )
        self._student_loss = self._student_loss_config = None
        self._loss_means = LossMeans(
            construction.logged_losses(self.terms, self.learned_temperature, self.extra_logged_losses)
        )
        self._step_guard = nonfinite.StepGuard(parts.skip_nonfinite_steps)  # Before metrics.
        self._skipped_steps = self._step_guard.skipped_steps
        construction.add_augmentation_seeds(self, self._augmentation)
        self._xla_update = None  # The step after augmentation, under XLA.
        self._in_evaluate = False
        self.built = student.built and all(one.built for one in self.teachers)

    # Not tracked as a sublayer (Keras would then refuse `jit_compile`); its
    # seed states are saved with the Distiller's own variables.
    augmentation = property(lambda self: self._augmentation.augmentation, doc="The `augmentation` given.")
    mixing = property(lambda self: self._augmentation.mixing, doc="The mixing layer, or `None`.")
    teacher_precision = property(lambda self: self._teachers.precision, doc="The teacher pass's format, as given.")
    chunk_size = property(lambda self: self._chunks.chunk_size, doc="The `chunk_size` given.")
    chunked = property(lambda self: self._chunks.active, doc="Whether the loss is computed chunk by chunk.")

    teacher_precision_report = property(
        lambda self: self._teachers.precision_report(),
        doc="""`{"precision", "top1_agreement", "kl"}` measured on the first batch
        of `fit` (`None` before, or with the float32 teacher).""",
    )

    @property
    def skip_nonfinite_steps(self):
        """Whether a non-finite step is skipped; settable before `fit`."""
        return self._step_guard.enabled

    @skip_nonfinite_steps.setter
    def skip_nonfinite_steps(self, value):
        self._step_guard.enabled = construction.check_skipping(value)
        self.train_function = None  # Traced with the old setting.

    teacher_outputs = property(
        lambda self: distiller_config.renamed(self, "teacher_outputs"), doc="Deprecated: `teacher_returns`."
    )

    teacher = property(
        lambda self: self.teachers[0] if len(self.teachers) == 1 else list(self.teachers),
        doc="The teacher, or the list of teachers when there are several.",
    )

    def compile(self, optimizer="adam", loss=None, metrics=None, **kwargs):
        """Configures the distiller for training.

        Args:
            optimizer: An optimizer or its name; it trains the student as
                given (in a `LossScaleOptimizer` only for a float16 student).
                Defaults to `"adam"`.
            loss: The student loss on the labels; required when `alpha > 0`.
                Defaults to `None`.
            metrics: Metrics on the student's outputs. Defaults to `None`.
            **kwargs: Other `keras.Model.compile` arguments.

        Returns:
            The distiller itself, so that `compile(...).fit(...)` chains.
        """
        checks.check_compile_arguments(loss, float(ops.convert_to_numpy(self.alpha)), kwargs)
        optimizer = compilation.optimizer_for(self.student, optimizer)
        super().compile(optimizer=optimizer, metrics=metrics, **kwargs)
        self._student_loss = compilation.student_loss_for(loss, self.mixing)
        self._student_loss_config = loss
        self._loss_means.reported = [
            name for name in self._loss_means.names
            if name != "student_loss" or self._student_loss is not None
        ]
        return self

    def get_compile_config(self):
        return distiller_config.compile_config(super().get_compile_config(), self._student_loss_config)

    def compile_from_config(self, config):
        distiller_config.compile_from(self, config)

    @property
    def metrics(self):
        # Evaluation skips no step: it reports no count (the same keys as its
        # step's logs, so Keras reads the synced metrics at its end).
        own = [self._loss_means, self._skipped_steps]
        counted = self.skip_nonfinite_steps and not self._in_evaluate
        return compilation.shown_metrics(own, own if counted else own[:1], super().metrics)

    def call(self, inputs, training=False):
        """Runs the student; returns its logits (in Keras's own step on JAX
        and PyTorch, also the batch's view: see `keras_kd._step.step_batch`)."""
        marked = step_batch.marked_inputs(inputs)
        if marked is None:
            x = step_batch.read(inputs, None, None, self._augmentation, self.student, False).x
            return output_views.logits_of(self.student(x, training=training))
        batch = step_batch.read(marked, None, None, self._augmentation, self.student, training)
        return step_batch.step_outputs(batch, self._student_view(batch.x, training=training))

    def train_step(self, *args):
        if not backends.is_tensorflow():  # JAX: `(state, data)`; PyTorch: `data`.
            *state, data = args
            result = super().train_step(*state, step_batch.mark(data))
            if backends.name() == backends.JAX:
                result = self._step_guard.keep_finite_jax_state(self, state[0], result, self.student)
            return result
        batch = step_batch.read(*step_batch.unpack(args[0]), self._augmentation, self.student, True)
        return (self._xla_update or self._update)(batch)

    def _update(self, batch):
        """The step on the batch's view: both passes, the loss, the update."""
        teacher_outputs = self._teachers(batch.x, batch.teacher_logits)
        kept = self._step_guard.keep(self.student)
        with tf.GradientTape() as tape:
            student_outputs = self._student_view(batch.x, training=True)
            loss = self._loss(batch, student_outputs, teacher_outputs, training=True)
            scaled_loss = self.optimizer.scale_loss(loss)
        variables = self.trainable_variables
        gradients = tape.gradient(scaled_loss, variables)
        self._step_guard.apply(self.optimizer, loss, gradients, variables, kept)
        return distribution.as_reducible_logs(
            self.compute_metrics(batch.x, batch.y, student_outputs.get(FINAL_OUTPUT), batch.sample_weight)
        )

    def test_step(self, *args):
        if not backends.is_tensorflow():
            *state, data = args
            return super().test_step(*state, step_batch.mark(data))
        batch = step_batch.read(*step_batch.unpack(args[0]), self._augmentation, self.student, False)
        student_outputs = self._student_view(batch.x, training=False)
        self._loss(batch, student_outputs, self._teachers(batch.x, batch.teacher_logits), training=False)
        logs = self.compute_metrics(batch.x, batch.y, student_outputs.get(FINAL_OUTPUT), batch.sample_weight)
        return distribution.as_reducible_logs(logs)

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True, mix=None):
        """The batch's total loss; records each part for the logs.

        Args:
            x: The inputs (with cached teacher logits, if any).
            y: The labels, or `None` (then `alpha` must be 0).
            y_pred: What `call` returned in Keras's own step, or the student's
                logits, or `None` to run the student on `x`.
            sample_weight: Optional sample weights.
            training: Whether the student runs in training mode.
            mix: How `x` was mixed (`keras_kd.data.Mix`), or `None`.

        Returns:
            The scalar float32 loss; under `tf.distribute` this replica's
            share of it, as Keras's own `compute_loss` returns.
        """
        from_step = step_batch.read_step_outputs(y_pred, y, sample_weight)
        if from_step is not None:
            batch, student_outputs = from_step
        else:
            batch = step_batch.read(x, y, sample_weight, self._augmentation, self.student, False)
            batch = batch._replace(mix=mix)
            student_outputs = self._given_student_outputs(batch.x, y_pred, training)
        loss = self._loss(batch, student_outputs, self._teachers(batch.x, batch.teacher_logits), training)
        if from_step is not None and training and backends.name() == backends.JAX:
            self._step_guard.record_loss(loss)
        return loss

    def _given_student_outputs(self, x, y_pred, training):
        """From given logits, or the student's pass (also for terms on layers)."""
        if y_pred is None or self._student_view.layer_names:
            return self._student_view(x, training=training)
        return {FINAL_OUTPUT: output_views.float32_copy(y_pred)}

    def _loss(self, batch, student_outputs, teacher_outputs, training):
        """The total loss of the batch's outputs (from the logits, or chunk by
        chunk from the hidden states); records its parts."""
        if batch.y is None:
            checks.check_alpha_without_labels(self.alpha)
        parts = chunked_terms.loss_parts(
            student_outputs, self._chunks, self.terms, self._student_loss, self.learned_temperature,
            lambda y, logits, weights: self.compute_metrics(None, y, logits, weights),
        ).total(
            batch, student_outputs, teacher_outputs, self.temperature, self._alpha_variable, self.student, training
        )
        self._loss_means.record(parts, output_views.batch_size(student_outputs))
        return parts["loss"]

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        """Updates the compiled metrics on the student's logits (rows whose
        label is the loss's `ignore_class` weigh 0; without labels, only the
        losses are reported)."""
        if y is None:
            return self.get_metrics_result()
        y_pred = step_batch.logits_of_step_outputs(y_pred)
        if y_pred is None:  # A chunked loss updated them chunk by chunk.
            return self.get_metrics_result()
        weights = student_loss.labeled_rows_weight(self._student_loss, y, y_pred, sample_weight)
        return super().compute_metrics(x, y, y_pred, weights)

    def fit(self, *args, **kwargs):
        """`keras.Model.fit` (raw strings through the student's preprocessor),
        warning for epochs with skipped steps; logs `teacher_agreement` with a
        cheaper `teacher_precision`."""
        arguments = inspect.signature(super().fit).bind(*args, **kwargs)
        text_inputs.prepare_bound(self.student, arguments, "fit")
        if backends.is_tensorflow():
            self._teachers.prepare_for_fit(
                self.distribute_strategy, arguments.arguments.get("x"),
                float(ops.convert_to_numpy(self._temperature_variable)),
            )
        arguments.arguments["callbacks"] = compilation.fit_callbacks(
            arguments.arguments.get("callbacks"),
            self._skipped_steps.name if self.skip_nonfinite_steps else None,
            self.teacher_precision_report,
        )
        return super().fit(*arguments.args, **arguments.kwargs)

    def evaluate(self, *args, **kwargs):
        """`keras.Model.evaluate`; raw strings go through the student's preprocessor."""
        bound = inspect.signature(super().evaluate).bind(*args, **kwargs)
        text_inputs.prepare_bound(self.student, bound, "evaluate")
        self._in_evaluate = True  # A mode for `metrics`, not a batch's data.
        try:
            return super().evaluate(*bound.args, **bound.kwargs)
        finally:
            self._in_evaluate = False

    def predict(self, *args, **kwargs):
        """`keras.Model.predict` of the student's logits; raw strings go
        through the student's preprocessor."""
        bound = inspect.signature(super().predict).bind(*args, **kwargs)
        text_inputs.prepare_bound(self.student, bound, "predict")
        return super().predict(*bound.args, **bound.kwargs)

    def make_train_function(self, force=False):
        # Falls back to no XLA if XLA cannot compile the step (see xla.py).
        if not backends.is_tensorflow():
            return super().make_train_function(force=force)
        self._teachers.prepare(self.distribute_strategy)
        if self.train_function is None or force:
            self._xla_update = xla.build_train_function(
                self, super().make_train_function, self._update, self._augmentation.enabled,
                lambda data: self._update(step_batch.unaugmented(data, self.mixing)),
            )
        return self.train_function

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
        # Overrides a private Trainer method (see _internal/keras_internals.py): under
        # multi-worker, build from one replica's share of the first batch.
        iterator, data_batch = distribution.symbolic_build_inputs(
            getattr(self, "distribute_strategy", None), iterator, data_batch
        )
        return super()._maybe_symbolic_build(iterator=iterator, data_batch=data_batch)

    def save_own_variables(self, store):
        super().save_own_variables(store)
        random_states.add_to_store(random_states.of_distiller(self), store)

    def load_own_variables(self, store):
        own, saved = random_states.split(store)
        super().load_own_variables(own)
        random_states.assign_saved(random_states.of_distiller(self), saved)

    def get_config(self):
        return distiller_config.distiller_config(self)

    @classmethod
    def from_config(cls, config, custom_objects=None):
        return cls(**distiller_config.constructor_arguments(config, custom_objects))


def _renamed_argument(kwargs, **given):
    """The value of the one renamed argument in `given` (`new=value`), taken
    from its old name in `kwargs` (with a warning) when given there."""
    ((new, value),) = given.items()
    (old,) = [o for o, n in distiller_config.RENAMED_ARGUMENTS.items() if n == new]
    if old not in kwargs:
        return value
    if value != construction.DEFAULT_TEACHER_RETURNS:
        raise ValueError(
            f"Arguments `{old}` and `{new}` are one argument (`{old}` is its old "
            f"name): pass `{new}` only. Received: {old}={kwargs[old]!r}, {new}={value!r}"
        )
    warnings.warn(
        f"Argument `{old}` is renamed `{new}`; the old name will be removed.",
        DeprecationWarning,
        stacklevel=3,
    )
    return kwargs.pop(old)

