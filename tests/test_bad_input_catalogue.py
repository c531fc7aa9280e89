"""The bad-input catalogue, case by case: the exact error, no file, teacher intact.

Each entry of docs/bad_input_catalogue.json names a case below and quotes the
error it gets (`…` stands for a long repr or path). The test runs the case in
an empty folder and checks that the error is the one quoted, that the folder
is still empty afterwards, and that the teacher's weights and BatchNorm
statistics are bit-identical. The table in docs/bad_input.md is generated
from the same JSON by docs/render_bad_input.py; a test below fails when the
page is out of date.
"""

import importlib.util
import json
import os
import re

import keras
import numpy as np
import pytest
import tensorflow as tf

import keras_kd
from keras_kd import schedules
from tests.conftest import NUM_CLASSES, NUM_FEATURES, make_data, make_mlp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CATALOGUE = os.path.join(ROOT, "docs", "bad_input_catalogue.json")
RENDERER = os.path.join(ROOT, "docs", "render_bad_input.py")
SPARSE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _teacher():
    keras.utils.set_random_seed(1)
    return keras.Sequential(
        [
            keras.Input((NUM_FEATURES,)),
            keras.layers.Dense(16, name="hidden"),
            keras.layers.BatchNormalization(name="norm"),
            keras.layers.ReLU(name="relu"),
            keras.layers.Dense(NUM_CLASSES, name="logits"),
        ],
        name="teacher",
    )


def _student():
    return make_mlp(8, seed=2, name="student")


def _distiller(teacher, **kwargs):
    return keras_kd.Distiller(teacher, _student(), **kwargs)


def _labelled():
    x, y = make_data(n=32)
    return tf.data.Dataset.from_tensor_slices((x, y))


# Each case gets the teacher and the (empty, current) folder.
def temperature_zero(teacher, folder):
    _distiller(teacher, temperature=0)


def alpha_above_one(teacher, folder):
    _distiller(teacher, alpha=1.5)


def teacher_not_a_model(teacher, folder):
    keras_kd.Distiller(lambda x: x, _student())


def same_model_twice(teacher, folder):
    keras_kd.Distiller(teacher, teacher)


def output_shapes_differ(teacher, folder):
    keras_kd.Distiller(teacher, make_mlp(8, seed=2, num_classes=NUM_CLASSES + 1, name="student"))


def softmax_teacher(teacher, folder):
    soft = keras.Sequential([teacher, keras.layers.Softmax()], name="soft_teacher")
    keras_kd.Distiller(soft, _student())


def unknown_layer_name(teacher, folder):
    _distiller(teacher, terms=[keras_kd.losses.LogitMSE(teacher_layer="dense_3")])


def compile_without_student_loss(teacher, folder):
    _distiller(teacher, alpha=0.1).compile(optimizer="adam")


def one_hot_labels_with_sparse_loss(teacher, folder):
    x, y = make_data(n=32)
    data = tf.data.Dataset.from_tensor_slices((x, keras.utils.to_categorical(y, NUM_CLASSES))).batch(16)
    _distiller(teacher).compile(optimizer="adam", loss=SPARSE).fit(data, verbose=0)


def no_labels_with_positive_alpha(teacher, folder):
    x, _ = make_data(n=32)
    data = tf.data.Dataset.from_tensor_slices(x).batch(16)
    _distiller(teacher, alpha=0.2).compile(optimizer="adam", loss=SPARSE).fit(data, verbose=0)


def cache_of_other_data(teacher, folder):
    cache = keras_kd.TeacherCache.compute(teacher, _labelled(), verbose=0)
    x, y = make_data(n=32, seed=9)
    cache.attach(tf.data.Dataset.from_tensor_slices((x, y)))


def cache_of_a_batched_dataset(teacher, folder):
    keras_kd.TeacherCache.compute(teacher, _labelled().batch(8), verbose=0)


def cache_path_not_npy(teacher, folder):
    keras_kd.TeacherCache.compute(teacher, _labelled(), path="logits.txt", verbose=0)


def export_path_not_tflite(teacher, folder):
    keras_kd.export_tflite(_student(), "student.bin")


def export_into_missing_folder(teacher, folder):
    keras_kd.export_tflite(_student(), os.path.join("missing", "student.tflite"))


def int8_without_representative_data(teacher, folder):
    keras_kd.export_tflite(_student(), "student.tflite", quantization="int8")


def float_ops_without_int8(teacher, folder):
    keras_kd.export_tflite(_student(), "student.tflite", quantization="dynamic", float_ops=("DIV",))


def unknown_quantization(teacher, folder):
    keras_kd.callbacks.TFLiteExport("student.tflite", quantization="int4")


def scheduler_on_a_plain_model(teacher, folder):
    student = _student()
    student.compile(optimizer="adam", loss=SPARSE)
    x, y = make_data(n=32)
    annealing = keras_kd.callbacks.LiveValueScheduler(schedules.Linear(4.0, 1.0, duration=2))
    student.fit(x, y, epochs=1, callbacks=[annealing], verbose=0)


def scheduler_for_an_unknown_value(teacher, folder):
    distiller = _distiller(teacher).compile(optimizer="adam", loss=SPARSE)
    x, y = make_data(n=32)
    annealing = keras_kd.callbacks.LiveValueScheduler(schedules={"beta": lambda step: 1.0})
    distiller.fit(x, y, epochs=1, callbacks=[annealing], verbose=0)


def schedule_that_goes_nonfinite(teacher, folder):
    distiller = _distiller(teacher).compile(optimizer="adam", loss=SPARSE)
    x, y = make_data(n=32)
    annealing = keras_kd.callbacks.LiveValueScheduler(lambda epoch: float("inf") if epoch == 1 else 4.0)
    distiller.fit(x, y, epochs=3, callbacks=[annealing], verbose=0)


def export_monitoring_an_unlogged_value(teacher, folder):
    distiller = _distiller(teacher).compile(optimizer="adam", loss=SPARSE)
    x, y = make_data(n=32)
    export = keras_kd.callbacks.TFLiteExport("best.tflite", monitor="val_accuracy")
    distiller.fit(x, y, epochs=1, callbacks=[export], verbose=0)


def loss_weights_in_compile(teacher, folder):
    _distiller(teacher).compile(optimizer="adam", loss=SPARSE, loss_weights=[0.5])


def _image_model(name):
    keras.utils.set_random_seed(3)
    return keras.Sequential(
        [keras.Input((8, 8, 1)), keras.layers.Conv2D(4, 3), keras.layers.GlobalAveragePooling2D(),
         keras.layers.Dense(NUM_CLASSES)],
        name=name,
    )


def augmentation_not_callable(teacher, folder):
    _distiller(teacher, augmentation=0.1)


def augmentation_that_resizes(teacher, folder):
    keras_kd.Distiller(_image_model("teacher"), _image_model("student"),
                       augmentation=keras.layers.RandomCrop(6, 6))


def mixing_inside_augmentation(teacher, folder):
    _distiller(teacher, augmentation=keras.Sequential([keras.layers.MixUp()]))


def teacher_cache_with_augmentation(teacher, folder):
    x, y = make_data(n=32)
    cache = keras_kd.TeacherCache.compute(teacher, x, verbose=0)
    distiller = _distiller(teacher, augmentation=lambda features: features * 1.0)
    distiller.compile(optimizer="adam", loss=SPARSE)
    distiller.fit(cache.attach(x), y, epochs=1, verbose=0)


def replay_of_a_per_batch_crop(teacher, folder):
    images = np.zeros((16, 8, 8, 1), "float32")
    keras_kd.ReplayCache.compute(_image_model("teacher"), images, keras.layers.RandomCrop(6, 6),
                                 views=2, verbose=0)


def lwf_old_head_named_logits(teacher, folder):
    keras_kd.learn_without_forgetting(teacher, keras.layers.Dense(3, name="task_b"))


def lwf_unknown_old_head(teacher, folder):
    keras_kd.learn_without_forgetting(
        teacher, keras.layers.Dense(3, name="task_b"), old_heads={"task_a": "task_z"}
    )


def lwf_new_head_that_does_not_fit(teacher, folder):
    head = keras.Sequential([keras.Input((7,)), keras.layers.Dense(3)], name="task_b")
    keras_kd.learn_without_forgetting(teacher, head, old_heads={"task_a": "logits"})


def lm_vocabularies_differ(teacher, folder):
    from tests import lm_models

    lm_teacher, _ = lm_models.pair()
    keras_kd.Distiller(lm_teacher, lm_models.gpt2(1, 8, 1, vocabulary_size=12))


def lm_tokenizers_differ(teacher, folder):
    from tests import lm_models

    lm_teacher, _ = lm_models.pair()
    other = dict(lm_models.VOCABULARY)
    other["Ġab"], other["ab"] = other["ab"], other["Ġab"]
    keras_kd.Distiller(lm_teacher, lm_models.gpt2(1, 8, 1, lm_models.preprocessor(tokens=lm_models.tokenizer(other))))


def lm_student_sequence_longer_than_teacher(teacher, folder):
    from tests import lm_models

    lm_teacher = lm_models.gpt2(2, 16, 0, lm_models.preprocessor(), max_sequence_length=8)
    keras_kd.Distiller(lm_teacher, lm_models.gpt2(1, 8, 1, lm_models.preprocessor(sequence_length=12)))


def lm_strings_without_student_preprocessor(teacher, folder):
    from tests import lm_models

    lm_teacher, _ = lm_models.pair()
    distiller = keras_kd.Distiller(lm_teacher, lm_models.gpt2(1, 8, 1), alpha=0.0)
    distiller.compile(optimizer="adam").fit(lm_models.TEXTS, epochs=1, verbose=0)


def lm_unbatched_string_dataset(teacher, folder):
    from tests import lm_models

    distiller = keras_kd.Distiller(*lm_models.pair(), alpha=0.0).compile(optimizer="adam")
    distiller.fit(tf.data.Dataset.from_tensor_slices(lm_models.TEXTS), epochs=1, verbose=0)


def lm_chunk_size_zero(teacher, folder):
    from tests import lm_models

    keras_kd.Distiller(*lm_models.pair(), chunk_size=0)


CASES = {
    case.__name__: case
    for case in [
        temperature_zero, alpha_above_one, teacher_not_a_model, same_model_twice,
        output_shapes_differ, softmax_teacher, unknown_layer_name,
        compile_without_student_loss, loss_weights_in_compile,
        one_hot_labels_with_sparse_loss, no_labels_with_positive_alpha,
        cache_of_other_data, cache_of_a_batched_dataset, cache_path_not_npy,
        export_path_not_tflite, export_into_missing_folder,
        int8_without_representative_data, float_ops_without_int8, unknown_quantization,
        export_monitoring_an_unlogged_value, scheduler_on_a_plain_model,
        scheduler_for_an_unknown_value, schedule_that_goes_nonfinite,
        augmentation_not_callable, augmentation_that_resizes, mixing_inside_augmentation,
        teacher_cache_with_augmentation, replay_of_a_per_batch_crop,
        lwf_old_head_named_logits, lwf_unknown_old_head, lwf_new_head_that_does_not_fit,
        lm_vocabularies_differ, lm_tokenizers_differ, lm_student_sequence_longer_than_teacher,
        lm_strings_without_student_preprocessor, lm_unbatched_string_dataset,
        lm_chunk_size_zero,
    ]
}


def _catalogue():
    with open(CATALOGUE, encoding="utf-8") as f:
        return json.load(f)


def _quoted_errors():
    """{case name: quoted error} from docs/bad_input_catalogue.json."""
    return {row["case"]: row["error"] for row in _catalogue()}


def test_catalogue_lists_every_case_once():
    rows = _catalogue()
    names = [row["case"] for row in rows]
    assert len(names) == len(set(names)), "a case is listed twice"
    assert sorted(names) == sorted(CASES)
    assert len(CASES) >= 12
    for row in rows:
        assert sorted(row) == ["case", "error", "input"], row
        assert all(isinstance(row[key], str) and row[key] for key in row), row


def test_docs_table_is_rendered_from_the_catalogue():
    spec = importlib.util.spec_from_file_location("render_bad_input", RENDERER)
    renderer = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(renderer)
    with open(renderer.PAGE, encoding="utf-8") as f:
        page = f.read()
    expected = renderer.render_table(renderer.load_catalogue(CATALOGUE))
    assert renderer.current_table(page) == expected, (
        "docs/bad_input.md is out of date with docs/bad_input_catalogue.json: "
        "run python docs/render_bad_input.py"
    )


def _state(model):
    return [v.numpy().copy() for v in model.variables]


@pytest.mark.parametrize("name", sorted(CASES))
def test_bad_input_gets_the_error_the_catalogue_quotes(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    teacher = _teacher()
    teacher(np.zeros((2, NUM_FEATURES), "float32"), training=True)  # Non-trivial BatchNorm state.
    teacher.layers[1].moving_mean.assign(np.full(16, 0.25, "float32"))
    before = _state(teacher)
    with pytest.raises(Exception) as raised:
        CASES[name](teacher, tmp_path)
    quoted = _quoted_errors()[name]
    actual = f"{type(raised.value).__name__}: {raised.value}"
    pattern = ".*".join(re.escape(part) for part in quoted.split("…"))
    assert re.fullmatch(pattern, actual, flags=re.DOTALL), f"docs/bad_input_catalogue.json says\n{quoted}\nbut got\n{actual}"
    assert os.listdir(tmp_path) == [], "a file was left behind"
    for b, a in zip(before, _state(teacher)):
        np.testing.assert_array_equal(a, b)
