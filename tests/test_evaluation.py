"""The shared evaluation report, checked against numbers computed independently."""

import os
import statistics

import numpy as np
import pytest

import keras_kd
from keras_kd.deployment.evaluation import EvaluationReport, ModelEvaluation
from tests.conftest import make_data


def test_keras_models_and_tflite_files_side_by_side(teacher, student, tmp_path):
    x, y = make_data(n=120, seed=5)
    path = tmp_path / "student.tflite"
    keras_kd.export_tflite(student, path, sample=x)
    report = keras_kd.evaluate_models(
        {"teacher": teacher, "student": student, "student tflite": path},
        (x, y),
        parameters={"student tflite": student.count_params()},
        latency_examples=20,
    )
    for name, model in (("teacher", teacher), ("student", student)):
        wrong = int(np.sum(np.argmax(model.predict(x, verbose=0), -1) != y))
        row = report[name]
        assert row.errors == wrong and row.examples == 120
        assert row.accuracy == pytest.approx(1 - wrong / 120)
        assert row.parameters == model.count_params()
        assert row.bytes > 0 and row.latency_ms > 0
    assert report["student tflite"].errors == report["student"].errors
    assert report["student tflite"].bytes == os.path.getsize(path)
    assert report["student tflite"].parameters == student.count_params()
    assert "| student tflite |" in str(report)


def test_mean_and_std_over_seeds():
    def row(accuracy, errors):
        return ModelEvaluation("student", accuracy, errors, 100, 1234, 5000, 0.01)

    reports = [EvaluationReport([row(0.9, 10)]), EvaluationReport([row(0.95, 5)]), EvaluationReport([row(0.92, 8)])]
    table = keras_kd.summarize_reports(reports)
    mean = statistics.mean([90.0, 95.0, 92.0])
    std = statistics.stdev([90.0, 95.0, 92.0])
    assert f"{mean:.2f} ± {std:.2f}%" in table
    assert f"{statistics.mean([10, 5, 8]):.1f} ± {statistics.stdev([10, 5, 8]):.1f} of 100" in table
    assert "(mean ± std, 3 seeds)" in table and "| 1,234 |" in table


def test_bad_models_are_refused(tmp_path):
    x, y = make_data(n=8)
    with pytest.raises(ValueError, match=r"Argument `models` must map names to keras.Model objects, .tflite paths or numpy arrays of scores. Received for 'x': 'model.h5'"):
        keras_kd.evaluate_models({"x": "model.h5"}, (x, y))


def test_learning_curves_png(tmp_path):
    histories = {
        "scratch": [{"val_accuracy": [0.5, 0.7, 0.8]}, {"val_accuracy": [0.55, 0.72, 0.79]}],
        "distilled": {"val_accuracy": [0.6, 0.75, 0.85]},
    }
    path = keras_kd.plot_histories(histories, tmp_path / "curves.png", title="t")
    with open(path, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    assert os.listdir(tmp_path) == ["curves.png"]


def test_macro_f1_matches_scikit_learn():
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    labels = rng.integers(0, 3, 500)
    predictions = np.where(rng.random(500) < 0.7, labels, rng.integers(0, 3, 500))
    predictions[predictions == 2] = 1  # One class never predicted: its F1 is 0.
    assert keras_kd.macro_f1_score(labels, predictions) == pytest.approx(
        f1_score(labels, predictions, average="macro"), abs=1e-12
    )


def test_precomputed_scores_row_and_macro_f1_column():
    x, y = make_data(n=60, seed=6)
    scores = np.random.default_rng(1).normal(size=(60, int(y.max()) + 1))
    report = keras_kd.evaluate_models(
        {"cached teacher": scores}, (x, y), parameters={"cached teacher": 1234}
    )
    row = report["cached teacher"]
    wrong = int(np.sum(np.argmax(scores, -1) != y))
    assert (row.errors, row.parameters, row.bytes, row.latency_ms) == (wrong, 1234, None, None)
    table = keras_kd.summarize_reports([report, report], macro_f1=True)
    assert "| macro-F1 |" in table
    assert f"| {row.macro_f1:.3f} ± 0.000 |" in table
    assert "| 1,234 | — | — |" in table
    with pytest.raises(ValueError, match=r"the test data has 60. Received for 'short': scores of shape \(59, \d+\)"):
        keras_kd.evaluate_models({"short": scores[:59]}, (x, y))


def test_mcnemar_matches_scipys_exact_binomial_test():
    from scipy import stats

    rng = np.random.default_rng(0)
    first = rng.random(3000) < 0.88
    second = first.copy()
    flips = rng.choice(3000, 160, replace=False)
    second[flips[:110]] = True  # Mostly fixes ...
    second[flips[110:]] = False  # ... some new mistakes.
    comparison = keras_kd.mcnemar_test(first, second)
    only_first = int(np.sum(first & ~second))
    only_second = int(np.sum(second & ~first))
    assert (comparison.only_first, comparison.only_second) == (only_first, only_second)
    expected = stats.binomtest(only_first, only_first + only_second, 0.5).pvalue
    np.testing.assert_allclose(comparison.p_value, expected, rtol=1e-9)
    np.testing.assert_allclose(comparison.gain, 100 * (second.mean() - first.mean()))
    assert keras_kd.mcnemar_test(first, first).p_value == 1.0


def test_mcnemar_with_seeds_counts_each_example_once():
    # Three seeds, four examples: the second model better on examples 0 and
    # 1 on average, worse on 2, level on 3.
    first = np.array([[0, 0, 1, 1], [0, 1, 1, 0], [1, 0, 1, 1]], bool)
    second = np.array([[1, 1, 0, 1], [0, 1, 1, 0], [1, 1, 0, 1]], bool)
    comparison = keras_kd.mcnemar_test(first, second)
    assert (comparison.examples, comparison.only_first, comparison.only_second) == (4, 1, 2)
    np.testing.assert_allclose(comparison.gain, 100 * (second.mean() - first.mean()))
    np.testing.assert_allclose(comparison.p_value, 1.0)  # 2 vs 1 of 3: no evidence.
    with pytest.raises(ValueError, match="Arguments `first_correct` and `second_correct`"):
        keras_kd.mcnemar_test(first, second[:2])
