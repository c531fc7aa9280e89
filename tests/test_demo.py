"""The main job, end to end with tiny settings, on the embedded and the tfds data."""

import os
import pathlib
import subprocess
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
SHARED_TFDS = ROOT.parent / "shared" / "tensorflow_datasets"


def _run(*args, env_extra=None):
    env = dict(os.environ, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3", **(env_extra or {}))
    return subprocess.run(
        [sys.executable, "-m", "keras_kd", *args], env=env, capture_output=True, text=True,
        timeout=900, cwd=ROOT,
    )


def test_help_explains_every_option():
    result = _run("demo", "--help")
    assert result.returncode == 0
    for option in ("--dataset", "--data-dir", "--output", "--seeds", "--epochs", "--select"):
        assert option in result.stdout


def _check_outputs(result, output):
    assert result.returncode == 0, result.stderr[-3000:]
    for row in ("| teacher |", "| scratch student |", "| distilled student |", "| distilled student, int8 TFLite |"):
        assert row in result.stdout
    assert sorted(os.listdir(output)) == ["distilled_student_int8.tflite", "learning_curves.png", "results.md"]


@pytest.mark.slow
def test_demo_with_its_defaults_on_the_embedded_digits(tmp_path):
    """README's first command, as a newcomer runs it (minus the progress lines)."""
    output = tmp_path / "out"
    result = _run("demo", "--quiet", "--output", str(output))
    _check_outputs(result, output)
    assert "(mean ± std, 3 seeds)" in result.stdout and "of 360" in result.stdout
    assert "Distillation helped" in result.stdout or "Distillation did not beat" in result.stdout


@pytest.mark.slow
@pytest.mark.skipif(not SHARED_TFDS.is_dir(), reason="needs the offline tfds data in ../shared")
def test_demo_on_tfds_mnist(tmp_path):
    output = tmp_path / "mnist"
    result = _run(
        "demo", "--dataset", "mnist", "--data-dir", str(SHARED_TFDS), "--seeds", "1",
        "--epochs", "1", "--teacher-epochs", "1", "--quiet", "--output", str(output),
    )
    _check_outputs(result, output)
    assert "of 10000" in result.stdout


@pytest.mark.slow
def test_selection_scores_on_validation_only(capsys):
    from keras_kd import demo

    grid = {"student_units": (8,), "temperature": (4.0,), "alpha": (0.5,), "epochs": (2,)}
    rows = demo.select("digits", seeds=2, grid=grid, verbose=0)
    assert [r["method"] for r in rows].count("scratch") == 1 and len(rows) == 2
    assert all(len(r["val_accuracy"]) == 2 for r in rows)
    assert "216 validation images" in capsys.readouterr().out  # Never the 360 test images.
