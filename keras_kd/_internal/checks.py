"""Checks of the models and terms a Distiller is built from, in Keras's voice."""

import math

import keras

from keras_kd._internal.backends import tf
from keras_kd._internal import keras_internals as internals
from keras_kd._internal import model_outputs

# keras.distillation's argument names -> keras_kd's.
PEER_SPELLINGS = {
    "student_loss_weight": "alpha",
    "distillation_losses": "terms",
    "distillation_loss_weights": "terms",
}


def refuse_peer_spellings(kwargs):
    """Raises for keras.distillation's argument names, naming keras_kd's."""
    for peer_name, name in PEER_SPELLINGS.items():
        if peer_name in kwargs:
            raise ValueError(
                f"Argument `{peer_name}` is keras.distillation's name of "
                f"`{name}`: pass `{name}`, or use keras_kd.compat.Distiller "
                "for code written against keras.distillation. Received: "
                f"{peer_name}={kwargs[peer_name]!r}"
            )


def check_pair(teachers, student, terms, teacher_outputs):
    """Checks that the student can learn from the teachers with `terms`."""
    for teacher in teachers:
        check_ends_in_logits(teacher, "teacher", teacher_outputs)
    check_ends_in_logits(student, "student")
    check_teacher_shapes(teachers)
    if compares_logits(terms):
        check_logit_shapes(static_logits_shape(teachers[0]), static_logits_shape(student))
    if len(teachers) > 1:
        check_terms_for_several_teachers(terms)


def check_models(teacher, student):
    """Raises unless both are `keras.Model`s and two different ones."""
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


def check_ends_in_logits(model, role, outputs="logits"):
    """Raises if `model` ends in a softmax where logits are expected."""
    if outputs == "logits" and _final_activation(model) == "softmax":
        fix = (
            "pass teacher_returns='probabilities' (they are then used as "
            "log-probabilities), or remove the softmax"
            if role == "teacher"
            else "remove the softmax (losses take from_logits=True)"
        )
        raise ValueError(
            f"The {role} {model.name!r} ends in a softmax: it outputs "
            f"probabilities, and distillation needs logits. To fix: {fix}."
        )


def _final_activation(model):
    history = internals.keras_history(model_outputs.logits_spec(model))
    if history is not None:
        last = history.operation  # The layer that makes the logits.
    elif getattr(model, "layers", None):
        last = model.layers[-1]
    else:
        return None
    if isinstance(last, keras.layers.Softmax):
        return "softmax"
    return getattr(getattr(last, "activation", None), "__name__", None)


def check_teacher_shapes(teachers):
    """Raises if the teachers' output shapes differ, naming each one."""
    shapes = {}
    for teacher in teachers:
        logits = model_outputs.logits_spec(teacher)
        if logits is not None:
            shapes[teacher.name] = tuple(logits.shape)
    if len({shape[1:] for shape in shapes.values()}) > 1:
        listed = ", ".join(f"{name!r}: {shape}" for name, shape in shapes.items())
        raise ValueError(
            f"The teachers must output logits of the same shape. Received: {listed}"
        )


def compares_logits(terms):
    """Whether a term compares the teacher's logits with the student's.

    When every term reads named layers or entries (e.g. the old heads in
    `keras_kd.learn_without_forgetting`), the two models' own logits may
    differ in shape.
    """
    return any(t.teacher_layer is None and t.student_layer is None for t in terms)


def check_logit_shapes(teacher_shape, student_shape):
    """Raises if teacher and student logits differ beyond the batch axis."""
    if teacher_shape is None or student_shape is None:
        return  # Checked on the first batch instead.
    if tuple(teacher_shape[1:]) != tuple(student_shape[1:]):
        raise ValueError(
            "The teacher and the student must output logits of the same "
            f"shape. Received: teacher output shape {tuple(teacher_shape)}, "
            f"student output shape {tuple(student_shape)}"
        )


def static_logits_shape(model):
    """The static shape of `model`'s logits, or `None` when unknown."""
    logits = model_outputs.logits_spec(model)
    return None if logits is None else tuple(logits.shape)


def check_term_names(terms):
    """Raises if two terms share a name (their logs would collide)."""
    names = [term.name for term in terms]
    duplicates = sorted({name for name in names if names.count(name) > 1})
    if duplicates:
        raise ValueError(
            f"Each term needs a unique `name` (logged as `<name>_loss`); "
            f"{duplicates} is used more than once. Pass e.g. "
            f"KLDivergence(name='kl_t2'). Received names: {names}"
        )


def check_terms_for_several_teachers(terms):
    """Raises if a term reads a teacher layer while there are several teachers."""
    layers = [term.teacher_layer for term in terms if term.teacher_layer]
    if layers:
        raise ValueError(
            "With several teachers, terms compare the student with the "
            "teachers' combined soft target, so they cannot read teacher "
            f"layers; these terms read {layers}. Use one teacher for feature "
            "terms."
        )


def check_teacher_inputs(teacher_inputs):
    """Raises if `teacher_inputs` is given but not a function."""
    if teacher_inputs is not None and not callable(teacher_inputs):
        raise ValueError(
            "Argument `teacher_inputs` must be a function from the "
            "student's (augmented) inputs to the teacher's. Received: "
            f"teacher_inputs={teacher_inputs!r}"
        )


def check_bool(value, argument):
    """Returns `value` if it is a bool, else raises."""
    if not isinstance(value, bool):
        raise ValueError(
            f"Argument `{argument}` must be True or False. "
            f"Received: {argument}={value!r}"
        )
    return value


def computes_in_float16(model):
    """Whether any layer of `model` computes in float16 (loss scaling needed)."""
    return any(
        layer.compute_dtype == "float16" for layer in [model] + model.layers
    )


def check_compile_arguments(loss, alpha, kwargs):
    """Raises for `compile()` arguments the Distiller cannot use."""
    if kwargs.get("loss_weights") is not None:
        raise ValueError(
            "Argument `loss_weights` is not used by the Distiller: weigh "
            "the student loss with `alpha` and the terms with their "
            f"`weight`. Received: loss_weights={kwargs['loss_weights']!r}"
        )
    if loss is None and alpha > 0:
        raise ValueError(
            "Argument `loss` (the student loss) is required when alpha > 0. "
            "Pass e.g. loss=keras.losses.SparseCategoricalCrossentropy("
            "from_logits=True), or build the Distiller with alpha=0 for "
            f"pure distillation. Received: loss=None, alpha={alpha:g}"
        )


def check_alpha_without_labels(alpha):
    """Raises if the data has no labels while `alpha` (a variable) is > 0.

    Runs while the step is traced, before any step: reads the current value
    outside the graph.
    """
    value = internals.stored_value(alpha)
    if value > 0:
        raise ValueError(
            "The data carries no labels, so alpha must be 0 (pure "
            "distillation). Build the Distiller with alpha=0, or yield "
            f"(x, y) batches. Received: alpha={value:g}"
        )


def check_input_shape(shape, model, role, fix):
    """Raises if an augmented batch of `shape` does not fit `model`'s input.

    Args:
        shape: The batch's static shape, or `None` (not checked).
        model: The model that takes it (checked when it has one input).
        role: `"student"`, or how the teacher is named in the message.
        fix: The sentence saying how to fix it.
    """
    inputs = getattr(model, "inputs", None)
    if not inputs or len(inputs) != 1 or shape is None:
        return
    expected = tuple(inputs[0].shape)
    shape = tuple(shape)
    if len(shape) != len(expected) or any(
        e is not None and v is not None and e != v for e, v in zip(expected[1:], shape[1:])
    ):
        raise ValueError(
            f"The augmented view has shape {shape}, which the {role} "
            f"{model.name!r} (input shape {expected}) cannot take. {fix}"
        )


KEEP_SIZE = (
    "Use augmentation that keeps the image size (Keras's RandomTranslation, "
    "RandomFlip, RandomRotation, RandomZoom do; RandomCrop and Resizing "
    "change it), or resize inside the model."
)


def check_augmentation_shape(augmentation, student):
    """Before any step: raises if Keras augmentation layers change the shape
    of the student's input (other callables are checked when traced)."""
    inputs = getattr(student, "inputs", None)
    if not augmentation.layers or not inputs or len(inputs) != 1:
        return
    shape = tuple(inputs[0].shape)
    for layer in augmentation.layers:
        shape = tuple(layer.compute_output_shape(shape))
    check_input_shape(shape, student, "student", KEEP_SIZE)


def check_view_sources(augmentation, cached_logits, drawn):
    """Raises where cached teacher logits cannot belong to the training view.

    Args:
        augmentation: The Distiller's `ConsistentAugmentation`.
        cached_logits: Cached teacher logits in the batch, or `None`.
        drawn: Replayed transformations in the batch, or `None`.
    """
    if drawn is not None and augmentation.mixing is not None:
        raise ValueError(
            "Mixing pairs examples within a batch, so it cannot be replayed "
            "from a keras_kd.ReplayCache: drop `mixing=` to train on the "
            "replayed views, or train on the data itself without "
            "`ReplayCache.attach` (the teacher then runs on every mixed view)."
        )
    if drawn is None and cached_logits is not None and augmentation.augmentation is not None:
        raise ValueError(
            "The data carries cached teacher logits (a keras_kd.TeacherCache) "
            "computed on the unaugmented images, but `augmentation` gives the "
            "student other views: the logits would belong to other images. Use "
            "a keras_kd.ReplayCache (it stores the teacher's logits per "
            "augmented view), or drop the cache (the teacher then runs on every "
            "view)."
        )
    if drawn is None and cached_logits is not None and augmentation.mixing is not None:
        raise ValueError(
            "Mixing makes new images each step, so cached teacher logits cannot "
            "belong to them: drop the cache (the teacher then runs on every "
            "mixed view)."
        )


def check_not_replayed(drawn):
    """Raises for replayed views outside training (`evaluate`, `compute_loss`)."""
    if drawn is not None:
        raise ValueError(
            "Evaluation data holds replayed views (a keras_kd.ReplayCache): "
            "evaluation never augments, and these teacher logits belong to the "
            "augmented views. Evaluate on the plain data, or on a "
            "keras_kd.TeacherCache of the raw validation images."
        )


def as_float(value, argument):
    try:
        if isinstance(value, (bool, str, bytes)):
            raise TypeError(value)
        return float(value)
    except (TypeError, ValueError):
        raise ValueError(
            f"Argument `{argument}` must be a number. "
            f"Received: {argument}={value!r}"
        ) from None


def _checked(value, argument, valid, requirement):
    """`value` as a float if `valid(number)`, else Keras's ValueError."""
    number = as_float(value, argument)
    if not valid(number):
        raise ValueError(
            f"Argument `{argument}` must be {requirement}. "
            f"Received: {argument}={value!r}"
        )
    return number


def check_temperature(value, argument="temperature"):
    """Returns `value` as a float, or raises if it is not finite and > 0."""
    return _checked(
        value, argument, lambda n: math.isfinite(n) and n > 0, "a finite number > 0"
    )


def check_alpha(value, argument="alpha"):
    """Returns `value` as a float, or raises if it is not in [0, 1]."""
    return _checked(
        value, argument, lambda n: 0.0 <= n <= 1.0,
        "in [0, 1] (the weight of the student loss)",
    )


def check_weight(value, argument="weight"):
    """Returns `value` as a float, or raises if it is not finite and >= 0."""
    return _checked(
        value, argument, lambda n: math.isfinite(n) and n >= 0, "a finite number >= 0"
    )


def check_language_model_pair(teacher, student):
    """Raises where a keras-hub causal LM pair cannot be distilled token by
    token: vocabularies of different sizes, different tokenizers, or a
    student reading longer sequences than the teacher's positions allow.

    Only what both models expose is compared (`backbone.vocabulary_size`,
    `preprocessor.tokenizer`, `preprocessor.sequence_length`,
    `backbone.max_sequence_length`): a teacher that is not a `CausalLM` (any
    Keras model mapping the same token ids to logits) is allowed.
    """
    teacher_size = _attribute(teacher, "backbone", "vocabulary_size")
    student_size = _attribute(student, "backbone", "vocabulary_size")
    if teacher_size is not None and student_size is not None and teacher_size != student_size:
        raise ValueError(
            f"The teacher's vocabulary has {teacher_size} tokens and the "
            f"student's {student_size}: token-level distillation compares two "
            "distributions over one vocabulary. Build the student with "
            f"vocabulary_size={teacher_size} and the teacher's tokenizer."
        )
    teacher_tokenizer = _attribute(teacher, "preprocessor", "tokenizer")
    student_tokenizer = _attribute(student, "preprocessor", "tokenizer")
    teacher_tokens, student_tokens = _tokens_by_id(teacher_tokenizer), _tokens_by_id(student_tokenizer)
    if teacher_tokenizer is not student_tokenizer and None not in (teacher_tokens, student_tokens) and (
        teacher_tokens != student_tokens
    ):
        raise ValueError(
            "The teacher and the student use different tokenizers (their "
            "vocabularies differ), so the same token id means different text "
            "to each. Give the student the teacher's tokenizer, e.g. "
            "`StudentPreprocessor(teacher.preprocessor.tokenizer, sequence_length=...)`."
        )
    length = _attribute(student, "preprocessor", "sequence_length")
    limit = _attribute(teacher, "backbone", "max_sequence_length")
    if length is not None and limit is not None and length > limit:
        raise ValueError(
            f"The student's preprocessor makes sequences of {length} tokens, "
            f"longer than the teacher's max_sequence_length={limit} (its "
            "position embeddings). Build the student's preprocessor with "
            f"sequence_length <= {limit}."
        )


def _tokens_by_id(tokenizer):
    """A tokenizer's tokens in id order, or `None` when it has none yet (a
    loading model's tokenizer gets its vocabulary after construction)."""
    if tokenizer is None:
        return None
    try:
        vocabulary = tokenizer.get_vocabulary()
    except (ValueError, AttributeError):
        return None
    mapping = getattr(tokenizer, "vocabulary", None)
    if isinstance(mapping, dict):  # Byte-pair tokenizers: token -> id.
        return sorted(mapping, key=mapping.get)
    return list(vocabulary)


def _attribute(model, part, name):
    """`model.<part>.<name>`, or `None` where the model has no such part."""
    return getattr(getattr(model, part, None), name, None)
