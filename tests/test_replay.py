"""The replay cache: the student sees exactly the teacher's views, no teacher pass."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_kd
from tests.test_augmentation import SPARSE
from tests.test_augmentation import Recorder
from tests.test_augmentation import _cnn
from tests.test_augmentation import _data
from tests.test_augmentation import _translate_and_flip

VIEWS = 3


def _examples(n=24):
    x, y = _data(n)
    return x, y, tf.data.Dataset.from_tensor_slices((x, y))


def _recording_teacher():
    keras.utils.set_random_seed(0)
    seen = Recorder(name="teacher_inputs")
    return _cnn("teacher", 8, seen), seen


def test_replayed_views_are_bit_identical_to_the_teachers_views():
    teacher, teacher_seen = _recording_teacher()
    x, y, examples = _examples()
    augmentation = _translate_and_flip()
    replay = keras_kd.ReplayCache.compute(
        teacher, examples, augmentation, views=VIEWS, batch_size=10, verbose=0
    )
    teachers_views = np.concatenate(teacher_seen.seen)  # View after view, in order.
    assert teachers_views.shape == (VIEWS * len(x),) + x.shape[1:]
    student_seen = Recorder(name="student_inputs")
    student = _cnn("student", 4, student_seen)
    distiller = keras_kd.Distiller(teacher, student, augmentation=augmentation)
    distiller.compile(loss=SPARSE, run_eagerly=True)
    teacher_seen.seen.clear()
    # Batches of 7 cut the views differently from the teacher's batches of 10.
    distiller.fit(replay.attach(examples).batch(7), epochs=1, verbose=0)
    assert teacher_seen.seen == []  # The teacher never ran.
    np.testing.assert_array_equal(np.concatenate(student_seen.seen), teachers_views)
    assert not np.allclose(teachers_views[: len(x)], x)
    assert not np.allclose(teachers_views[: len(x)], teachers_views[len(x): 2 * len(x)])


def test_loss_on_replayed_data_equals_the_online_loss_on_that_view():
    teacher, teacher_seen = _recording_teacher()
    x, y, examples = _examples(16)
    augmentation = _translate_and_flip()
    replay = keras_kd.ReplayCache.compute(teacher, examples, augmentation, views=1, verbose=0)
    view = teacher_seen.seen[0]
    keras.utils.set_random_seed(1)
    student = _cnn("student")
    distiller = keras_kd.Distiller(teacher, student, temperature=2.0, alpha=0.4, augmentation=augmentation)
    distiller.compile(optimizer=keras.optimizers.SGD(0.0), loss=SPARSE)
    replayed = distiller.fit(replay.attach(examples).batch(16), epochs=1, verbose=0)
    # The same models, no augmentation, the teacher running on the view.
    online = keras_kd.Distiller(teacher, student, temperature=2.0, alpha=0.4)
    online.compile(loss=SPARSE, run_eagerly=True)  # The recorder runs eagerly.
    expected = online.evaluate(view, y, batch_size=16, return_dict=True, verbose=0)
    for name in ("loss", "student_loss", "kl_loss"):
        np.testing.assert_allclose(replayed.history[name][0], expected[name], rtol=1e-6, err_msg=name)


@pytest.mark.parametrize("steps_per_execution", [3, 6])
def test_several_steps_per_execution_train_the_same_student(steps_per_execution):
    """What the main job relies on: running several steps per call
    (`compile(steps_per_execution=...)`, up to a whole epoch) changes no step
    of a replayed run. (It must divide the epoch: Keras 3.15 rounds an epoch
    up to whole calls, 8 steps for `steps_per_epoch=6` at 4 per call.)"""
    teacher, _ = _recording_teacher()
    x, y, examples = _examples(40)
    augmentation = _translate_and_flip()
    replay = keras_kd.ReplayCache.compute(teacher, examples, augmentation, views=2, verbose=0)

    def train(steps):
        keras.utils.set_random_seed(3)
        student = _cnn("student")
        distiller = keras_kd.Distiller(teacher, student, temperature=2.0, alpha=0.4, augmentation=augmentation)
        distiller.compile(optimizer=keras.optimizers.Adam(0.01), loss=SPARSE, steps_per_execution=steps)
        data = replay.attach(examples).shuffle(80, seed=0).batch(16).repeat()
        history = distiller.fit(data, epochs=3, steps_per_epoch=6, verbose=0)
        assert distiller.steps_per_execution == steps
        return student.get_weights(), history.history["loss"]

    (one_weights, one_losses), (many_weights, many_losses) = train(1), train(steps_per_execution)
    for one, many in zip(one_weights, many_weights):
        np.testing.assert_array_equal(many, one)
    np.testing.assert_array_equal(many_losses, one_losses)


def test_cache_on_disk_is_memory_mapped_and_keeps_float16_logits(tmp_path):
    teacher, _ = _recording_teacher()
    x, y, examples = _examples()
    augmentation = _translate_and_flip()
    in_memory = keras_kd.ReplayCache.compute(
        teacher, examples, _translate_and_flip(), views=2, verbose=0, dtype="float16"
    )
    on_disk = keras_kd.ReplayCache.compute(
        teacher, examples, augmentation, views=2, verbose=0, dtype="float16", path=tmp_path / "replay"
    )
    assert isinstance(on_disk.logits, np.memmap) and on_disk.logits.dtype == np.float16
    np.testing.assert_array_equal(on_disk.logits, in_memory.logits)
    for name, array in in_memory.transformations.items():
        np.testing.assert_array_equal(on_disk.transformations[name], array)
    assert not [f for f in os.listdir(tmp_path / "replay") if f.endswith(".tmp.npy") or ".tmp" in f]
    loaded = keras_kd.ReplayCache.load(tmp_path / "replay", augmentation)
    assert (loaded.views, len(loaded)) == (2, len(x))
    # Without its fingerprint file (written last) a folder is no cache.
    os.remove(tmp_path / "replay" / "replay.json")
    with pytest.raises(ValueError, match="replay.json is missing"):
        keras_kd.ReplayCache.load(tmp_path / "replay")


def test_attaching_to_other_data_is_refused():
    teacher, _ = _recording_teacher()
    x, y, examples = _examples()
    replay = keras_kd.ReplayCache.compute(teacher, examples, _translate_and_flip(), views=1, verbose=0)
    with pytest.raises(ValueError, match="computed for other data"):
        replay.attach(examples.shuffle(24, seed=0))


@pytest.mark.parametrize(
    "augmentation, message",
    [
        (keras.layers.RandomCrop(6, 6), "not a flat dict of per-example tensors"),
        (lambda images: images + 1.0, "must be Keras augmentation layers"),
    ],
)
def test_augmentation_that_cannot_be_replayed_is_refused(augmentation, message):
    teacher, _ = _recording_teacher()
    _, _, examples = _examples()
    with pytest.raises(ValueError, match=message):
        keras_kd.ReplayCache.compute(teacher, examples, augmentation, views=1, verbose=0)


def test_replayed_data_needs_the_augmentation_and_no_mixing():
    teacher, _ = _recording_teacher()
    _, _, examples = _examples()
    augmentation = _translate_and_flip()
    attached = keras_kd.ReplayCache.compute(
        teacher, examples, augmentation, views=1, verbose=0
    ).attach(examples).batch(8)
    without = keras_kd.Distiller(teacher, _cnn("student"))
    without.compile(loss=SPARSE)
    with pytest.raises(ValueError, match="augmentation=cache.augmentation"):
        without.fit(attached, epochs=1, verbose=0)
    mixing = keras_kd.Distiller(teacher, _cnn("student"), augmentation=augmentation, mixing="mixup")
    mixing.compile(loss=SPARSE)
    with pytest.raises(ValueError, match="cannot be replayed"):
        mixing.fit(attached, epochs=1, verbose=0)


def test_cache_on_disk_attaches_the_same_elements_as_in_memory(tmp_path):
    teacher, _ = _recording_teacher()
    x, y, examples = _examples(20)
    keras.utils.set_random_seed(4)
    in_memory = keras_kd.ReplayCache.compute(teacher, examples, _translate_and_flip(), views=2, verbose=0)
    keras.utils.set_random_seed(4)
    on_disk = keras_kd.ReplayCache.compute(
        teacher, examples, _translate_and_flip(), views=2, verbose=0, path=tmp_path / "replay"
    )
    pairs = zip(in_memory.attach(examples), on_disk.attach(examples))
    count = 0
    for (a, label_a), (b, label_b) in pairs:
        tf.nest.map_structure(np.testing.assert_array_equal, a, b)
        assert label_a == label_b
        count += 1
    assert count == 40


def test_several_teachers_logits_are_stored_side_by_side():
    teacher, _ = _recording_teacher()
    other = _cnn("other_teacher", 6)
    x, y, examples = _examples(12)
    replay = keras_kd.ReplayCache.compute([teacher, other], examples, _translate_and_flip(), views=2,
                                          verbose=0)
    assert replay.logits.shape == (2, 12, 2, 5)
    distiller = keras_kd.Distiller([teacher, other], _cnn("student"), augmentation=_translate_and_flip())
    distiller.compile(loss=SPARSE)
    history = distiller.fit(replay.attach(examples).batch(6), epochs=1, verbose=0)
    assert np.isfinite(history.history["loss"][0])


def test_replay_of_rotation_zoom_and_a_deterministic_layer_is_bit_identical():
    teacher, teacher_seen = _recording_teacher()
    x, y, examples = _examples(20)
    augmentation = keras.Sequential([
        keras.layers.Rescaling(2.0, offset=-1.0),  # Draws nothing: applied as it is.
        keras.layers.RandomRotation(0.2, seed=3),
        keras.layers.RandomZoom(0.2, seed=4),
    ])
    replay = keras_kd.ReplayCache.compute(teacher, examples, augmentation, views=2, batch_size=8, verbose=0)
    teachers_views = np.concatenate(teacher_seen.seen)
    student_seen = Recorder(name="student_inputs")
    distiller = keras_kd.Distiller(teacher, _cnn("student", 4, student_seen), augmentation=augmentation)
    distiller.compile(loss=SPARSE, run_eagerly=True)
    distiller.fit(replay.attach(examples).batch(6), epochs=1, verbose=0)
    np.testing.assert_array_equal(np.concatenate(student_seen.seen), teachers_views)


def test_evaluating_on_replayed_views_is_refused():
    teacher, _ = _recording_teacher()
    _, _, examples = _examples()
    augmentation = _translate_and_flip()
    attached = keras_kd.ReplayCache.compute(teacher, examples, augmentation, views=1, verbose=0).attach(examples)
    distiller = keras_kd.Distiller(teacher, _cnn("student"), augmentation=augmentation)
    distiller.compile(loss=SPARSE)
    with pytest.raises(ValueError, match="evaluation never augments"):
        distiller.evaluate(attached.batch(8), verbose=0)
