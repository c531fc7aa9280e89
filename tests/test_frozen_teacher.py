"""The teacher never changes, and each model runs once per step."""

import keras
import numpy as np
import tensorflow as tf
from keras import ops

import keras_kd
from tests.conftest import NUM_CLASSES, NUM_FEATURES, make_data


class CallCounter(keras.layers.Layer):
    """Counts, in a variable, how many times the model it sits in really runs."""

    def build(self, input_shape):
        self.calls = self.add_weight(shape=(), initializer="zeros", trainable=False, name="calls")

    def call(self, inputs):
        self.calls.assign_add(1.0)
        return inputs


class HiddenMeanMatch(keras_kd.losses.DistillationTerm):
    """A test-only feature term: matches the mean activation of two hidden layers."""

    default_name = "hidden_mean"

    def compute(self, teacher_outputs, student_outputs, labels, temperature):
        return ops.square(ops.mean(teacher_outputs, -1) - ops.mean(student_outputs, -1))


def _counted_mlp(hidden, seed, name):
    keras.utils.set_random_seed(seed)
    inputs = keras.Input((NUM_FEATURES,))
    h = CallCounter(name="counter")(inputs)
    h = keras.layers.Dense(hidden, activation="relu", name="hidden")(h)
    return keras.Model(inputs, keras.layers.Dense(NUM_CLASSES, name="logits")(h), name=name)


def test_one_teacher_pass_and_one_student_pass_per_step_with_several_terms():
    teacher, student = _counted_mlp(32, 1, "teacher"), _counted_mlp(8, 2, "student")
    terms = [
        keras_kd.losses.KLDivergence(),
        keras_kd.losses.SoftTargetCrossentropy(name="soft_ce"),
        keras_kd.losses.LogitMSE(),
        HiddenMeanMatch(teacher_layer="hidden", student_layer="hidden"),
    ]
    distiller = keras_kd.Distiller(teacher, student, terms=terms, alpha=0.5)
    distiller.compile(
        optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    )
    x, y = make_data(n=48)
    history = distiller.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert teacher.get_layer("counter").calls.numpy() == 3
    assert student.get_layer("counter").calls.numpy() == 3
    assert "hidden_mean_loss" in history.history and "logit_mse_loss" in history.history


def _teacher_with_batchnorm_and_dropout():
    keras.utils.set_random_seed(7)
    return keras.Sequential(
        [
            keras.Input((NUM_FEATURES,)),
            keras.layers.Dense(32, name="hidden"),
            keras.layers.BatchNormalization(),
            keras.layers.ReLU(),
            keras.layers.Dropout(0.5),
            keras.layers.Dense(NUM_CLASSES),
        ]
    )


def test_teacher_is_bit_identical_after_fit_evaluate_predict(student):
    teacher = _teacher_with_batchnorm_and_dropout()
    x, y = make_data(n=64)
    before = [w.numpy().copy() for w in teacher.weights]
    assert len(before) == 8  # Two Dense layers and BatchNorm's four variables.
    distiller = keras_kd.Distiller(teacher, student, alpha=0.3)
    distiller.compile(
        optimizer=keras.optimizers.Adam(0.05),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )
    distiller.fit(x, y, batch_size=16, epochs=2, validation_data=(x, y), verbose=0)
    distiller.evaluate(x, y, verbose=0)
    distiller.predict(x, verbose=0)
    after = [w.numpy() for w in teacher.weights]
    for b, a in zip(before, after):
        np.testing.assert_array_equal(b, a)
    assert not teacher.trainable
    assert all(id(v) not in {id(w) for w in teacher.weights} for v in distiller.trainable_variables)


def test_no_gradient_reaches_the_teacher(student):
    teacher = _teacher_with_batchnorm_and_dropout()
    teacher_kernel = teacher.get_layer("hidden").kernel
    distiller = keras_kd.Distiller(teacher, student, alpha=0.0)
    distiller.compile(optimizer="sgd")
    x, _ = make_data(n=16)
    with tf.GradientTape(persistent=True) as tape:
        loss = distiller.compute_loss(tf.constant(x), None, None, training=True)
    assert tape.gradient(loss, teacher_kernel) is None
    assert all(g is not None for g in tape.gradient(loss, student.trainable_weights))
