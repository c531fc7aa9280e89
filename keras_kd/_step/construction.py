"""What the Distiller is built from, checked: every constructor check in one
place, so that `Distiller.__init__` only wires the checked parts."""

import collections

import keras

from keras_kd._internal import keras_internals as internals
from keras_kd._internal import backends
from keras_kd._internal import checks
from keras_kd._step import chunked_terms
from keras_kd._step import several_teachers
from keras_kd.data.augmentation import ConsistentAugmentation
from keras_kd.losses.learned_temperature import LearnedTemperature
from keras_kd.losses.base import DistillationTerm
from keras_kd.losses.kl_divergence import KLDivergence
from keras_kd._step.teachers import Teachers
from keras_kd._step.output_views import OutputView

DEFAULT_ALPHA = 0.1
DEFAULT_TEACHER_RETURNS = "logits"

Parts = collections.namedtuple(
    "Parts",
    [
        "teachers", "teacher_weights", "teacher_pass", "student_view", "terms",
        "temperature", "learned_temperature", "alpha", "skip_nonfinite_steps", "augmentation",
        "chunks",
    ],
)
Parts.__doc__ = """The checked parts of a Distiller (see `checked_parts`)."""


def checked_parts(
    teacher, student, temperature, alpha, terms, teacher_returns, teacher_weights,
    skip_nonfinite_steps, teacher_precision, augmentation, mixing, mixing_strength,
    teacher_inputs, chunk_size,
):
    """Checks the Distiller's arguments and builds its parts from them.

    Args: the `keras_kd.Distiller` arguments of the same names.

    Returns:
        A `Parts`. The teachers are frozen only once every check has passed.
    """
    teachers, teacher_weights = several_teachers.resolve_teachers(teacher, teacher_weights)
    for one in teachers:
        checks.check_models(one, student)
        checks.check_language_model_pair(one, student)
    learned = temperature if isinstance(temperature, LearnedTemperature) else None
    if learned is not None:
        backends.require_tensorflow("LearnedTemperature")
    temperature = checks.check_temperature(learned.initial if learned else temperature)
    alpha = checks.check_alpha(DEFAULT_ALPHA if alpha is None else alpha)
    terms = as_terms(terms)
    if skip_nonfinite_steps is None:
        skip_nonfinite_steps = backends.name() != backends.TORCH
    check_skipping(skip_nonfinite_steps)
    if teacher_precision != "float32":
        backends.require_tensorflow("teacher_precision")
    teacher_pass = Teachers(
        teachers, teacher_weights, teacher_returns,
        [t.teacher_layer for t in terms], teacher_precision, teacher_inputs,
    )
    checks.check_pair(teachers, student, terms, teacher_returns)
    student_view = OutputView(student, [t.student_layer for t in terms], "student", float32_logits=True)
    for term in terms:
        term.build_for(
            teacher_pass.output_views[0].shape(term.teacher_layer),
            student_view.shape(term.student_layer),
        )
    consistent_augmentation = ConsistentAugmentation(augmentation, mixing, mixing_strength)
    checks.check_teacher_inputs(teacher_inputs)
    checks.check_augmentation_shape(consistent_augmentation, student)
    chunks = chunked_terms.plan(
        chunk_size, teachers, student, terms, teacher_precision, teacher_returns,
        consistent_augmentation, learned,
    )
    if chunks.active:  # Both passes stop at the final hidden states.
        student_view, teacher_pass.projections = chunks.hidden_state_view(), chunks.teachers
    teacher_pass.freeze()
    return Parts(
        teachers, teacher_weights, teacher_pass, student_view, terms, temperature,
        learned, alpha, skip_nonfinite_steps, consistent_augmentation, chunks,
    )


def live_weight(model, name, value):
    """A scalar float32 non-trainable weight of `model` (a live value) set to `value`."""
    initializer = keras.initializers.Constant(value)
    return model.add_weight(name=name, shape=(), dtype="float32", trainable=False, initializer=initializer)


def as_terms(terms):
    """`terms` as a non-empty list of uniquely named `DistillationTerm`s.

    `None` gives the default, `[KLDivergence()]`.
    """
    if terms is None:
        terms = [KLDivergence()]
    terms = list(terms) if isinstance(terms, (list, tuple)) else [terms]
    if not terms:
        raise ValueError(
            "Argument `terms` must hold at least one distillation term. "
            "Received: terms=[]"
        )
    for term in terms:
        if not isinstance(term, DistillationTerm):
            raise ValueError(
                "Each term must be a `keras_kd.losses.DistillationTerm`. For "
                "`keras.distillation` losses use `keras_kd.compat.Distiller`, "
                f"or convert them with `keras_kd.compat.to_term`. Received: "
                f"{term!r} of type {type(term).__name__}"
            )
    checks.check_term_names(terms)
    return terms


def logged_losses(terms, learned_temperature, extra=()):
    """The names the Distiller logs, in order: `loss`, `student_loss`, one
    `<term>_loss` per term, the learned `temperature`, and `extra`."""
    learned = ["temperature"] if learned_temperature is not None else []
    names = [f"{term.name}_loss" for term in terms]
    return ["loss", "student_loss"] + names + learned + list(extra)


def check_skipping(value):
    """`skip_nonfinite_steps` checked: a bool, and not `True` on PyTorch."""
    if checks.check_bool(value, "skip_nonfinite_steps"):
        backends.refuse_on_torch(
            "skip_nonfinite_steps=True",
            "PyTorch applies each update in place, so skipping one would need a "
            "copy of every weight per step or a host sync per step (see "
            "keras_kd._step.nonfinite); leave it at None or False there",
        )
    return value


def add_augmentation_seeds(model, augmentation):
    """On JAX and PyTorch, adds the augmentation's seed generators to
    `model`'s state: JAX's step reads and returns every variable as state,
    so without them its draws would repeat."""
    if backends.is_tensorflow():
        return
    for layer in augmentation.random_layers:
        internals.add_seed_generators(model, internals.seed_generators(layer))
