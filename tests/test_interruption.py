"""A SIGKILL mid-run loses nothing: resumed fits and exports are exact."""

import os
import random
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import keras_kd
from keras_kd import schedules

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 300  # Seconds; no subprocess may outlive it.


def _start(module, *args):
    env = dict(os.environ, PYTHONPATH=ROOT, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")
    return subprocess.Popen(
        [sys.executable, "-m", module, *map(str, args)],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )


def _run(module, *args):
    process = _start(module, *args)
    try:
        output, _ = process.communicate(timeout=TIMEOUT)
    finally:
        process.kill()
    assert process.returncode == 0, output


def _kill_when(process, marker, delay=0.0):
    """Reads `process`'s output until `marker`, waits `delay` s, SIGKILLs it."""
    deadline = time.monotonic() + TIMEOUT
    lines = []
    try:
        for line in process.stdout:
            lines.append(line)
            if line.strip() == marker:
                time.sleep(delay)
                os.kill(process.pid, signal.SIGKILL)
                break
            assert time.monotonic() < deadline, "".join(lines)
        process.wait(timeout=30)
    finally:
        process.kill()
        process.stdout.close()
    assert process.returncode == -signal.SIGKILL, "".join(lines)


def _fit(tmp_path, name, shuffle=False, kill_at=None, augment=False, lose_random_states=False):
    backup, out = tmp_path / f"{name}_backup", tmp_path / f"{name}.npz"
    flags = (["--shuffle"] if shuffle else []) + (["--augment"] if augment else [])
    flags += ["--lose-view-states"] if lose_random_states else []
    if kill_at is not None:
        process = _start("tests.interruption_script", "--backup", backup, "--out", out,
                         "--pause-at", *kill_at, *flags)
        _kill_when(process, "PAUSED")
        assert not out.exists()
    _run("tests.interruption_script", "--backup", backup, "--out", out, *flags)
    return dict(np.load(out))


@pytest.mark.slow
def test_killed_fit_resumes_to_the_uninterrupted_result(tmp_path):
    uninterrupted = _fit(tmp_path, "uninterrupted")
    # Killed in the middle of epoch 3 (of 4): BackupAndRestore restarts it.
    resumed = _fit(tmp_path, "resumed", kill_at=(2, 4))
    assert resumed["epochs_run"] == 2 and uninterrupted["epochs_run"] == 4
    assert sorted(resumed) == sorted(uninterrupted)
    for key in uninterrupted:
        if key == "epochs_run":
            continue
        # Deterministic ops on, the Dropout state restored: equal to float32
        # round-off (the same ops in the same order, so in fact bit-equal).
        np.testing.assert_allclose(resumed[key], uninterrupted[key], rtol=1e-6, atol=1e-7, err_msg=key)
    assert uninterrupted["iterations"] == 32
    # The last step (31) of the 32-step cosine from 8 to 1 set the temperature.
    expected = float(schedules.Cosine(8.0, 1.0, duration=32)(31))
    np.testing.assert_allclose(uninterrupted["temperature"], expected, rtol=1e-6)


@pytest.mark.slow
def test_killed_fit_with_augmentation_resumes_to_the_uninterrupted_result(tmp_path):
    # The augmentation's and the mixing's seed states are saved with the
    # Distiller: the restored run draws the views the uninterrupted one drew.
    uninterrupted = _fit(tmp_path, "uninterrupted", augment=True)
    resumed = _fit(tmp_path, "resumed", kill_at=(2, 4), augment=True)
    assert resumed["epochs_run"] == 2 and uninterrupted["epochs_run"] == 4
    for key in uninterrupted:
        if key != "epochs_run":
            np.testing.assert_allclose(resumed[key], uninterrupted[key], rtol=1e-6, atol=1e-7, err_msg=key)
    # Without the saved states the draws (and so the weights) would differ.
    restarted = _fit(tmp_path, "restarted", augment=True, kill_at=(2, 4), lose_random_states=True)
    assert any(
        not np.allclose(restarted[k], uninterrupted[k])
        for k in uninterrupted if k.startswith("student_")
    )


@pytest.mark.slow
def test_killed_fit_with_reshuffling_completes(tmp_path):
    uninterrupted = _fit(tmp_path, "uninterrupted", shuffle=True)
    resumed = _fit(tmp_path, "resumed", shuffle=True, kill_at=(2, 4))
    # The schedules, the step count and the optimizer's progress resume exactly ...
    for key in ("temperature", "alpha", "iterations"):
        np.testing.assert_allclose(resumed[key], uninterrupted[key], rtol=1e-6, err_msg=key)
    # ... but the data order restarts: a fresh iterator of the shuffled
    # dataset gives epoch 3 the order of epoch 1, so the weights differ.
    student = [k for k in uninterrupted if k.startswith("student_")]
    assert all(np.all(np.isfinite(resumed[k])) for k in student)
    assert any(not np.allclose(resumed[k], uninterrupted[k]) for k in student)


@pytest.mark.slow
def test_killed_export_leaves_a_complete_file(tmp_path):
    random.seed(0)
    for attempt in range(3):
        folder = tmp_path / f"attempt{attempt}"
        folder.mkdir()
        process = _start("tests.export_kill_script", folder)
        _kill_when(process, "READY", delay=random.uniform(0.0, 3.0))
        expected = np.load(folder / "expected.npz")
        outputs, _ = keras_kd.run_tflite(folder / "student.tflite", expected["inputs"])
        matches = [np.allclose(outputs, expected[m], rtol=1e-4, atol=1e-5) for m in ("a", "b")]
        assert any(matches), "the file is neither the previous nor the new export"
        # The dead process's temporary file (if any) goes at the next export.
        keras_kd.export_tflite(_reference_model(), folder / "student.tflite", sample=expected["inputs"])
        assert sorted(os.listdir(folder)) == ["expected.npz", "student.tflite"]


def _reference_model():
    import keras

    return keras.Sequential([keras.Input((12,)), keras.layers.Dense(5)])


def test_temporary_files_of_dead_exporters_are_removed(tmp_path):
    dead_pid = subprocess.Popen([sys.executable, "-c", "pass"])
    dead_pid.wait()
    dead = tmp_path / f".student.tflite.{dead_pid.pid}.abc123.tmp.tflite"
    alive = tmp_path / f".student.tflite.{os.getpid()}.def456.tmp.tflite"  # Still exporting.
    other = tmp_path / f".other.tflite.{dead_pid.pid}.abc123.tmp.tflite"  # Another target.
    for path in (dead, alive, other):
        path.write_bytes(b"partial")
    x = np.zeros((4, 12), "float32")
    keras_kd.export_tflite(_reference_model(), tmp_path / "student.tflite", sample=x)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([alive.name, other.name, "student.tflite"])
