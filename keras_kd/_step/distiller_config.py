"""The Distiller's saved configuration: what `get_config` writes and
`from_config` reads back, old spellings included."""

import importlib
import warnings

import keras
from keras import ops

from keras_kd._internal import backends

# Config entries holding serialized Keras objects (or lists of them).
SERIALIZED_ENTRIES = (
    "teacher", "student", "temperature", "terms", "augmentation", "mixing", "teacher_inputs",
)
# Constructor arguments renamed since files were saved: old name -> new name.
RENAMED_ARGUMENTS = {"teacher_outputs": "teacher_returns"}


def distiller_config(distiller):
    """The constructor arguments of `distiller`, as a flat dict of plain
    values and serialized Keras objects."""
    serialize = keras.saving.serialize_keras_object
    teachers = [_serialize_teacher(t, distiller.student) for t in distiller.teachers]
    learned = distiller.learned_temperature
    return {
        "name": distiller.name,
        "trainable": distiller.trainable,
        "teacher": teachers[0] if len(teachers) == 1 else teachers,
        "teacher_weights": None if len(teachers) == 1 else list(distiller.teacher_weights),
        "student": serialize(distiller.student),
        "temperature": (
            float(ops.convert_to_numpy(distiller.temperature)) if learned is None
            else serialize(learned)
        ),
        "alpha": float(ops.convert_to_numpy(distiller.alpha)),
        "terms": [serialize(t) for t in distiller.terms],
        "teacher_returns": distiller.teacher_returns,
        "skip_nonfinite_steps": distiller.skip_nonfinite_steps,
        "teacher_precision": distiller.teacher_precision,
        "augmentation": None if distiller.augmentation is None else serialize(distiller.augmentation),
        "mixing": None if distiller.mixing is None else serialize(distiller.mixing),
        "teacher_inputs": (
            None if distiller.teacher_inputs is None else serialize(distiller.teacher_inputs)
        ),
        "chunk_size": distiller.chunk_size,
    }


def compile_config(config, student_loss):
    """Keras's compile `config` of a Distiller with its student loss and an
    optimizer config that loads on every backend."""
    if config:
        config["loss"] = keras.saving.serialize_keras_object(student_loss)
        config["optimizer"] = portable_optimizer_config(config.get("optimizer"))
    return config


def compile_from(distiller, config):
    """Compiles `distiller` from its saved compile `config` (and builds its
    optimizer when the distiller is built, so saved slots load)."""
    distiller.compile(**keras.saving.deserialize_keras_object(config))
    if distiller.built:
        distiller.optimizer.build(distiller.trainable_variables)


def constructor_arguments(config, custom_objects=None, entries=SERIALIZED_ENTRIES):
    """The arguments to rebuild a Distiller from its `config`: serialized
    objects loaded, renamed arguments migrated, and `skip_nonfinite_steps`
    turned off on PyTorch (with a warning), where keras_kd does not skip.

    Args:
        config: A dict from `get_config` (of this or an earlier version).
        custom_objects: Optional dict of custom objects for deserialization.
        entries: The config entries that hold serialized objects.

    Returns:
        A dict of constructor arguments.
    """
    config, shared = _teachers_sharing_preprocessor(migrate_renamed(config))
    arguments = {
        key: _deserialize(value, custom_objects) if key in entries else value
        for key, value in config.items()
    }
    _share_student_preprocessor(arguments, shared)
    if arguments.get("skip_nonfinite_steps") and backends.name() == backends.TORCH:
        warnings.warn(
            "This Distiller was saved with skip_nonfinite_steps=True, which "
            "keras_kd does not do on the 'torch' backend: it loads with "
            "skip_nonfinite_steps=False (every update is applied, as Keras does).",
            stacklevel=3,
        )
        arguments["skip_nonfinite_steps"] = False
    return arguments


# Marks a teacher saved without the preprocessor it shared with the student.
_SHARES_STUDENT_PREPROCESSOR = "keras_kd_shares_student_preprocessor"


def _serialize_teacher(teacher, student):
    """A teacher's config. A keras-hub model that shares the student's
    preprocessor is saved without it (Keras would load two preprocessors, and
    the second finds no saved tokenizer assets); loading shares it again."""
    config = keras.saving.serialize_keras_object(teacher)
    preprocessor = getattr(teacher, "preprocessor", None)
    if preprocessor is not None and preprocessor is getattr(student, "preprocessor", None):
        config["config"] = dict(config["config"], preprocessor=None)
        config[_SHARES_STUDENT_PREPROCESSOR] = True
    return config


def _teachers_sharing_preprocessor(config):
    """`config` with the sharing marks taken off its teacher configs, and
    one bool per teacher: whether it shared the student's preprocessor."""
    teachers = config.get("teacher")
    many = isinstance(teachers, list)
    teachers = [dict(t) if isinstance(t, dict) else t for t in (teachers if many else [teachers])]
    shared = [isinstance(t, dict) and bool(t.pop(_SHARES_STUDENT_PREPROCESSOR, False)) for t in teachers]
    return dict(config, teacher=teachers if many else teachers[0]), shared


def _share_student_preprocessor(arguments, shared):
    """Gives each teacher saved without its preprocessor the student's."""
    teachers = arguments["teacher"] if isinstance(arguments["teacher"], list) else [arguments["teacher"]]
    for teacher, shares in zip(teachers, shared):
        if shares:
            teacher.preprocessor = arguments["student"].preprocessor


def renamed(distiller, old):
    """The attribute under its new name, read by its `old` name, with a
    `DeprecationWarning`."""
    new = RENAMED_ARGUMENTS[old]
    warnings.warn(f"`{old}` is renamed `{new}`.", DeprecationWarning, stacklevel=3)
    return getattr(distiller, new)


def migrate_renamed(config):
    """`config` with renamed constructor arguments under their new names."""
    config = dict(config)
    for old, new in RENAMED_ARGUMENTS.items():
        if old in config:
            value = config.pop(old)
            config.setdefault(new, value)
    return config


def _deserialize(value, custom_objects):
    if isinstance(value, list):
        return [_deserialize(item, custom_objects) for item in value]
    if isinstance(value, dict):
        return keras.saving.deserialize_keras_object(value, custom_objects=custom_objects)
    return value


def portable_optimizer_config(config):
    """A serialized optimizer that names its public `keras.optimizers` class.

    Keras saves some optimizers under the saving backend's own subclass
    (PyTorch's `Adam` subclasses `keras.optimizers.Adam`), which another
    backend cannot load. Such a class is replaced by the public class it
    subclasses; nested optimizers (`LossScaleOptimizer`) too.

    Args:
        config: A serialized optimizer (a dict), or anything else (returned
            as it is).

    Returns:
        The portable config.
    """
    if not isinstance(config, dict):
        return config
    config = {key: portable_optimizer_config(value) for key, value in config.items()}
    public = getattr(keras.optimizers, str(config.get("class_name")), None)
    saved = _saved_class(config)
    if isinstance(public, type) and saved is not None and saved is not public and issubclass(saved, public):
        config["module"] = "keras.optimizers"
    return config


def _saved_class(config):
    """The class a serialized object names by `module` and `class_name`."""
    module, name = config.get("module"), config.get("class_name")
    if not isinstance(module, str) or not isinstance(name, str):
        return None
    try:
        return getattr(importlib.import_module(module), name, None)
    except ImportError:
        return None
