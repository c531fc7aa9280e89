"""Cached teacher logits: same loss as running the teacher, and never mis-paired."""

import os

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_kd
from tests.conftest import make_data
from tests.test_frozen_teacher import HiddenMeanMatch, _counted_mlp

SPARSE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _examples(n=96, seed=0):
    x, y = make_data(n=n, seed=seed)
    return tf.data.Dataset.from_tensor_slices((x, y))


def _distiller(teacher, student):
    return keras_kd.Distiller(teacher, student, temperature=4.0, alpha=0.3).compile(
        optimizer=keras.optimizers.SGD(0.0), loss=SPARSE, metrics=["accuracy"]
    )


@pytest.mark.parametrize("storage", ["memory", "disk"])
def test_cached_and_online_losses_are_equal_also_after_a_temperature_change(teacher, student, tmp_path, storage):
    examples = _examples()
    path = None if storage == "memory" else tmp_path / "logits.npy"
    cache = keras_kd.TeacherCache.compute(teacher, examples, batch_size=32, path=path, verbose=0)
    cached = cache.attach(examples).batch(32)
    online = examples.batch(32)
    distiller = _distiller(teacher, student)
    for temperature in (4.0, 1.5):
        distiller.temperature.assign(temperature)
        with_cache = distiller.evaluate(cached, return_dict=True, verbose=0)
        without = distiller.evaluate(online, return_dict=True, verbose=0)
        assert sorted(with_cache) == sorted(without)
        for key in without:
            np.testing.assert_allclose(with_cache[key], without[key], rtol=1e-6, err_msg=key)
    if storage == "disk":
        assert isinstance(cache.logits, np.memmap)
        assert sorted(os.listdir(tmp_path)) == ["logits.npy", "logits.npy.json"]
        reloaded = keras_kd.TeacherCache.load(path)
        np.testing.assert_array_equal(reloaded.logits, cache.logits)


def test_the_teacher_never_runs_during_a_cached_fit(student):
    teacher = _counted_mlp(32, 1, "teacher")
    examples = _examples()
    cache = keras_kd.TeacherCache.compute(teacher, examples, verbose=0)
    counter = teacher.get_layer("counter").calls
    calls_after_caching = counter.numpy()
    distiller = keras_kd.Distiller(teacher, student, alpha=0.3).compile(optimizer="adam", loss=SPARSE)
    history = distiller.fit(cache.attach(examples).shuffle(96, seed=1).batch(16), epochs=3, verbose=0)
    assert counter.numpy() == calls_after_caching
    assert history.history["kl_loss"][-1] < history.history["kl_loss"][0]


def test_shuffling_after_attach_moves_inputs_and_logits_together(teacher):
    examples = _examples()
    cache = keras_kd.TeacherCache.compute(teacher, examples, verbose=0)
    shuffled = cache.attach(examples).shuffle(96, seed=3).batch(24)
    first_rows = []
    for batch_x, _ in shuffled:
        np.testing.assert_allclose(
            batch_x[keras_kd.cache.LOGITS_KEY], teacher(batch_x[keras_kd.cache.INPUTS_KEY]), rtol=1e-5, atol=1e-6
        )
        first_rows.append(batch_x[keras_kd.cache.INPUTS_KEY][0, 0].numpy())
    x, _ = make_data(n=96)
    assert not np.allclose(first_rows, x[::24, 0])  # It really was shuffled.


def test_float16_storage_is_close(teacher):
    examples = _examples()
    cache = keras_kd.TeacherCache.compute(teacher, examples, dtype="float16", verbose=0)
    assert cache.logits.dtype == np.float16
    x, _ = make_data(n=96)
    np.testing.assert_allclose(cache.logits, teacher(x), rtol=2e-3, atol=2e-3)


@pytest.mark.parametrize(
    "other, message",
    [
        (lambda ds: ds.shuffle(96, seed=0), r"These teacher logits were computed for other data: the dataset has 96 examples with input fingerprint"),
        (lambda ds: ds.take(95), r"the dataset has 95 examples .* the cache 96 examples"),
        (lambda ds: _examples(seed=1), r"These teacher logits were computed for other data"),
    ],
    ids=["shuffled", "shorter", "other_inputs"],
)
def test_mismatched_data_is_refused(teacher, other, message):
    examples = _examples()
    cache = keras_kd.TeacherCache.compute(teacher, examples, verbose=0)
    with pytest.raises(ValueError, match=message):
        cache.attach(other(examples))


def test_bad_cache_inputs(teacher, tmp_path):
    examples = _examples()
    with pytest.raises(ValueError, match=r"Argument `dataset` looks batched: its inputs have shape \(None, 12\)"):
        keras_kd.TeacherCache.compute(teacher, examples.batch(8), verbose=0)
    with pytest.raises(ValueError, match=r"Argument `dataset` must be an unbatched tf.data.Dataset .* or a numpy array of inputs. Received: list"):
        keras_kd.TeacherCache.compute(teacher, [1, 2], verbose=0)
    with pytest.raises(ValueError, match=r"Argument `dtype` must be 'float32' or 'float16'"):
        keras_kd.TeacherCache.compute(teacher, examples, dtype="int8", verbose=0)
    with pytest.raises(ValueError, match=r"Argument `path` must end with '.npy'"):
        keras_kd.TeacherCache.compute(teacher, examples, path=tmp_path / "x.bin", verbose=0)
    with pytest.raises(ValueError, match=r"No teacher cache at .*missing.npy"):
        keras_kd.TeacherCache.load(tmp_path / "missing.npy")
    assert os.listdir(tmp_path) == []


def test_terms_on_teacher_layers_cannot_use_the_cache(student):
    teacher = _counted_mlp(32, 1, "teacher")
    student = _counted_mlp(8, 2, "student")
    examples = _examples()
    cache = keras_kd.TeacherCache.compute(teacher, examples, verbose=0)
    terms = [keras_kd.losses.KLDivergence(), HiddenMeanMatch(teacher_layer="hidden", student_layer="hidden")]
    distiller = keras_kd.Distiller(teacher, student, terms=terms, alpha=0.0).compile(optimizer="sgd")
    with pytest.raises(ValueError, match=r"Cached teacher outputs hold the teacher's logits only, but terms read the teacher layers \['hidden'\]"):
        distiller.fit(cache.attach(examples).batch(16), verbose=0)


def test_arrays_attach_as_a_dict_that_keras_shuffles(teacher, student):
    x, y = make_data(n=96)
    cache = keras_kd.TeacherCache.compute(teacher, x, verbose=0)
    attached = cache.attach(x)
    np.testing.assert_allclose(attached[keras_kd.cache.LOGITS_KEY], teacher(x), rtol=1e-5, atol=1e-6)
    # A cache from the (x, y) dataset fits the same input array, and vice versa.
    from_dataset = keras_kd.TeacherCache.compute(teacher, _examples(), verbose=0)
    assert from_dataset.fingerprint == cache.fingerprint
    distiller = _distiller(teacher, student)
    with_cache = distiller.evaluate(attached, y, batch_size=32, return_dict=True, verbose=0)
    without = distiller.evaluate(x, y, batch_size=32, return_dict=True, verbose=0)
    for key in without:
        np.testing.assert_allclose(with_cache[key], without[key], rtol=1e-6, err_msg=key)
    distiller.fit(attached, y, batch_size=16, shuffle=True, epochs=1, verbose=0)
    with pytest.raises(ValueError, match=r"These teacher logits were computed for other data"):
        cache.attach(x[::-1].copy())


@pytest.mark.parametrize("storage", ["memory", "disk"])
@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_read_returns_the_rows_asked_for_in_their_order(teacher, tmp_path, storage, dtype):
    examples = _examples()
    path = None if storage == "memory" else tmp_path / "logits.npy"
    cache = keras_kd.TeacherCache.compute(teacher, examples, dtype=dtype, path=path, verbose=0)
    x, _ = make_data(n=96)
    expected = np.asarray(teacher(x)).astype(dtype)
    rows = np.array([95, 3, 3, 0, 41])  # Unsorted, repeated, both ends.
    values = cache.read(rows)
    assert values.dtype == np.dtype(dtype) and values.shape == (5,) + expected.shape[1:]
    np.testing.assert_allclose(values, expected[rows], rtol=1e-6)
    assert not isinstance(values, np.memmap)
    assert cache.read(np.array([], np.int64)).shape == (0,) + expected.shape[1:]
    with pytest.raises(ValueError, match=r"Argument `rows` must hold example numbers in \[0, 96\). Received: rows from 3 to 96"):
        cache.read([3, 96])


def test_read_refuses_a_truncated_cache_file(teacher, tmp_path):
    path = tmp_path / "logits.npy"
    keras_kd.TeacherCache.compute(teacher, _examples(), path=path, verbose=0)
    cache = keras_kd.TeacherCache.load(path)
    with open(path, "r+b") as f:  # Cut the last row in half after loading.
        f.truncate(os.path.getsize(path) - cache.logits[0].nbytes // 2)
    np.testing.assert_array_equal(cache.read([0]).shape, (1,) + cache.logits.shape[1:])
    with pytest.raises(ValueError, match="The teacher cache file ends before its last row: it is truncated"):
        cache.read([95])


@pytest.mark.parametrize("storage", ["memory", "disk"])
def test_attach_batched_shuffles_like_the_plain_dataset_and_pairs_each_row(teacher, tmp_path, storage):
    examples = _examples()
    path = None if storage == "memory" else tmp_path / "logits.npy"
    cache = keras_kd.TeacherCache.compute(teacher, examples, path=path, verbose=0)
    attached = cache.attach_batched(examples, 24, shuffle_seed=3)
    plain = examples.shuffle(96, seed=3, reshuffle_each_iteration=True).batch(24)
    epochs = []
    for _ in range(2):  # Reshuffled each epoch, still in step with the plain dataset.
        rows = []
        for (batch_x, batch_y), (plain_x, plain_y) in zip(attached, plain, strict=True):
            inputs = batch_x[keras_kd.cache.INPUTS_KEY]
            np.testing.assert_array_equal(inputs, plain_x)
            np.testing.assert_array_equal(batch_y, plain_y)
            np.testing.assert_allclose(batch_x[keras_kd.cache.LOGITS_KEY], teacher(inputs), rtol=1e-5, atol=1e-6)
            rows.append(inputs.numpy())
        epochs.append(np.concatenate(rows))
    x, _ = make_data(n=96)
    assert not np.array_equal(epochs[0], x) and not np.array_equal(epochs[0], epochs[1])
    in_order = np.concatenate([b[0][keras_kd.cache.INPUTS_KEY] for b in cache.attach_batched(examples, 40)])
    np.testing.assert_array_equal(in_order, x)
    with pytest.raises(ValueError, match=r"These teacher logits were computed for other data"):
        cache.attach_batched(examples.take(95), 24)
    with pytest.raises(ValueError, match=r"Argument `batch_size` must be an int >= 1. Received: batch_size=0"):
        cache.attach_batched(examples, 0)


def test_a_distiller_fits_on_attach_batched_without_running_the_teacher(student, tmp_path):
    teacher = _counted_mlp(32, 1, "teacher")
    examples = _examples()
    cache = keras_kd.TeacherCache.compute(teacher, examples, path=tmp_path / "logits.npy", verbose=0)
    counter = teacher.get_layer("counter").calls
    calls_after_caching = counter.numpy()
    distiller = keras_kd.Distiller(teacher, student, alpha=0.3).compile(optimizer="adam", loss=SPARSE)
    history = distiller.fit(cache.attach_batched(examples, 16, shuffle_seed=1), epochs=3, verbose=0)
    assert counter.numpy() == calls_after_caching
    assert history.history["kl_loss"][-1] < history.history["kl_loss"][0]
