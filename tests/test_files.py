"""Atomic writes: the helper, and every place in keras_kd that writes a file."""

import json
import os
import stat
import subprocess
import sys

import keras
import numpy as np
import pytest

import keras_kd
from keras_kd._internal import files
from tests.conftest import make_data, make_mlp


class _Failure(Exception):
    pass


def _normal_mode():
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def _folder(path):
    """What a folder holds: file names and their bytes."""
    return {entry: (path / entry).read_bytes() for entry in sorted(os.listdir(path))}


def _write_half_then_fail(path, data=b"partial"):
    with open(path, "wb") as f:
        f.write(data)
    raise _Failure("failed mid-write")


# The helper.


def test_the_file_appears_whole_with_normal_permissions(tmp_path):
    path = tmp_path / "out.bin"
    with files.atomic_write(path, suffix=".bin") as temporary:
        assert os.path.dirname(temporary) == str(tmp_path)  # Same folder: the rename is atomic.
        assert temporary.endswith(".tmp.bin") and os.path.basename(temporary).startswith(".out.bin.")
        with open(temporary, "wb") as f:
            f.write(b"first half ")
            assert not path.exists()  # Nothing at the final path while writing.
            f.write(b"second half")
    assert _folder(tmp_path) == {"out.bin": b"first half second half"}
    assert stat.S_IMODE(os.stat(path).st_mode) == _normal_mode()  # Not mkstemp's 0o600.


def test_a_replaced_file_stays_whole_until_the_rename(tmp_path):
    path = tmp_path / "out.txt"
    path.write_text("old")
    with files.atomic_write(path) as temporary:
        with open(temporary, "w") as f:
            f.write("new")
        assert path.read_text() == "old"
    assert _folder(tmp_path) == {"out.txt": b"new"}
    assert stat.S_IMODE(os.stat(path).st_mode) == _normal_mode()


@pytest.mark.parametrize("error", [_Failure, KeyboardInterrupt])
def test_a_failing_body_leaves_no_file(tmp_path, error):
    with pytest.raises(error):
        with files.atomic_write(tmp_path / "out.bin") as temporary:
            with open(temporary, "wb") as f:
                f.write(b"partial")
            raise error()
    assert os.listdir(tmp_path) == []


def test_a_failing_body_leaves_the_previous_file_untouched(tmp_path):
    path = tmp_path / "out.bin"
    path.write_bytes(b"previous")
    os.chmod(path, 0o640)
    with pytest.raises(_Failure):
        with files.atomic_write(path) as temporary:
            _write_half_then_fail(temporary)
    assert _folder(tmp_path) == {"out.bin": b"previous"}
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o640


def test_a_body_that_removes_its_temporary_still_raises_its_own_error(tmp_path):
    with pytest.raises(_Failure):
        with files.atomic_write(tmp_path / "out.bin") as temporary:
            os.remove(temporary)
            raise _Failure()
    assert os.listdir(tmp_path) == []


def test_write_json(tmp_path):
    files.write_json(tmp_path / "a.json", {"x": [1, 2]})
    assert json.loads((tmp_path / "a.json").read_text()) == {"x": [1, 2]}
    assert stat.S_IMODE(os.stat(tmp_path / "a.json").st_mode) == _normal_mode()
    with pytest.raises(TypeError):  # Not serialisable: fails half-way through the dump.
        files.write_json(tmp_path / "a.json", {"y": 1, "z": object()})
    assert _folder(tmp_path) == {"a.json": b'{"x": [1, 2]}'}


def test_the_next_write_removes_temporaries_of_dead_writers(tmp_path):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    left = {
        "dead": f".out.npy.{dead.pid}.abc_12.tmp.npy",
        "alive": f".out.npy.{os.getpid()}.def456.tmp.npy",  # Still writing.
        "other_path": f".other.npy.{dead.pid}.abc123.tmp.npy",
        "other_suffix": f".out.npy.{dead.pid}.abc123.tmp.json",
    }
    for name in left.values():
        (tmp_path / name).write_bytes(b"partial")
    with files.atomic_write(tmp_path / "out.npy", suffix=".npy") as temporary:
        np.save(temporary, np.arange(3))
    kept = [v for k, v in left.items() if k != "dead"]
    assert sorted(os.listdir(tmp_path)) == sorted(kept + ["out.npy"])
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), np.arange(3))


# Every place in keras_kd that writes a file: an exception mid-write leaves
# the folder as it was.


def test_plot_histories_failing_mid_write(tmp_path, monkeypatch):
    import matplotlib.figure

    (tmp_path / "curves.png").write_bytes(b"previous plot")
    before = _folder(tmp_path)
    monkeypatch.setattr(
        matplotlib.figure.Figure, "savefig", lambda self, path, **kwargs: _write_half_then_fail(path)
    )
    with pytest.raises(_Failure):
        keras_kd.plot_histories({"a": {"val_accuracy": [0.5, 0.6]}}, tmp_path / "curves.png")
    assert _folder(tmp_path) == before


def test_export_tflite_failing_mid_write(student, tmp_path, monkeypatch):
    path = tmp_path / "student.tflite"
    keras_kd.export_tflite(student, path)
    before = _folder(tmp_path)
    monkeypatch.setattr(student, "export", lambda temporary, **kwargs: _write_half_then_fail(temporary))
    with pytest.raises(keras_kd.ConversionError):
        keras_kd.export_tflite(student, path)
    with pytest.raises(keras_kd.ConversionError):
        keras_kd.export_tflite(student, tmp_path / "new.tflite")
    assert _folder(tmp_path) == before


def _fail_after_the_first_batch(monkeypatch):
    """The cache's progress bar runs after each batch is written: fail there."""
    real = keras.utils.Progbar.update

    def update(self, current, *args, **kwargs):
        if current > 0:
            raise _Failure("failed mid-write")
        return real(self, current, *args, **kwargs)

    monkeypatch.setattr(keras.utils.Progbar, "update", update)


def test_teacher_cache_logits_failing_mid_write(teacher, tmp_path):
    path = tmp_path / "logits.npy"
    x, _ = make_data(n=64)
    keras_kd.TeacherCache.compute(teacher, x, path=path, verbose=0)
    before = _folder(tmp_path)
    with pytest.MonkeyPatch.context() as monkeypatch:
        _fail_after_the_first_batch(monkeypatch)
        with pytest.raises(_Failure):
            keras_kd.TeacherCache.compute(teacher, x[:40], path=path, batch_size=8, verbose=0)
    assert _folder(tmp_path) == before
    assert len(keras_kd.TeacherCache.load(path)) == 64  # The previous cache, whole.


def test_teacher_cache_fingerprint_failing_mid_write(teacher, tmp_path, monkeypatch):
    path = tmp_path / "logits.npy"
    x, _ = make_data(n=16)
    real_dump = json.dump

    def dump(content, f, **kwargs):
        f.write('{"count": ')
        raise _Failure("failed mid-write")

    monkeypatch.setattr(json, "dump", dump)
    with pytest.raises(_Failure):
        keras_kd.TeacherCache.compute(teacher, x, path=path, verbose=0)
    # The logits are in place, the fingerprint is not: the cache refuses to
    # load rather than pair logits with a half-written fingerprint.
    assert sorted(os.listdir(tmp_path)) == ["logits.npy"]
    with pytest.raises(ValueError, match="its fingerprint file .* is missing"):
        keras_kd.TeacherCache.load(path)
    monkeypatch.setattr(json, "dump", real_dump)
    keras_kd.TeacherCache.compute(teacher, x, path=path, verbose=0)
    assert sorted(os.listdir(tmp_path)) == ["logits.npy", "logits.npy.json"]


def _chain(tmp_path):
    x, y = make_data(n=32)
    models = [make_mlp(16, seed=1, name="teacher"), make_mlp(8, seed=2, name="student")]
    compile_kwargs = {
        "optimizer": keras.optimizers.SGD(0.01),
        "loss": keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    }
    return keras_kd.distill_chain(models, (x, y), tmp_path, epochs=1, compile_kwargs=compile_kwargs)


def test_chain_weights_failing_mid_write(tmp_path, monkeypatch):
    monkeypatch.setattr(
        keras.Model, "save_weights", lambda self, temporary, **kwargs: _write_half_then_fail(temporary)
    )
    with pytest.raises(_Failure):
        _chain(tmp_path)
    assert os.listdir(tmp_path) == []


def test_chain_history_failing_mid_write(tmp_path, monkeypatch):
    def dump(content, f, **kwargs):
        f.write('{"loss": [')
        raise _Failure("failed mid-write")

    monkeypatch.setattr(json, "dump", dump)
    with pytest.raises(_Failure):
        _chain(tmp_path)
    # The weights are in place, the History is not: the stage is not done
    # and trains again on the next run.
    assert os.listdir(tmp_path) == ["stage1_student.weights.h5"]
    monkeypatch.undo()
    result = _chain(tmp_path)
    assert len(result.histories) == 1
    assert sorted(os.listdir(tmp_path)) == ["stage1_student.history.json", "stage1_student.weights.h5"]


def test_demo_results_failing_mid_write(tmp_path, monkeypatch):
    from keras_kd import demo

    output = tmp_path / "out"
    output.mkdir()
    (output / "results.md").write_text("previous results\n")

    def open_and_fail(path, mode="r", *args, **kwargs):
        assert os.path.dirname(path) == str(output) and "w" in mode
        _write_half_then_fail(path)

    monkeypatch.setattr(demo.report, "open", open_and_fail, raising=False)
    train, val, test = demo.load()
    small = lambda split, n: (split[0][:n], split[1][:n])  # noqa: E731
    monkeypatch.setattr(demo.job, "load", lambda *args: (small(train, 256), small(val, 64), small(test, 64)))
    with pytest.raises(_Failure):
        demo.run(str(output), seeds=1, setting=demo.Setting(epochs=1, views=2), verbose=0)
    assert sorted(os.listdir(output)) == ["distilled_student_int8.tflite", "learning_curves.png", "results.md"]
    assert (output / "results.md").read_text() == "previous results\n"


_WRITING_METHODS = {"save", "save_weights", "export", "savefig", "write_bytes", "write_text", "tofile",
                    "open_memmap"}
_WRITING_FUNCTIONS = {"os.replace", "os.rename", "json.dump", "np.save", "np.savez", "np.savetxt",
                      "tempfile.mkstemp", "shutil.copy", "shutil.copyfile", "shutil.move"}


def test_every_write_in_keras_kd_goes_through_the_helper():
    """A guard against a new site: no call that writes a file outside a
    `with files.atomic_write(...)` body (files.py itself aside)."""
    import ast
    import pathlib

    root = pathlib.Path(keras_kd.__file__).parent
    offenders = []
    for source in sorted(root.rglob("*.py")):
        if source.name != "files.py":
            _find_direct_writes(ast.parse(source.read_text()), False, offenders, source.name)
    assert offenders == []


def _find_direct_writes(node, inside, offenders, name):
    import ast

    if isinstance(node, ast.With) and any(
        isinstance(item.context_expr, ast.Call) and ast.unparse(item.context_expr.func) == "files.atomic_write"
        for item in node.items
    ):
        inside = True
    if isinstance(node, ast.Call) and not inside:
        function = ast.unparse(node.func)
        method = node.func.attr if isinstance(node.func, ast.Attribute) else None
        mode = next((k.value for k in node.keywords if k.arg == "mode"), node.args[1] if len(node.args) > 1 else None)
        writing_open = function == "open" and not (isinstance(mode, ast.Constant) and mode.value in ("r", "rb"))
        if function in _WRITING_FUNCTIONS or method in _WRITING_METHODS or (writing_open and mode is not None):
            offenders.append(f"{name}:{node.lineno}: {ast.unparse(node)}")
    for child in ast.iter_child_nodes(node):
        _find_direct_writes(child, inside, offenders, name)
