"""The main job's models: the teacher CNN and its shipped ensemble, the
phone-sized student, the augmentation, and how a model is scored."""

import keras
import numpy as np

from keras_kd.demo.settings import DEFAULT
from keras_kd.demo.settings import TEACHER_PATHS
from keras_kd.methods.ensemble import fuse


def augmentation(translation, seed=None, translation_seed=None):
    """The demo's augmentation: a horizontal flip, and a translation by up to
    `translation` of the image size if that is > 0.

    Args:
        translation: The `RandomTranslation` factor, or 0.
        seed: Int or `None`, the flip's seed.
        translation_seed: The translation's seed; defaults to `seed + 1` (the
            same seed would tie the two layers' draws together).

    Returns:
        A `keras.Sequential` named "augmentation".
    """
    if translation_seed is None and seed is not None:
        translation_seed = seed + 1
    layers = [keras.layers.RandomFlip("horizontal", seed=seed)]
    if translation:
        layers.append(keras.layers.RandomTranslation(
            translation, translation, fill_mode="constant", seed=translation_seed
        ))
    return keras.Sequential(layers, name="augmentation")


def teacher_model():
    """The teacher: five 3×3 convolutions with batch norm, 288,682 parameters."""
    layers = keras.layers
    inputs = keras.Input((28, 28, 1))
    x = inputs
    for filters, pool in ((32, False), (32, True), (64, False), (64, True), (128, True)):
        x = layers.Conv2D(filters, 3, padding="same", use_bias=False)(x)
        x = layers.ReLU()(layers.BatchNormalization()(x))
        if pool:
            x = layers.MaxPooling2D()(x)
    x = layers.Dropout(0.3)(layers.Flatten()(x))
    x = layers.Dropout(0.3)(layers.Dense(128, activation="relu")(x))
    return keras.Model(inputs, layers.Dense(10)(x), name="teacher")


def student_model(setting=DEFAULT, name="student"):
    """The phone-sized student: two convolutions, each followed by pooling."""
    first, second = setting.student_filters
    layers = keras.layers
    return keras.Sequential([
        keras.Input((28, 28, 1)),
        layers.Conv2D(first, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(),
        layers.Conv2D(second, 3, padding="same", activation="relu"),
        layers.MaxPooling2D(),
        layers.Flatten(),
        layers.Dense(10),
    ], name=name)


def load_teachers(paths=TEACHER_PATHS):
    """The shipped teachers, a list of `teacher_model()`s."""
    teachers = []
    for seed, path in enumerate(paths):
        teacher = teacher_model()
        teacher.name = f"teacher_{seed}"
        teacher.load_weights(path)
        teachers.append(teacher)
    return teachers


def ensemble(teachers):
    """One Keras model of the teachers' mixture, with its log-probabilities
    as logits (what a single-teacher tool such as keras.distillation takes)."""
    fused = fuse(teachers, name="teacher_ensemble")
    (inputs,) = fused.inputs  # One input, not a list of one (Keras warns when called).
    return keras.Model(inputs, keras.ops.log(fused.outputs[0]), name="teacher_ensemble_logits")


def predictions(model, images):
    """The class `model` predicts for each of `images` (int array)."""
    return np.argmax(model.predict(images, batch_size=1000, verbose=0), -1)


def correct(model, data):
    """Whether `model` gets each of `(images, labels)` right (bool array)."""
    return predictions(model, data[0]) == data[1]


def score_on(model, data):
    """The accuracy of `model` on `(images, labels)`."""
    return float(np.mean(correct(model, data)))
