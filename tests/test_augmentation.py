"""Consistent augmentation and mixing: both models see one view, evaluation none."""

import warnings

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_kd
from keras_kd.data import augmentation as augmentation_module
from keras_kd._step import student_loss
from keras_kd.data.augmentation import ConsistentAugmentation
from keras_kd.data.augmentation import Mix
from tests import reference

CLASSES = 5
SPARSE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


class Recorder(keras.layers.Layer):
    """Identity; keeps a copy of every input it sees (run eagerly)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.seen = []

    def call(self, inputs):
        self.seen.append(np.array(inputs))
        return inputs


def _cnn(name, filters=4, recorder=None):
    layers = [keras.Input((8, 8, 1))] + ([recorder] if recorder else [])
    layers += [
        keras.layers.Conv2D(filters, 3, activation="relu"),
        keras.layers.GlobalAveragePooling2D(),
        keras.layers.Dense(CLASSES),
    ]
    return keras.Sequential(layers, name=name)


def _translate_and_flip(seed=1):
    return keras.Sequential([
        keras.layers.RandomTranslation(0.25, 0.25, seed=seed),
        keras.layers.RandomFlip("horizontal", seed=seed + 1),
    ])


def _data(n=32, seed=0):
    rng = np.random.default_rng(seed)
    return rng.random((n, 8, 8, 1)).astype("float32"), rng.integers(0, CLASSES, n)


def _recorded_pair():
    keras.utils.set_random_seed(0)
    teacher_seen, student_seen = Recorder(name="teacher_inputs"), Recorder(name="student_inputs")
    return (
        _cnn("teacher", 8, teacher_seen), _cnn("student", 4, student_seen),
        teacher_seen, student_seen,
    )


@pytest.mark.parametrize("mixing", [None, "mixup", "cutmix"])
def test_teacher_and_student_see_the_same_view_and_evaluation_the_raw_one(mixing):
    teacher, student, teacher_seen, student_seen = _recorded_pair()
    x, y = _data()
    distiller = keras_kd.Distiller(
        teacher, student, augmentation=_translate_and_flip(), mixing=mixing
    )
    distiller.compile(loss=SPARSE, run_eagerly=True)
    distiller.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    assert len(teacher_seen.seen) == len(student_seen.seen) == 2
    for batch, (seen_by_teacher, seen_by_student) in enumerate(zip(teacher_seen.seen, student_seen.seen)):
        np.testing.assert_array_equal(seen_by_teacher, seen_by_student)
        assert not np.allclose(seen_by_student, x[16 * batch:16 * (batch + 1)])
    teacher_seen.seen.clear(), student_seen.seen.clear()
    distiller.evaluate(x, y, batch_size=32, verbose=0)
    np.testing.assert_array_equal(teacher_seen.seen[0], x)
    np.testing.assert_array_equal(student_seen.seen[0], x)
    student_seen.seen.clear()
    distiller.predict(x, batch_size=32, verbose=0)
    np.testing.assert_array_equal(student_seen.seen[0], x)


def test_one_device_draws_are_the_keras_layers_own():
    x, _ = _data(16)
    ours = ConsistentAugmentation(_translate_and_flip(seed=7))
    keras_own = _translate_and_flip(seed=7)
    for _ in range(3):  # The generators advance alike.
        np.testing.assert_array_equal(ours.view(x)[0], keras_own(x, training=True))


def test_loss_on_the_view_matches_numpy():
    teacher, student, _, student_seen = _recorded_pair()
    x, y = _data(16)
    distiller = keras_kd.Distiller(
        teacher, student, temperature=3.0, alpha=0.3, augmentation=_translate_and_flip()
    )
    distiller.compile(optimizer=keras.optimizers.SGD(0.0), loss=SPARSE, run_eagerly=True)
    history = distiller.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    view = student_seen.seen[0]
    teacher_logits = np.array(teacher(view)).astype("float64")
    student_logits = np.array(student(view)).astype("float64")  # Unchanged: SGD(0).
    expected = 0.3 * np.mean(reference.sparse_crossentropy(y, student_logits)) + 0.7 * np.mean(
        reference.kl(teacher_logits, student_logits, 3.0)
    )
    np.testing.assert_allclose(history.history["loss"][0], expected, rtol=1e-5)


@pytest.mark.parametrize("one_hot", [False, True])
@pytest.mark.parametrize("weighted", [False, True])
def test_mixed_student_loss_matches_numpy(one_hot, weighted):
    rng = np.random.default_rng(3)
    logits = rng.normal(size=(6, CLASSES)).astype("float32")
    labels = rng.integers(0, CLASSES, 6)
    weight = rng.uniform(size=6).astype("float32")
    partner = rng.permutation(6)
    sample_weight = rng.uniform(size=6).astype("float32") if weighted else None
    loss = (
        keras.losses.CategoricalCrossentropy(from_logits=True) if one_hot else SPARSE
    )
    y = np.eye(CLASSES, dtype="float32")[labels] if one_hot else labels
    value = student_loss.mixed_student_loss(
        loss, y, logits, sample_weight, Mix(weight, partner)
    )
    per_example = reference.sparse_crossentropy(labels, logits.astype("float64"))
    partner_loss = reference.sparse_crossentropy(labels[partner], logits.astype("float64"))
    own_weight = weight if sample_weight is None else weight * sample_weight
    partner_weight = 1 - weight if sample_weight is None else (1 - weight) * sample_weight[partner]
    expected = np.mean(own_weight * per_example + partner_weight * partner_loss)
    np.testing.assert_allclose(float(value), expected, rtol=1e-5)


def test_mixup_mixes_the_views_with_the_weights_the_loss_uses():
    x, _ = _data(8)
    views = ConsistentAugmentation(mixing="mixup", mixing_strength=0.4)
    mixed, mix = views.mix(x)
    weight = np.array(mix.weight)[:, None, None, None]
    expected = weight * x + (1 - weight) * x[np.array(mix.partner)]
    np.testing.assert_allclose(mixed, expected, rtol=1e-6, atol=1e-6)
    assert views.mixing.alpha == 0.4


def test_cutmix_weight_is_the_share_of_the_first_image():
    x = np.zeros((8, 8, 8, 1), "float32") + np.arange(8, dtype="float32")[:, None, None, None]
    mixed, mix = ConsistentAugmentation(mixing="cutmix").mix(x)
    mixed, partner = np.array(mixed), np.array(mix.partner)
    for i in range(8):
        if partner[i] == i:
            continue
        own_share = np.mean(mixed[i] == i)
        np.testing.assert_allclose(own_share, float(mix.weight[i]), atol=1 / 64)


def test_xla_compiles_the_step_after_the_augmentation():
    teacher, student = _cnn("teacher", 8), _cnn("student")
    x, y = _data()
    distiller = keras_kd.Distiller(teacher, student, augmentation=_translate_and_flip())
    distiller.compile(loss=SPARSE, jit_compile=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)  # No "XLA cannot compile" fallback.
        distiller.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert distiller.jit_compile is True
    update = distiller._xla_update
    assert update is not None and update.experimental_get_tracing_count() >= 1
    # The augmentation alone would not compile under XLA.
    augmentation_alone = tf.function(
        lambda images: ConsistentAugmentation(_translate_and_flip()).view(images)[0],
        jit_compile=True,
    )
    with pytest.raises((tf.errors.InvalidArgumentError, tf.errors.UnimplementedError, ValueError)):
        augmentation_alone.experimental_get_compiler_ir(tf.constant(x))(stage="hlo")


def test_replicas_draw_their_own_views(two_replicas):
    x = np.repeat(_data(1)[0], 8, axis=0)  # The same image in every row.
    with two_replicas.scope():
        views = ConsistentAugmentation(keras.layers.RandomTranslation(0.3, 0.3, seed=5))

    @tf.function
    def step(batch):
        return views.view(batch)[0]

    dataset = tf.data.Dataset.from_tensor_slices(x).batch(8)
    batch = next(iter(two_replicas.experimental_distribute_dataset(dataset)))
    per_replica = two_replicas.experimental_local_results(two_replicas.run(step, (batch,)))
    assert len(per_replica) == 2
    first, second = (np.array(v) for v in per_replica)
    assert not np.array_equal(first, second)


def test_augmented_distiller_trains_under_two_replicas(two_replicas):
    x, y = _data()
    with two_replicas.scope():
        distiller = keras_kd.Distiller(
            _cnn("teacher", 8), _cnn("student"), augmentation=_translate_and_flip(), mixing="mixup"
        )
        distiller.compile(loss=SPARSE)
    history = distiller.fit(x, y, batch_size=16, epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_saved_distiller_keeps_augmentation_and_its_seed_state(tmp_path):
    x, y = _data()
    distiller = keras_kd.Distiller(
        _cnn("teacher", 8), _cnn("student"), augmentation=_translate_and_flip(),
        mixing="cutmix", mixing_strength=0.5,
    )
    distiller.compile(loss=SPARSE)
    distiller.fit(x, y, batch_size=16, epochs=1, verbose=0)
    path = tmp_path / "d.keras"
    distiller.save(path)
    loaded = keras.saving.load_model(path)
    assert [type(layer).__name__ for layer in loaded.augmentation.layers] == ["RandomTranslation", "RandomFlip"]
    assert isinstance(loaded.mixing, keras.layers.CutMix)
    # Both draw the same next view and mix: the seed states were saved.
    np.testing.assert_array_equal(distiller._augmentation.view(x)[0], loaded._augmentation.view(x)[0])
    np.testing.assert_array_equal(distiller._augmentation.mix(x)[0], loaded._augmentation.mix(x)[0])
    fresh = ConsistentAugmentation(_translate_and_flip(), mixing="cutmix", mixing_strength=0.5)
    assert not np.array_equal(fresh.mix(x)[0], loaded._augmentation.mix(x)[0])


def test_teacher_inputs_get_the_same_view():
    keras.utils.set_random_seed(0)
    teacher_seen, student_seen = Recorder(), Recorder()
    teacher = keras.Sequential([
        keras.Input((16, 16, 1)), teacher_seen, keras.layers.Conv2D(4, 3),
        keras.layers.GlobalAveragePooling2D(), keras.layers.Dense(CLASSES),
    ])
    student = _cnn("student", 4, student_seen)
    x, y = _data(16)
    distiller = keras_kd.Distiller(
        teacher, student, augmentation=_translate_and_flip(),
        teacher_inputs=lambda images: tf.image.resize(images, (16, 16)),
    )
    distiller.compile(loss=SPARSE, run_eagerly=True)
    distiller.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0)
    np.testing.assert_allclose(
        teacher_seen.seen[0], tf.image.resize(student_seen.seen[0], (16, 16)), rtol=1e-6
    )


# Bad input --------------------------------------------------------------


def test_augmentation_that_is_not_callable_is_refused():
    with pytest.raises(ValueError, match="Argument `augmentation` must be"):
        keras_kd.Distiller(_cnn("t", 8), _cnn("s"), augmentation=0.1)


def test_augmentation_that_changes_the_shape_is_refused_before_any_step():
    with pytest.raises(ValueError, match=r"shape \(None, 6, 6, 1\).*cannot take"):
        keras_kd.Distiller(_cnn("t", 8), _cnn("s"), augmentation=keras.layers.RandomCrop(6, 6))


def test_callable_that_changes_the_shape_is_refused_when_traced():
    distiller = keras_kd.Distiller(
        _cnn("t", 8), _cnn("s"), augmentation=lambda images: images[:, :6, :6]
    )
    distiller.compile(loss=SPARSE)
    with pytest.raises(ValueError, match="cannot take"):
        distiller.fit(*_data(), epochs=1, verbose=0)
    assert distiller.optimizer.iterations.numpy() == 0


def test_mixing_layer_inside_augmentation_is_refused():
    with pytest.raises(ValueError, match="Pass it as `mixing=`"):
        keras_kd.Distiller(
            _cnn("t", 8), _cnn("s"),
            augmentation=keras.Sequential([keras.layers.RandomFlip(), keras.layers.MixUp()]),
        )


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(mixing="blend"), "Argument `mixing` must be one of"),
        (dict(mixing_strength=0.2), "`mixing_strength` needs `mixing`"),
        (dict(mixing="mixup", mixing_strength=0), "must be > 0"),
        (dict(mixing="cutmix", mixing_strength=2.0), r"in \(0, 1\] for 'cutmix'"),
        (dict(mixing=keras.layers.MixUp(), mixing_strength=0.3), "has its own"),
    ],
)
def test_bad_mixing_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        keras_kd.Distiller(_cnn("t", 8), _cnn("s"), **kwargs)


def test_mixing_needs_a_linear_loss_reduction():
    distiller = keras_kd.Distiller(_cnn("t", 8), _cnn("s"), mixing="mixup")
    with pytest.raises(ValueError, match="reduction"):
        distiller.compile(
            loss=keras.losses.SparseCategoricalCrossentropy(
                from_logits=True, reduction="mean_with_sample_weight"
            )
        )


def test_teacher_cache_with_augmentation_is_refused():
    x, y = _data()
    teacher = _cnn("t", 8)
    cache = keras_kd.TeacherCache.compute(teacher, x, verbose=0)
    distiller = keras_kd.Distiller(teacher, _cnn("s"), augmentation=_translate_and_flip())
    distiller.compile(loss=SPARSE)
    with pytest.raises(ValueError, match="ReplayCache"):
        distiller.fit(cache.attach(x), y, epochs=1, verbose=0)
    assert distiller.optimizer.iterations.numpy() == 0


def test_replica_seed_is_a_seed_generator_without_a_variable_of_its_own():
    generator = keras.random.SeedGenerator(3)
    seed = augmentation_module._ReplicaSeed(generator, 1)
    assert seed.state is generator.state
    first = np.array(seed.next())
    assert first[0] == 3 + augmentation_module._REPLICA_STRIDE
    assert list(np.array(generator.state.value)) == [3, 1]


def test_teacher_cache_with_mixing_is_refused():
    x, y = _data()
    teacher = _cnn("t", 8)
    cache = keras_kd.TeacherCache.compute(teacher, x, verbose=0)
    distiller = keras_kd.Distiller(teacher, _cnn("s"), mixing="mixup")
    distiller.compile(loss=SPARSE)
    with pytest.raises(ValueError, match="Mixing makes new images each step"):
        distiller.fit(cache.attach(x), y, epochs=1, verbose=0)


def test_mixed_sample_weights_weigh_the_distillation_term_as_numpy_does():
    keras.utils.set_random_seed(0)
    teacher, student = _cnn("teacher", 8), _cnn("student")
    x, y = _data(6)
    rng = np.random.default_rng(1)
    weight, partner = rng.uniform(size=6).astype("float32"), rng.permutation(6)
    sample_weight = rng.uniform(size=6).astype("float32")
    distiller = keras_kd.Distiller(teacher, student, temperature=2.0, alpha=0.0, mixing="mixup")
    distiller.compile(loss=SPARSE)
    loss = distiller.compute_loss(
        x, y, np.array(student(x)), sample_weight, mix=Mix(tf.constant(weight), tf.constant(partner))
    )
    mixed = weight * sample_weight + (1 - weight) * sample_weight[partner]
    kl = reference.kl(np.array(teacher(x)), np.array(student(x)), 2.0)
    np.testing.assert_allclose(float(loss), np.mean(mixed * kl), rtol=1e-5)
