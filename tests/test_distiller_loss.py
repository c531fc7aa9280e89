"""The Distiller's loss and logs against the float64 numpy reference."""

import keras
import numpy as np
import pytest

import keras_kd
from tests import reference
from tests.conftest import NUM_CLASSES, make_data, make_mlp

SPARSE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
ONE_HOT = keras.losses.CategoricalCrossentropy(from_logits=True)


def _logits(model, x):
    return np.asarray(model(x, training=False), np.float64)


def _first_step_logs(distiller, x, y, sample_weight=None):
    """Logs of one full-batch training step (computed before the update)."""
    history = distiller.fit(
        x, y, sample_weight=sample_weight, batch_size=len(x), epochs=1, verbose=0
    )
    return {key: values[0] for key, values in history.history.items()}


@pytest.mark.parametrize("temperature", [1.0, 4.0])
@pytest.mark.parametrize("alpha", [0.0, 0.3, 1.0])
@pytest.mark.parametrize("labels", ["sparse", "one_hot"])
@pytest.mark.parametrize("weighted", [False, True])
def test_loss_matches_numpy(teacher, student, data, temperature, alpha, labels, weighted):
    x, y = data
    sample_weight = (
        np.random.default_rng(3).uniform(0, 2, len(x)).astype("float32") if weighted else None
    )
    t, s = _logits(teacher, x), _logits(student, x)
    terms = [
        keras_kd.losses.KLDivergence(weight=1.0),
        keras_kd.losses.SoftTargetCrossentropy(weight=0.5, temperature=2.0),
    ]
    distiller = keras_kd.Distiller(teacher, student, temperature=temperature, alpha=alpha, terms=terms)
    targets = y if labels == "sparse" else keras.utils.to_categorical(y, NUM_CLASSES)
    distiller.compile(optimizer=keras.optimizers.SGD(0.1), loss=SPARSE if labels == "sparse" else ONE_HOT)

    expected = reference.total_loss(
        t, s, y, temperature, alpha,
        [(1.0, reference.kl, None), (0.5, reference.soft_crossentropy, 2.0)],
        sample_weight,
    )
    logs = _first_step_logs(distiller, x, targets, sample_weight)
    np.testing.assert_allclose(logs["loss"], expected, rtol=1e-5)
    np.testing.assert_allclose(
        logs["student_loss"], reference.reduce(reference.sparse_crossentropy(y, s), sample_weight), rtol=1e-5
    )
    np.testing.assert_allclose(
        logs["kl_loss"], reference.reduce(reference.kl(t, s, temperature), sample_weight), rtol=1e-5
    )
    np.testing.assert_allclose(
        logs["soft_ce_loss"], reference.reduce(reference.soft_crossentropy(t, s, 2.0), sample_weight), rtol=1e-5
    )


def test_gradient_update_matches_numpy_loss(teacher, student, data):
    """One SGD step moves the weights by -lr times the reference gradient."""
    import tensorflow as tf

    x, y = data
    lr = 0.5
    distiller = keras_kd.Distiller(teacher, student, temperature=3.0, alpha=0.2)
    distiller.compile(optimizer=keras.optimizers.SGD(lr), loss=SPARSE)
    t = tf.constant(_logits(teacher, x))
    before = [w.numpy() for w in student.trainable_weights]
    with tf.GradientTape() as tape:
        s = tf.cast(student(x), tf.float64)
        ce = -tf.reduce_mean(tf.gather(tf.nn.log_softmax(s), y, batch_dims=1))
        log_p = tf.nn.log_softmax(t / 3.0)
        kl = 9.0 * tf.reduce_mean(tf.reduce_sum(tf.exp(log_p) * (log_p - tf.nn.log_softmax(s / 3.0)), -1))
        loss = 0.2 * ce + 0.8 * kl
    gradients = tape.gradient(loss, student.trainable_weights)
    distiller.fit(x, y, batch_size=len(x), epochs=1, verbose=0)
    for w0, g, w in zip(before, gradients, student.trainable_weights):
        np.testing.assert_allclose(w.numpy(), w0 - lr * g.numpy(), rtol=1e-5, atol=1e-6)


def test_class_weight_applies_to_every_part(teacher, student, data):
    x, y = data
    class_weight = {0: 2.0, 1: 0.0, 2: 1.0, 3: 0.5, 4: 1.5}
    sample_weight = np.array([class_weight[c] for c in y])
    t, s = _logits(teacher, x), _logits(student, x)
    distiller = keras_kd.Distiller(teacher, student, temperature=2.0, alpha=0.4)
    distiller.compile(optimizer=keras.optimizers.SGD(0.1), loss=SPARSE)
    logs = distiller.fit(x, y, class_weight=class_weight, batch_size=len(x), verbose=0).history
    expected = reference.total_loss(t, s, y, 2.0, 0.4, [(1.0, reference.kl, None)], sample_weight)
    np.testing.assert_allclose(logs["loss"][0], expected, rtol=1e-5)
    np.testing.assert_allclose(
        logs["kl_loss"][0], reference.reduce(reference.kl(t, s, 2.0), sample_weight), rtol=1e-5
    )


def test_unlabeled_rows_count_in_distillation_only(teacher, student, data):
    x, y = data
    labels = y.copy()
    labels[::3] = -1  # Every third row has no label.
    labeled = labels != -1
    t, s = _logits(teacher, x), _logits(student, x)
    distiller = keras_kd.Distiller(teacher, student, temperature=2.0, alpha=0.5)
    distiller.compile(
        optimizer=keras.optimizers.SGD(0.1),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=-1),
        weighted_metrics=["accuracy"],  # `metrics` count every row, as in Keras.
    )
    logs = _first_step_logs(distiller, x, labels)
    student_loss = reference.sparse_crossentropy(y[labeled], s[labeled]).mean()
    kl = reference.kl(t, s, 2.0).mean()  # Every row, labeled or not.
    np.testing.assert_allclose(logs["student_loss"], student_loss, rtol=1e-5)
    np.testing.assert_allclose(logs["kl_loss"], kl, rtol=1e-5)
    np.testing.assert_allclose(logs["loss"], 0.5 * student_loss + 0.5 * kl, rtol=1e-5)
    accuracy = np.mean(np.argmax(s[labeled], -1) == y[labeled])
    np.testing.assert_allclose(logs["accuracy"], accuracy, rtol=1e-6)


def test_pure_distillation_needs_no_loss_and_no_labels(teacher, student, data):
    import tensorflow as tf

    x, _ = data
    t, s = _logits(teacher, x), _logits(student, x)
    distiller = keras_kd.Distiller(teacher, student, temperature=2.0, alpha=0.0)
    distiller.compile(optimizer=keras.optimizers.SGD(0.1))
    inputs_only = tf.data.Dataset.from_tensor_slices(x).batch(len(x))
    logs = distiller.fit(inputs_only, epochs=1, verbose=0).history
    assert sorted(logs) == ["kl_loss", "loss", "skipped_steps"]
    np.testing.assert_allclose(logs["kl_loss"][0], reference.kl(t, s, 2.0).mean(), rtol=1e-5)


def test_string_loss_is_reduced_like_keras(teacher, student, data):
    x, y = data
    weights = np.linspace(0, 2, len(x)).astype("float32")
    s = student(x)
    distiller = keras_kd.Distiller(teacher, student, temperature=2.0, alpha=0.5)
    distiller.compile(optimizer="sgd", loss="sparse_categorical_crossentropy")
    logs = distiller.evaluate(
        x, y, sample_weight=weights, batch_size=len(x), return_dict=True, verbose=0
    )
    # What Keras's own compile makes of the same string.
    expected = keras.losses.SparseCategoricalCrossentropy()(y, s, sample_weight=weights)
    np.testing.assert_allclose(logs["student_loss"], float(expected), rtol=1e-5)


def test_regularization_losses_of_the_student_are_added(teacher, data):
    x, y = data
    keras.utils.set_random_seed(5)
    student = keras.Sequential(
        [
            keras.Input((x.shape[1],)),
            keras.layers.Dense(NUM_CLASSES, kernel_regularizer=keras.regularizers.L2(0.1)),
        ]
    )
    t, s = _logits(teacher, x), _logits(student, x)
    penalty = 0.1 * np.sum(np.square(student.layers[0].kernel.numpy()))
    distiller = keras_kd.Distiller(teacher, student, temperature=2.0, alpha=0.5)
    distiller.compile(optimizer="sgd", loss=SPARSE)
    logs = distiller.evaluate(x, y, batch_size=len(x), return_dict=True, verbose=0)
    expected = reference.total_loss(t, s, y, 2.0, 0.5, [(1.0, reference.kl, None)]) + penalty
    np.testing.assert_allclose(logs["loss"], expected, rtol=1e-5)


def test_probability_teacher_accepted_explicitly(data):
    x, y = data
    teacher = make_mlp(32, seed=1, final_activation="softmax")
    student = make_mlp(8, seed=2)
    probabilities = np.asarray(teacher(x), np.float64)
    s = _logits(student, x)
    distiller = keras_kd.Distiller(
        teacher, student, temperature=2.0, alpha=0.0, teacher_returns="probabilities"
    )
    distiller.compile(optimizer="sgd")
    logs = distiller.evaluate(x, y, batch_size=len(x), return_dict=True, verbose=0)
    np.testing.assert_allclose(
        logs["kl_loss"], reference.kl(np.log(probabilities), s, 2.0).mean(), rtol=1e-5
    )


def test_call_and_predict_run_the_student(teacher, student, data):
    x, _ = data
    distiller = keras_kd.Distiller(teacher, student)
    np.testing.assert_allclose(distiller(x), student(x))
    np.testing.assert_allclose(distiller.predict(x, verbose=0), student.predict(x, verbose=0), rtol=1e-6)


def test_evaluate_lists_the_loss_first_as_keras_models_do(teacher, student):
    x, y = make_data(n=32)
    distiller = keras_kd.Distiller(teacher, student).compile(
        optimizer="sgd", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"]
    )
    logs = distiller.evaluate(x, y, verbose=0, return_dict=True)
    values = distiller.evaluate(x, y, verbose=0)
    assert values[0] == pytest.approx(logs["loss"])
    assert values[1] == pytest.approx(logs["accuracy"])
    assert "skipped_steps" not in logs
