"""The main job, end to end: its defaults, its verdict, its selection."""

import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _run(*args, env_extra=None):
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3", **(env_extra or {}))
    return subprocess.run(
        [sys.executable, "-m", "keras_kd", *args], env=env, capture_output=True, text=True,
        timeout=1800, cwd=ROOT,  # The job: ~4 min alone; room for a loaded CI machine.
    )


def test_help_explains_every_option():
    result = _run("demo", "--help")
    assert result.returncode == 0
    for option in ("--output", "--seeds", "--epochs", "--quiet", "--select", "--train-teacher"):
        assert option in result.stdout


ROWS = (
    "| teacher |", "| student: scratch, augmented (the better scratch student on validation",
    "| student: distilled |", "| student: distilled, int8 TFLite (seed 0) |",
)


@pytest.mark.slow
def test_demo_command_end_to_end(tmp_path):
    """README's first command, as a newcomer runs it, with one seed instead of
    three: the same code, 2 trainings instead of `make demo`'s 6. The mean
    over several seeds is the next test's, on a slice of the data."""
    output = tmp_path / "out"
    result = _run("demo", "--output", str(output), "--seeds", "1")
    assert result.returncode == 0, result.stderr[-3000:]
    for row in ROWS:
        assert row in result.stdout
    assert sorted(os.listdir(output)) == ["distilled_student_int8.tflite", "learning_curves.png", "results.md"]
    # One progress line per trained model, no epoch logs.
    assert sum(line.startswith("[") and "/2] seed" in line for line in result.stdout.splitlines()) == 2
    assert "Epoch 1/" not in result.stdout
    assert "over the 5000 test images" in result.stdout
    assert "Distillation clearly helped" in result.stdout or "Distillation did not" in result.stdout \
        or "Distillation helped, by less" in result.stdout


@pytest.mark.slow
def test_demo_verdict_reads_the_numbers_it_measured(tmp_path, monkeypatch):
    from keras_kd import demo

    train, val, test = demo.load()
    small = lambda split, n: (split[0][:n], split[1][:n])  # noqa: E731
    monkeypatch.setattr(demo.job, "load", lambda *args: (small(train, 512), small(val, 256), small(test, 300)))
    setting = demo.Setting(epochs=1, views=2)  # The default 20 views cost ~20 s each here.
    results = demo.run(str(tmp_path / "out"), seeds=2, setting=setting, verbose=0)
    comparison = results["comparison"]
    assert comparison.examples == 300  # Each test image once, its 2 seeds averaged.
    gains = [d - b for d, b in zip(results["test_accuracy"]["distilled"],
                                   results["test_accuracy"][results["baseline"]])]
    np.testing.assert_allclose(comparison.gain, 100 * np.mean(gains), atol=1e-9)
    # The baseline is the scratch variant the selection chose (on validation).
    assert results["baseline"] == "scratch, augmented"
    setting = demo.Setting(epochs=1, views=2, scratch_augmentation=False)
    results = demo.run(str(tmp_path / "unaugmented"), seeds=1, setting=setting, verbose=0)
    assert results["baseline"] == "scratch, no augmentation"
    assert sorted(results["test_accuracy"]) == ["distilled", "scratch, no augmentation"]
    text = (tmp_path / "out" / "results.md").read_text()
    assert f"p = {comparison.p_value:.2g}" in text


@pytest.mark.slow
def test_selection_scores_on_validation_only(monkeypatch, capsys):
    from keras_kd import demo

    train, val, _ = demo.load()
    # The test split is never given: selection cannot read it.
    monkeypatch.setattr(demo.job, "load", lambda *args: ((train[0][:512], train[1][:512]), val, None))
    grid = {
        "scratch": ((0.01, None), (0.01, 0.1)),
        "distilled": ((0.01, 2.0, 0.1, 0, None, 2), (0.01, 2.0, 0.1, 2, 0.05, 3)),
    }
    rows = demo.select(seeds=2, grid=grid, setting=demo.Setting(epochs=1))
    assert [r["method"] for r in rows].count("distilled") == 2 and len(rows) == 4
    assert sorted(r.get("teachers", 0) for r in rows) == [0, 0, 2, 3]
    assert all(len(r["val_accuracy"]) == 2 for r in rows)
    assert "Validation accuracy (2000 images)" in capsys.readouterr().out


def test_the_selection_grid_gives_both_students_the_same_budget():
    from keras_kd import demo

    size = len(demo.SELECTION_GRID["scratch"])
    assert size == len(demo.SELECTION_GRID["distilled"]) >= 10
    assert len(set(demo.SELECTION_GRID["scratch"])) == size
    assert len(set(demo.SELECTION_GRID["distilled"])) == size


def test_the_students_labeled_images_are_the_first_of_each_class():
    from keras_kd import demo

    train, _, _ = demo.load()
    images, labels = demo.student_training_data(train, demo.Setting(labeled_per_class=200))
    assert np.bincount(labels).tolist() == [200] * 10
    # Each class's first 200 images in the stored order, in that order.
    rows = [i for c in range(10) for i in np.flatnonzero(train[1] == c)[:200]]
    expected = np.array(sorted(rows))
    np.testing.assert_array_equal(images, train[0][expected])
    np.testing.assert_array_equal(labels, train[1][expected])
    assert demo.student_training_data(train, demo.Setting(labeled_per_class=None)) is train
