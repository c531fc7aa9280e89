"""The main job's trainings: the teacher, the scratch student, the student
distilled by keras_kd from cached teacher logits, and the same student
distilled by Keras's own `keras.distillation`.

Every student is compiled and fitted the same way (`compile_model`, `fit`):
Adam with cosine decay, the sparse cross-entropy, an epoch per call into
TensorFlow. Each training seeds Keras first (`keras.utils.set_random_seed`).
"""

import keras
import tensorflow as tf

from keras_kd._internal import files
from keras_kd.data.cache import TeacherCache
from keras_kd.data.replay import ReplayCache
from keras_kd.demo.models import augmentation
from keras_kd.demo.models import student_model
from keras_kd.demo.models import teacher_model
from keras_kd.demo.settings import TEACHER_RECIPE
from keras_kd.demo.settings import validation_freq
from keras_kd.distiller import Distiller


def steps_per_epoch(examples, batch_size):
    """Batches in an epoch of `examples`, the last one partial."""
    return -(-examples // batch_size)


def optimizer(learning_rate, epochs, batch_size, examples):
    """Adam, its rate decaying from `learning_rate` to 0 (cosine) over the
    training's steps."""
    steps = epochs * steps_per_epoch(examples, batch_size)
    return keras.optimizers.Adam(keras.optimizers.schedules.CosineDecay(learning_rate, steps))


def loss():
    """The label loss: sparse cross-entropy on logits."""
    return keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def compile_model(model, setting, learning_rate, examples):
    """Compiles a student (or a distiller) the same way for every method:
    Adam with cosine decay, the sparse cross-entropy, accuracy. An epoch (16
    steps at the defaults) runs per call into TensorFlow
    (`steps_per_execution`): the same steps, without a Python round trip
    between them, which on these tiny models is much of a step's time. A
    whole epoch, not a fixed count: Keras rounds an epoch up to whole calls."""
    model.compile(
        optimizer=optimizer(learning_rate, setting.epochs, setting.batch_size, examples),
        loss=loss(), metrics=["accuracy"],
        steps_per_execution=steps_per_epoch(examples, setting.batch_size),
    )


def fit(model, batches, setting, examples, val):
    """Fits on `batches` (one epoch of batches, to be repeated) for
    `setting.epochs` epochs. The batches repeat in one endless pipeline
    (reshuffled each epoch, the last batch of an epoch partial as without
    repeating), so no epoch waits for a new iterator to fill its buffers.

    Returns:
        The `keras.callbacks.History`.
    """
    return model.fit(
        batches.repeat().prefetch(tf.data.AUTOTUNE), epochs=setting.epochs,
        steps_per_epoch=steps_per_epoch(examples, setting.batch_size), validation_data=val,
        validation_freq=validation_freq(setting), shuffle=False, verbose=0,
    )


def _augmented(data, translation, seed):
    """`data`'s batches through the demo's augmentation (a fresh draw per
    batch), seeded by `seed`."""
    views = augmentation(translation, seed=seed)
    return data.map(lambda x, y: (views(x, training=True), y), num_parallel_calls=2)


def train_teacher(train, val, path, seed=0, verbose=2, epochs=None):
    """Trains the teacher on `train` with augmentation; writes its weights.

    The recipe (`TEACHER_RECIPE`): Adam, cosine decay from 2e-3, 40 epochs,
    batch 128, a horizontal flip and a translation by up to 10%. About 8
    minutes on 2 CPU cores.

    Returns:
        The trained teacher (its weights written to `path`).
    """
    keras.utils.set_random_seed(seed)
    epochs = epochs or TEACHER_RECIPE["epochs"]
    batch_size = TEACHER_RECIPE["batch_size"]
    # Both layers seeded alike, as the shipped teachers were trained.
    views = augmentation(0.1, seed=seed, translation_seed=seed)
    data = (
        tf.data.Dataset.from_tensor_slices(train).shuffle(len(train[0]), seed=seed).batch(batch_size)
        .map(lambda x, y: (views(x, training=True), y), num_parallel_calls=2).prefetch(2)
    )
    teacher = teacher_model()
    teacher.compile(
        optimizer=optimizer(TEACHER_RECIPE["learning_rate"], epochs, batch_size, len(train[0])),
        loss=loss(), metrics=["accuracy"],
    )
    # shuffle=False: the dataset is shuffled above (Keras warns otherwise).
    teacher.fit(data, epochs=epochs, validation_data=val, shuffle=False, verbose=verbose)
    with files.atomic_write(path, suffix=".weights.h5") as temporary:
        teacher.save_weights(temporary)
    return teacher


def train_scratch(train, val, setting, seed, augmented):
    """The student on the labels alone, with or without the augmentation.

    Returns:
        `(student, history)`.
    """
    keras.utils.set_random_seed(seed)
    student = student_model(setting, "scratch_student")
    learning_rate = setting.augmented_learning_rate if augmented else setting.scratch_learning_rate
    compile_model(student, setting, learning_rate, len(train[0]))
    data = tf.data.Dataset.from_tensor_slices(train).shuffle(len(train[0]), seed=seed)
    data = data.batch(setting.batch_size)
    if augmented:
        data = _augmented(data, setting.translation, seed)
    return student, fit(student, data, setting, len(train[0]), val)


def teacher_outputs(teachers, train, setting, seed=123):
    """The teacher's logits the distilled student learns from: a `TeacherCache`
    on the training images (`views=0`), or a `ReplayCache` of `views`
    augmented views of each (consistent augmentation)."""
    examples = tf.data.Dataset.from_tensor_slices(train)
    if setting.views == 0:
        return TeacherCache.compute(teachers, train[0], batch_size=500, verbose=0)
    keras.utils.set_random_seed(seed)
    return ReplayCache.compute(
        teachers, examples, augmentation(setting.view_translation, seed=seed), views=setting.views,
        batch_size=500, verbose=0,
    )


def _distillation_batches(cached, train, setting, seed):
    """An epoch of `train`'s batches with the cached teacher logits attached.
    A `ReplayCache`'s data holds every example in each of its `views` views;
    an epoch is `examples / batch_size` steps of it, shuffled across views (a
    random share of the views, as many images as an epoch)."""
    examples = tf.data.Dataset.from_tensor_slices(train)
    views = cached.views if isinstance(cached, ReplayCache) else 1
    data = cached.attach(examples).shuffle(len(train[0]) * views, seed=seed)
    return data.batch(setting.batch_size)


def train_distilled(teachers, cached, train, val, setting, seed):
    """The student distilled from the cached teacher logits (`teacher_outputs`).

    Args:
        teachers: The teachers (the cache's).
        cached: `teacher_outputs(teachers, train, setting)`.
        train: `(images, labels)`, the student's training images.
        val: `None`, or `(TeacherCache of the validation images, images,
            labels)`: validation then needs no teacher pass either.
        setting: The `Setting`.
        seed: The student's seed.

    Returns:
        `(student, history)`.
    """
    if val is not None:
        val_cache, val_images, val_labels = val
        val = (val_cache.attach(val_images), val_labels)
    keras.utils.set_random_seed(seed)
    student = student_model(setting, "distilled_student")
    distiller = Distiller(
        teachers, student, temperature=setting.temperature, alpha=setting.alpha,
        augmentation=cached.augmentation if isinstance(cached, ReplayCache) else None,
    )
    compile_model(distiller, setting, setting.learning_rate, len(train[0]))
    data = _distillation_batches(cached, train, setting, seed)
    return student, fit(distiller, data, setting, len(train[0]), val)


def train_with_keras_distillation(teacher, train, val, setting, seed):
    """The same student, distilled by Keras's own `keras.distillation` with
    the same `T`, label weight, optimizer and epochs. It has no cache: its
    teacher runs in every step, on what the step is given. With `views`, it
    is given the same augmentation, drawn afresh each step (so teacher and
    student see the same view, as with keras_kd's replayed views).

    Returns:
        `(student, history)`.
    """
    from keras import distillation

    keras.utils.set_random_seed(seed)
    student = student_model(setting, "keras_distillation_student")
    distiller = distillation.Distiller(
        teacher, student,
        distillation_losses=distillation.LogitsDistillation(temperature=setting.temperature),
        student_loss_weight=setting.alpha,
    )
    compile_model(distiller, setting, setting.learning_rate, len(train[0]))
    data = tf.data.Dataset.from_tensor_slices(train).shuffle(len(train[0]), seed=seed)
    data = data.batch(setting.batch_size)
    if setting.views:
        data = _augmented(data, setting.view_translation, seed)
    return student, fit(distiller, data, setting, len(train[0]), val)
