"""The loss of a causal-LM pair, chunk by chunk of positions, from hidden states.

A keras-hub `CausalLM` computes its logits as
`backbone.token_embedding(hidden_states, reverse=True)`: (batch, positions,
vocabulary) floats. At Gemma's 256,000-token vocabulary one batch of 8 × 1,024
positions is 8.4 GB of float32 logits per model, and the unchunked step holds
the teacher's, the student's, their softmaxes and the gradients at once.

Here the step never holds them. The models run up to their final hidden
states; then, for each chunk of positions, each model's own output projection
(`token_embedding(h, reverse=True)`) makes that chunk's logits, the student
loss and every term are computed on them, and so is their gradient with
respect to the chunk's hidden states and the projection's weights (the
backend's own autodiff, in the same pass: no chunk is recomputed). Only the
per-position values, the hidden-state gradients and one gradient of the
projection's weights survive a chunk. The loss is then reduced exactly as the
unchunked path reduces it (Keras's reduction, sample weights, the student
loss's own mask), and the gradients reach the step's own differentiation
through a term whose value is zero and whose gradient is theirs.

This needs the weight of each position's value in the loss before the chunks
run: every Keras reduction and `reduction.reduce_term` are linear in the
values once the weights and masks are known, so the weights are the gradient
of the reduction itself, taken on zeros.

Compiled metrics are updated chunk by chunk (Keras metrics accumulate over
batches, so over chunks too): they report what the unchunked step reports.
"""

import warnings

import keras
import numpy as np
from keras import ops

from keras_kd._internal import autodiff
from keras_kd._internal import keras_internals as internals
from keras_kd._step import reduction
from keras_kd._step import step_loss

# The student outputs' key for its final hidden states (no logits) when the
# loss is chunked.
HIDDEN_STATES = "hidden_states"
AUTO = "auto"
# "auto" chunks a pair whose vocabulary has at least this many tokens
# (benchmarks/lm_memory.py measured the step at 32k: results/lm_memory.md).
AUTO_MIN_VOCABULARY = 32_000
# "auto" makes chunks of at most this many logits per sequence, in at most
# MAX_AUTO_CHUNKS chunks (each is traced into the step).
AUTO_CHUNK_LOGITS = 2**22
MAX_AUTO_CHUNKS = 32
# The probe that checks a model's logits are its projection of its hidden states.
PROBE_POSITIONS = 8


def check_chunk_size(chunk_size):
    """`chunk_size` checked: `"auto"`, `None` or a positive int."""
    if chunk_size is None or chunk_size == AUTO:
        return chunk_size
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, (int, np.integer)) or chunk_size < 1:
        raise ValueError(
            "Argument `chunk_size` must be 'auto', None (never chunk) or a "
            f"positive int (positions per chunk). Received: chunk_size={chunk_size!r}"
        )
    return int(chunk_size)


class Projection:
    """A causal LM split into its backbone and its output projection.

    Args:
        model: A keras-hub `CausalLM` whose logits are
            `model.backbone.token_embedding(hidden_states, reverse=True)`.
    """

    def __init__(self, model):
        self.model = model
        self.backbone = model.backbone
        self.embedding = model.backbone.token_embedding

    @property
    def vocabulary_size(self):
        return self.embedding.input_dim

    def hidden_states(self, x, training):
        """The backbone's final hidden states `(batch, positions, width)`."""
        return self.backbone(x, training=training)

    def logits(self, hidden_states, weights=None):
        """float32 logits of `hidden_states`; with `weights` (values of the
        projection's trainable variables), computed from those values."""
        if weights is None:
            logits = self.embedding(hidden_states, reverse=True)
        else:
            fixed = [variable.value for variable in self.embedding.non_trainable_variables]
            logits, _ = self.embedding.stateless_call(list(weights), fixed, hidden_states, reverse=True)
        return ops.cast(logits, "float32")

    def trainable_weights(self):
        """The current values of the projection's trainable variables."""
        return [variable.value for variable in self.embedding.trainable_variables]


def _why_not_causal_lm(model):
    backbone = getattr(model, "backbone", None)
    if backbone is None:
        return "is not a keras-hub CausalLM (it has no `backbone`)"
    if not isinstance(getattr(backbone, "token_embedding", None), keras.layers.ReversibleEmbedding):
        return "has no `backbone.token_embedding` (a ReversibleEmbedding) as its output projection"
    return None


def why_not_projected(model):
    """Why `model`'s logits are not its projection of its hidden states (a
    sentence), or `None` when they are (checked on a probe sequence)."""
    reason = _why_not_causal_lm(model)
    if reason is not None:
        return reason
    probe = _probe_inputs(model, model.backbone.token_embedding.input_dim)
    if probe is None:
        return "does not take `token_ids` (its inputs cannot be probed)"
    try:
        own = ops.convert_to_numpy(model(probe, training=False))
        projection = Projection(model)
        projected = ops.convert_to_numpy(projection.logits(projection.hidden_states(probe, False)))
    except (ValueError, TypeError) as error:
        return f"could not be probed ({error})"
    if own.shape != projected.shape or not np.allclose(own, projected, rtol=1e-4, atol=1e-4):
        return (
            "computes its logits otherwise than `backbone.token_embedding(hidden_states, "
            "reverse=True)` (e.g. a cap after the projection)"
        )
    return None


def _probe_inputs(model, vocabulary_size):
    spec = getattr(model, "input", None)
    if not isinstance(spec, dict) or "token_ids" not in spec:
        return None
    ids = (np.arange(PROBE_POSITIONS, dtype="int32")[None] * 7 + 1) % vocabulary_size
    return {
        name: ids if name == "token_ids" else np.ones((1, PROBE_POSITIONS), tensor.dtype)
        for name, tensor in spec.items()
    }


class ChunkPlan:
    """Whether a Distiller computes its loss chunk by chunk, and how.

    Args:
        chunk_size: The Distiller's `chunk_size`.
        student: A `Projection` of the student, or `None` (never chunked).
        teachers: One `Projection` per teacher.
    """

    def __init__(self, chunk_size, student=None, teachers=()):
        self.chunk_size = chunk_size
        self.student = student
        self.teachers = list(teachers)

    @property
    def active(self):
        return self.student is not None

    def positions_per_chunk(self, positions):
        """Positions per chunk for sequences of `positions` positions."""
        if self.chunk_size != AUTO:
            return min(self.chunk_size, positions)
        logits = positions * self.student.vocabulary_size
        chunks = min(MAX_AUTO_CHUNKS, max(1, -(-logits // AUTO_CHUNK_LOGITS)))
        return -(-positions // chunks)

    def hidden_state_view(self):
        """The student's pass under chunking: `{HIDDEN_STATES: h}`."""
        return HiddenStateView(self.student)


class HiddenStateView:
    """Runs the student up to its final hidden states (its view under chunking)."""

    layer_names = ()

    def __init__(self, projection):
        self.projection = projection

    def __call__(self, inputs, training):
        return {HIDDEN_STATES: self.projection.hidden_states(inputs, training)}


def plan(chunk_size, teachers, student, terms, teacher_precision, teacher_returns, augmentation,
         learned_temperature):
    """The `ChunkPlan` of a Distiller's arguments: active for a pair of
    keras-hub causal LMs whose logits are their projections (at a vocabulary
    of at least `AUTO_MIN_VOCABULARY` under `"auto"`), else inactive, with a
    warning when chunking was asked for (or due) but cannot apply."""
    chunk_size = check_chunk_size(chunk_size)
    if chunk_size is None:
        return ChunkPlan(chunk_size)
    reason = _why_not_causal_lm(student)
    if chunk_size == AUTO and (
        reason is not None or student.backbone.token_embedding.input_dim < AUTO_MIN_VOCABULARY
    ):
        return ChunkPlan(chunk_size)  # Not a causal LM, or a small vocabulary: nothing to say.
    reason = why_not_projected(student)
    if reason is not None:
        reason = f"the student {student.name!r} {reason}"
    else:
        reason = _why_not_chunked(teachers, terms, teacher_precision, teacher_returns, augmentation,
                                  learned_temperature)
    if reason is not None:
        _fall_back(reason)
        return ChunkPlan(chunk_size)
    return ChunkPlan(chunk_size, Projection(student), [Projection(t) for t in teachers])


def _why_not_chunked(teachers, terms, teacher_precision, teacher_returns, augmentation,
                     learned_temperature):
    for teacher in teachers:
        reason = why_not_projected(teacher)
        if reason is not None:
            return f"the teacher {teacher.name!r} {reason}"
    if any(t.teacher_layer is not None or t.student_layer is not None for t in terms):
        return "a term reads a layer's output (chunks hold logits only)"
    if teacher_precision != "float32":
        return f"teacher_precision={teacher_precision!r} runs a copy of the teacher (not chunked yet)"
    if teacher_returns != "logits":
        return f"teacher_returns={teacher_returns!r}: a causal LM's projection gives logits"
    if augmentation.enabled:
        return "augmentation or mixing is set"
    if learned_temperature is not None:
        return "the temperature is learned (its gradient is not chunked yet)"
    return None


def _fall_back(reason):
    warnings.warn(
        f"The loss is computed on full logits, not chunk by chunk: {reason}. "
        "Pass chunk_size=None to choose the full logits and silence this.",
        UserWarning,
        stacklevel=4,
    )


def loss_parts(student_outputs, chunk_plan, terms, loss, learned_temperature, update_metrics):
    """The `LossParts` for the student's outputs: `ChunkedLossParts` for hidden
    states (which update the metrics per chunk), else the unchunked ones."""
    if HIDDEN_STATES in student_outputs:
        return ChunkedLossParts(chunk_plan, terms, loss, update_metrics)
    return step_loss.LossParts(terms, loss, learned_temperature)


class ChunkedLossParts(step_loss.LossParts):
    """`LossParts` from the student's hidden states, chunk by chunk.

    Args:
        plan: The active `ChunkPlan`.
        terms, loss: As in `LossParts` (no learned temperature).
        update_metrics: `f(y, logits, sample_weight)` updating the compiled
            metrics on one chunk.
    """

    def __init__(self, plan, terms, loss, update_metrics):
        super().__init__(terms, loss, None)
        self.plan = plan
        self.update_metrics = update_metrics

    def total(self, batch, student_outputs, teacher_outputs, temperature, alpha, student, training=True):
        """As `LossParts.total`; in training, the loss also carries the
        gradients of the chunks (its value is unchanged by them)."""
        hidden = student_outputs[HIDDEN_STATES]
        positions = hidden.shape[1]
        if positions is None:
            raise ValueError(
                "Computing the loss chunk by chunk needs sequences of a fixed "
                "length (the preprocessor's `sequence_length`); pass chunk_size=None."
            )
        sample_weight = reduction.per_position_weights(batch.sample_weight, hidden)
        labeled = batch.y is not None and self.loss is not None
        names = (["student_loss"] if labeled else []) + [f"{t.name}_loss" for t in self.terms]
        mask = self._student_mask(batch.y) if labeled else None

        def combine(values):
            parts = self._reduce(values, sample_weight, mask)
            return self._weighted_sum(parts, alpha)

        coefficients = _linear_weights(combine, names, hidden) if training else None
        weights = self.plan.student.trainable_weights()
        chunks = _chunk_bounds(positions, self.plan.positions_per_chunk(positions))
        values, hidden_gradients, weight_gradients = {name: [] for name in names}, [], None
        previous = None  # Each chunk waits for the one before (see `_after`).
        for start, stop in chunks:
            chunk = _Chunk(start, stop, teacher_outputs, self.plan.teachers, batch.y, previous)
            objective = self._objective(chunk, temperature, labeled, mask, coefficients)
            hidden_chunk = _after(hidden[:, start:stop], previous)
            if training:
                _, (chunk_values, logits), gradients = autodiff.value_and_gradients(
                    objective, [hidden_chunk] + weights
                )
                hidden_gradients.append(gradients[0])
                weight_gradients = _add(weight_gradients, gradients[1:])
            else:
                _, (chunk_values, logits) = objective(hidden_chunk, *weights)
            for name in names:
                values[name].append(chunk_values[name])
            previous = [chunk_values[names[0]]] + (gradients if training else [])
            if batch.y is not None:
                self._update_metrics(chunk.y, logits, None if sample_weight is None else sample_weight[:, start:stop])
        values = {name: ops.concatenate(pieces, axis=1) for name, pieces in values.items()}
        parts = self._reduce(values, sample_weight, mask)
        loss = self._weighted_sum(parts, alpha) + self.regularization(student)
        if training:
            loss += _carrying(ops.concatenate(hidden_gradients, axis=1), hidden)
            for gradient, weight in zip(weight_gradients, weights):
                loss += _carrying(gradient, weight)
        parts.setdefault("student_loss", None)
        distillation = sum(term.weight * parts[f"{term.name}_loss"] for term in self.terms)
        parts.update(loss=loss, total_loss=loss, distillation_loss=distillation)
        return parts

    def _update_metrics(self, y, logits, sample_weight):
        """Updates the compiled metrics on one chunk, its positions flattened
        into one axis: a Keras metric averages each sequence over its
        positions first, which over chunks of unequal length would weigh
        positions unequally; over single positions it reports what the
        unchunked step reports."""
        positions = ops.shape(y)[0] * ops.shape(y)[1]
        flat = lambda tensor: ops.reshape(tensor, (positions,) + tuple(tensor.shape[2:]))  # noqa: E731
        self.update_metrics(flat(y), flat(logits), None if sample_weight is None else flat(sample_weight))

    def _objective(self, chunk, temperature, labeled, mask, coefficients):
        """`f(hidden_chunk, *weights) -> (Σ coefficient · value, (values, logits))`."""

        def objective(hidden_chunk, *weights):
            logits = self.plan.student.logits(hidden_chunk, weights)
            values = {}
            if labeled:
                values["student_loss"] = self._student_values(chunk.y, logits, mask is not None)
            for term in self.terms:
                term_temperature = temperature if term.temperature is None else term.temperature
                teacher = chunk.teacher_outputs.for_term(term, term_temperature)
                values[f"{term.name}_loss"] = ops.cast(
                    term.compute(teacher, logits, chunk.y, term_temperature), "float32"
                )
            if coefficients is None:
                return ops.zeros(()), (values, logits)
            total = sum(
                ops.sum(coefficients[name][:, chunk.start:chunk.stop] * value)
                for name, value in values.items()
            )
            return total, (values, ops.stop_gradient(logits))

        return objective

    def _student_values(self, y, logits, masked):
        """The compiled loss's unreduced values on one chunk (as
        `keras.losses.Loss.__call__` computes them before reducing)."""
        dtype = self.loss.dtype
        values = self.loss.call(ops.convert_to_tensor(y, dtype), ops.convert_to_tensor(logits, dtype))
        if (internals.get_keras_mask(values) is not None) != masked:
            raise ValueError(
                f"The student loss {self.loss.name!r} masks its values in a way the "
                "chunked loss cannot know in advance; pass chunk_size=None."
            )
        return ops.cast(values, "float32")

    def _student_mask(self, y):
        """The mask the compiled loss puts on its values: its `ignore_class`."""
        ignore_class = getattr(self.loss, "ignore_class", None)
        if ignore_class is None:
            return None
        return ops.not_equal(ops.cast(y, "int32"), ignore_class)

    def _reduce(self, values, sample_weight, mask):
        """`{name: scalar}` of per-position values, reduced as the unchunked
        step reduces them."""
        parts = {}
        for name, value in values.items():
            if name == "student_loss":
                parts[name] = ops.cast(
                    internals.reduce_weighted_values(
                        value, sample_weight, mask, reduction=self.loss.reduction, dtype=self.loss.dtype
                    ),
                    "float32",
                )
            else:
                parts[name] = reduction.reduce_term(value, sample_weight, None)
        return parts

    def _weighted_sum(self, parts, alpha):
        distillation = sum(term.weight * parts[f"{term.name}_loss"] for term in self.terms)
        total = (1.0 - alpha) * distillation
        if "student_loss" in parts:
            total += alpha * parts["student_loss"]
        return total


class _Chunk:
    """The positions `[start, stop)` of a batch: their labels and teacher logits."""

    def __init__(self, start, stop, teacher_outputs, projections, y, previous):
        self.start, self.stop = start, stop
        self.y = None if y is None else y[:, start:stop]
        self.teacher_outputs = teacher_outputs.positions(
            start, stop, projections, lambda hidden: _after(hidden, previous)
        )


def _after(tensor, previous):
    """`tensor`, made to depend on what the `previous` chunk computed (its
    values and, in training, its gradients), its value unchanged (plus 0 ·
    their sum). Without it XLA schedules every chunk at once and holds all
    their logits, as the unchunked step does (measured: the same temporary
    memory), and TensorFlow's executor may defer a chunk's gradient, keeping
    its logits alive; with it the chunks run one after the other and reuse
    one chunk's memory."""
    if previous is None:
        return tensor
    done = sum(ops.sum(ops.stop_gradient(ops.cast(part, "float32"))) for part in previous)
    return tensor + ops.cast(0.0 * done, tensor.dtype)


def _chunk_bounds(positions, size):
    return [(start, min(start + size, positions)) for start in range(0, positions, size)]


def _linear_weights(combine, names, like):
    """`{name: d combine / d values[name]}`, each `(batch, positions)`: the
    weight of each position's value in the (linear) reduction `combine`."""
    zeros = ops.zeros_like(ops.cast(like[..., 0], "float32"))
    _, _, gradients = autodiff.value_and_gradients(
        lambda *values: (combine(dict(zip(names, values))), ()), [zeros] * len(names)
    )
    return dict(zip(names, gradients))


def _add(total, gradients):
    if total is None:
        return list(gradients)
    return [a + b for a, b in zip(total, gradients)]


def _carrying(gradient, tensor):
    """Zero, with gradient `gradient` with respect to `tensor`."""
    inner = ops.sum(ops.stop_gradient(ops.cast(gradient, tensor.dtype)) * tensor)
    return ops.cast(inner - ops.stop_gradient(inner), "float32")
