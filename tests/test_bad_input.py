"""Every bad input gets a Keras-style error naming the argument, and trains nothing."""

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_kd
from tests.conftest import NUM_CLASSES, make_data, make_mlp

SPARSE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"temperature": 0}, r"Argument `temperature` must be a finite number > 0. Received: temperature=0"),
        ({"temperature": -1.0}, r"Received: temperature=-1.0"),
        ({"temperature": float("nan")}, r"Argument `temperature` must be a finite number > 0. Received: temperature=nan"),
        ({"temperature": float("inf")}, r"Received: temperature=inf"),
        ({"temperature": "4"}, r"Received: temperature='4'"),
        ({"alpha": 1.5}, r"Argument `alpha` must be in \[0, 1\] \(the weight of the student loss\). Received: alpha=1.5"),
        ({"alpha": -0.1}, r"Received: alpha=-0.1"),
        ({"student_loss_weight": 0.5},
         r"Argument `student_loss_weight` is keras.distillation's name of `alpha`: pass `alpha`, or use keras_kd.compat.Distiller"),
        ({"distillation_losses": [keras_kd.losses.LogitMSE()]},
         r"Argument `distillation_losses` is keras.distillation's name of `terms`: pass `terms`, or use keras_kd.compat.Distiller"),
        ({"teacher_returns": "probs"}, r"Argument `teacher_returns` must be one of \('logits', 'probabilities'\). Received: teacher_returns='probs'"),
        ({"terms": []}, r"Argument `terms` must hold at least one distillation term. Received: terms=\[\]"),
        ({"terms": [keras_kd.losses.KLDivergence(), keras_kd.losses.KLDivergence(temperature=2.0)]},
         r"Each term needs a unique `name`.*\['kl'\] is used more than once"),
        ({"terms": ["kl"]}, r"Each term must be a `keras_kd.losses.DistillationTerm`.*Received: 'kl' of type str"),
        ({"terms": [keras_kd.losses.LogitMSE(teacher_layer="nope")]},
         r"The teacher has no layer or output named \['nope'\]. Available names: \['hidden', 'logits'\]"),
    ],
)
def test_bad_constructor_arguments(teacher, student, kwargs, message):
    with pytest.raises(ValueError, match=message):
        keras_kd.Distiller(teacher, student, **kwargs)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"student_loss_weight": 2.0}, r"Argument `student_loss_weight` must be in \[0, 1\]"),
        ({"alpha": 0.1}, r"Argument `alpha` is keras_kd.Distiller's spelling"),
        ({"terms": [keras_kd.losses.KLDivergence()]}, r"Argument `terms` is keras_kd.Distiller's spelling"),
        ({"distillation_losses": [keras_kd.losses.KLDivergence()], "distillation_loss_weights": [1.0, 2.0]},
         r"Argument `distillation_loss_weights` must have one weight per distillation loss \(1\)"),
        ({"distillation_losses": ["kl"]},
         r"Each distillation loss must be a `keras_kd.losses.DistillationTerm`.*Received: 'kl' of type str"),
    ],
)
def test_bad_compat_constructor_arguments(teacher, student, kwargs, message):
    with pytest.raises(ValueError, match=message):
        keras_kd.compat.Distiller(teacher, student, **kwargs)


def test_models_must_be_two_keras_models(teacher, student):
    with pytest.raises(ValueError, match=r"Argument `teacher` must be a keras.Model. Received: teacher=.*of type function"):
        keras_kd.Distiller(lambda x: x, student)
    with pytest.raises(ValueError, match=r"Argument `student` must be a keras.Model. .*of type Dense"):
        keras_kd.Distiller(teacher, keras.layers.Dense(3))
    with pytest.raises(ValueError, match=r"must be two different models.*Received the same model 'teacher' for both"):
        keras_kd.Distiller(teacher, teacher)


def test_output_shapes_must_match(teacher):
    student = make_mlp(8, seed=2, num_classes=NUM_CLASSES + 1, name="wide_student")
    with pytest.raises(
        ValueError,
        match=r"Received: teacher output shape \(None, 5\), student output shape \(None, 6\)",
    ):
        keras_kd.Distiller(teacher, student)


class SubclassedModel(keras.Model):
    def __init__(self, classes):
        super().__init__()
        self.dense = keras.layers.Dense(classes)

    def call(self, x):
        return self.dense(x)


def test_output_shapes_of_subclassed_models_are_checked_at_the_first_step(teacher):
    student = SubclassedModel(NUM_CLASSES + 2)
    distiller = keras_kd.Distiller(teacher, student).compile(optimizer="sgd", loss=SPARSE)
    x, y = make_data(n=16)
    with pytest.raises(ValueError, match=r"teacher output shape \(16, 5\), student output shape \(16, 7\)"):
        distiller.fit(x, y, batch_size=16, verbose=0)


def test_softmax_teacher_is_refused_with_the_fix(student):
    teacher = make_mlp(32, seed=1, final_activation="softmax", name="soft_teacher")
    with pytest.raises(
        ValueError,
        match=r"The teacher 'soft_teacher' ends in a softmax: it outputs probabilities, and "
        r"distillation needs logits. To fix: pass teacher_returns='probabilities'",
    ):
        keras_kd.Distiller(teacher, student)
    keras_kd.Distiller(teacher, student, teacher_returns="probabilities")  # Accepted explicitly.


def test_softmax_student_is_refused(teacher):
    student = make_mlp(8, seed=2, final_activation="softmax", name="soft_student")
    with pytest.raises(ValueError, match=r"The student 'soft_student' ends in a softmax.*remove the softmax"):
        keras_kd.Distiller(teacher, student)


def test_compile_needs_a_student_loss_when_alpha_is_positive(teacher, student):
    distiller = keras_kd.Distiller(teacher, student, alpha=0.1)
    with pytest.raises(ValueError, match=r"Argument `loss` \(the student loss\) is required when alpha > 0.*Received: loss=None, alpha=0.1"):
        distiller.compile(optimizer="adam")
    pure = keras_kd.Distiller(teacher, student, alpha=0.0).compile(optimizer="adam")
    with pytest.raises(ValueError, match=r"Argument `alpha` must be 0 when `compile\(\)` was given no student `loss`"):
        pure.set_live_value("alpha", 0.5)


def test_compile_rejects_loss_weights(teacher, student):
    with pytest.raises(ValueError, match=r"Argument `loss_weights` is not used by the Distiller"):
        keras_kd.Distiller(teacher, student).compile(loss=SPARSE, loss_weights=[1.0])


def _assert_fit_fails_and_trains_nothing(distiller, data, message):
    before = [w.numpy().copy() for w in distiller.student.weights]
    with pytest.raises(ValueError, match=message):
        distiller.fit(data, epochs=1, verbose=0)
    for b, w in zip(before, distiller.student.weights):
        np.testing.assert_array_equal(b, w.numpy())


@pytest.mark.parametrize(
    "loss, labels, message",
    [
        (SPARSE, "one_hot", r"The labels do not fit the student loss `sparse_categorical_crossentropy`: labels of shape \(None, 5\) and dtype .*float64.*student outputs of shape \(None, 5\)"),
        (keras.losses.CategoricalCrossentropy(from_logits=True), "sparse",
         r"The labels do not fit the student loss `categorical_crossentropy`: labels of shape \(None,\).*Integer class ids need `SparseCategoricalCrossentropy`"),
    ],
)
def test_labels_that_do_not_fit_the_loss(teacher, student, loss, labels, message):
    x, y = make_data(n=32)
    if labels == "one_hot":
        y = keras.utils.to_categorical(y, NUM_CLASSES)
    distiller = keras_kd.Distiller(teacher, student).compile(optimizer="sgd", loss=loss)
    data = tf.data.Dataset.from_tensor_slices((x, y)).batch(16)
    _assert_fit_fails_and_trains_nothing(distiller, data, message)


def test_no_labels_with_positive_alpha(teacher, student):
    x, _ = make_data(n=32)
    distiller = keras_kd.Distiller(teacher, student, alpha=0.2).compile(optimizer="sgd", loss=SPARSE)
    data = tf.data.Dataset.from_tensor_slices(x).batch(16)
    _assert_fit_fails_and_trains_nothing(
        distiller, data, r"The data carries no labels, so alpha must be 0 \(pure distillation\).*Received: alpha=0.2"
    )


def test_feature_layers_of_a_subclassed_model_need_a_dict_output(teacher, data):
    x, y = data
    term = keras_kd.losses.LogitMSE(student_layer="dense")
    message = r"The student '\w+' returns a tensor, so terms cannot read its outputs \['dense'\]"
    student = SubclassedModel(NUM_CLASSES)  # Unbuilt: found on the first batch.
    distiller = keras_kd.Distiller(teacher, student, terms=[term])
    distiller.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    with pytest.raises(ValueError, match=message):
        distiller.fit(x, y, epochs=1, verbose=0)
    built = SubclassedModel(NUM_CLASSES)
    built(x[:2])  # Built: found at once.
    with pytest.raises(ValueError, match=message):
        keras_kd.Distiller(teacher, built, terms=[term])


def test_a_refused_pair_leaves_the_teacher_trainable(teacher):
    softmax_student = make_mlp(8, seed=2, final_activation="softmax", name="softmax_student")
    with pytest.raises(ValueError, match="ends in a softmax"):
        keras_kd.Distiller(teacher, softmax_student)
    assert teacher.trainable
    keras_kd.Distiller(teacher, make_mlp(8, seed=2))
    assert not teacher.trainable
