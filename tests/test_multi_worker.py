"""MultiWorkerMirroredStrategy: 2 worker processes on 127.0.0.1 equal one process.

Each test starts `tests/multi_worker_script.py` twice with a TF_CONFIG naming
two free local ports, waits for both within a time limit, and kills both if
either hangs.
"""

import inspect
import json
import os
import socket
import subprocess
import sys

import keras
import numpy as np
import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TIMEOUT = 240  # Seconds for a whole 2-worker run.


def _free_ports(count=2):
    sockets = [socket.socket() for _ in range(count)]
    try:
        for s in sockets:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in sockets]
    finally:
        for s in sockets:
            s.close()


def _env():
    return dict(os.environ, PYTHONPATH=ROOT, KERAS_BACKEND="tensorflow", TF_CPP_MIN_LOG_LEVEL="3")


def _two_workers(mode, out):
    ports = _free_ports()
    command = [sys.executable, "-m", "tests.multi_worker_script", "--mode", mode, "--out", str(out)]
    workers = [
        subprocess.Popen(
            command + ["--index", str(index), "--ports", *map(str, ports)],
            cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        for index in range(2)
    ]
    outputs = []
    try:
        for worker in workers:
            output, _ = worker.communicate(timeout=TIMEOUT)
            outputs.append(output)
    except subprocess.TimeoutExpired:
        pytest.fail(f"a worker of the {mode!r} run hung for {TIMEOUT} s")
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()
    for worker, output in zip(workers, outputs):
        assert worker.returncode == 0, output


def _one_process(out):
    subprocess.run(
        [sys.executable, "-m", "tests.multi_worker_script", "--mode", "single", "--out", str(out)],
        cwd=ROOT, env=_env(), check=True, timeout=TIMEOUT, capture_output=True,
    )


def _result(path):
    result = dict(np.load(path))
    result["history"] = json.loads(str(result["history"]))
    return result


@pytest.mark.slow
def test_two_workers_equal_one_process_and_only_the_chief_writes(tmp_path):
    _two_workers("keras_kd", tmp_path / "multi")
    _one_process(tmp_path / "single")
    workers = [_result(tmp_path / "multi" / f"result{i}.npz") for i in range(2)]
    single = _result(tmp_path / "single" / "result0.npz")
    student = sorted(k for k in single if k.startswith("student_"))
    assert student
    for key in student:
        np.testing.assert_array_equal(workers[1][key], workers[0][key])  # In sync.
        np.testing.assert_allclose(workers[0][key], single[key], rtol=1e-5, atol=1e-6, err_msg=key)
    for worker in workers:
        assert sorted(worker["history"]) == sorted(single["history"])
        for name, values in single["history"].items():
            np.testing.assert_allclose(worker["history"][name], values, rtol=1e-5, atol=1e-6, err_msg=name)
        assert float(worker["temperature"]) == float(single["temperature"])
    assert sorted(os.listdir(tmp_path / "multi" / "worker0")) == ["ckpt.weights.h5", "student.tflite"]
    assert os.listdir(tmp_path / "multi" / "worker1") == []


@pytest.mark.slow
@pytest.mark.upstream
def test_keras_fit_fails_under_multi_worker(tmp_path):
    """Documents Keras 3.15: a plain Sequential cannot fit under MultiWorkerMirroredStrategy."""
    _two_workers("plain", tmp_path / "plain")
    _two_workers("plain_built", tmp_path / "plain_built")
    for index in range(2):
        first = (tmp_path / "plain" / f"worker{index}" / "error.txt").read_text()
        assert first.startswith("ValueError: Attempt to convert a value (PerReplica:{"), first[:200]
        second = (tmp_path / "plain_built" / f"worker{index}" / "error.txt").read_text()
        assert second.startswith("ValueError: Invalid reduction dimension 0 for input with 0 dimensions"), second[:200]


def test_the_private_keras_method_overridden_is_still_there():
    """The Distiller overrides TensorFlowTrainer._maybe_symbolic_build; fail loudly if Keras renames it."""
    from keras.src.backend.tensorflow.trainer import TensorFlowTrainer

    method = getattr(TensorFlowTrainer, "_maybe_symbolic_build", None)
    assert method is not None
    assert list(inspect.signature(method).parameters) == ["self", "iterator", "data_batch"]
    assert keras.Model._maybe_symbolic_build is method
