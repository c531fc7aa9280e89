"""The parts of a step's loss: the student loss and each term, reduced as
Keras reduces a loss, from the outputs of both models' passes."""

from keras import ops

from keras_kd._internal import keras_internals as internals
from keras_kd._internal import checks
from keras_kd._step import reduction
from keras_kd._step import student_loss
from keras_kd._step.output_views import FINAL_OUTPUT


class LossParts:
    """Computes a batch's loss parts for the Distiller's terms.

    Args:
        terms: The Distiller's `DistillationTerm`s.
        loss: The student loss as a `keras.losses.Loss` (from `compile`), or
            `None`.
        learned_temperature: A `keras_kd.LearnedTemperature`, or `None`.
    """

    def __init__(self, terms, loss, learned_temperature):
        self.terms = terms
        self.loss = loss
        self.learned_temperature = learned_temperature

    def compute(self, batch, student_outputs, teacher_outputs, temperature):
        """`{"student_loss": ..., "<term>_loss": ...}` (and the learned
        `"temperature"`), each reduced over the batch as Keras reduces a loss.

        Args:
            batch: The `keras_kd._step.step_batch.StepBatch`.
            student_outputs: `{FINAL_OUTPUT: float32 logits, layer: output}`.
            teacher_outputs: The batch's `TeacherOutputs`.
            temperature: The shared temperature (a variable or a tensor).

        Returns:
            The dict of scalar parts; `student_loss` is `None` without labels
            or a student loss.
        """
        logits = student_outputs[FINAL_OUTPUT]
        if checks.compares_logits(self.terms):
            checks.check_logit_shapes(teacher_outputs.logits[0].shape, logits.shape)
        mask = internals.get_keras_mask(logits)
        if mask is not None:
            teacher_outputs.zero_masked(mask)
        sample_weight = reduction.per_position_weights(batch.sample_weight, logits)
        parts = {"student_loss": self._student_loss(batch, logits, sample_weight)}
        if batch.mix is not None and sample_weight is not None:
            sample_weight = student_loss.mixed_weights(sample_weight, batch.mix)
        for term in self.terms:
            term_temperature = temperature if term.temperature is None else term.temperature
            per_example = term.compute(
                teacher_outputs.for_term(term, term_temperature),
                student_outputs[term.student_layer], batch.y, term_temperature,
            )
            parts[f"{term.name}_loss"] = reduction.reduce_term(per_example, sample_weight, mask)
        if self.learned_temperature is not None:
            parts["temperature"] = temperature
        return parts

    def total(self, batch, student_outputs, teacher_outputs, temperature, alpha, student, training=True):
        """The parts of `compute` with the total: `loss` (also logged as
        `total_loss`), `distillation_loss` (the weighted sum of the terms).

        `loss = alpha * student_loss + (1 - alpha) * distillation_loss +`
        the student's and terms' regularization losses.

        Args:
            batch, student_outputs, teacher_outputs, temperature: As in
                `compute`.
            alpha: The weight of the student loss (a variable).
            student: The student (its regularization losses).
            training: Whether the step trains (unused here; see
                `chunked_terms.ChunkedLossParts`).

        Returns:
            The dict of scalar parts.
        """
        parts = self.compute(batch, student_outputs, teacher_outputs, temperature)
        distillation = sum(term.weight * parts[f"{term.name}_loss"] for term in self.terms)
        loss = (1.0 - alpha) * distillation + self.regularization(student)
        if parts["student_loss"] is not None:
            loss += alpha * parts["student_loss"]
        parts.update(loss=loss, total_loss=loss, distillation_loss=distillation)
        return parts

    def _student_loss(self, batch, logits, sample_weight):
        if batch.y is None or self.loss is None:
            return None
        if batch.mix is not None:
            return student_loss.mixed_student_loss(
                self.loss, batch.y, logits, sample_weight, batch.mix
            )
        return student_loss.student_loss(self.loss, batch.y, logits, sample_weight)

    def regularization(self, student):
        """The student's and the terms' regularization losses, as this
        replica's share (0.0 when there are none)."""
        losses = list(student.losses)
        for term in self.terms:
            losses += term.losses
        if not losses:
            return 0.0
        return internals.scale_loss_for_distribution(ops.cast(ops.sum(losses), "float32"))
