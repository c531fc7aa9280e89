"""Messages the Keras way: callbacks print only while Keras's interactive
logging is enabled, else log to `"keras_kd"`; library code never prints."""

import ast
import logging
import os

import keras
import pytest

import keras_kd
from keras_kd._internal import messages as _messages
from keras_kd.callbacks import tflite as tflite_callback
from tests.conftest import make_data

SPARSE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
PACKAGE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "keras_kd")


@pytest.fixture(params=[True, False], ids=["interactive", "logged"])
def interactive(request):
    """Runs the test with Keras's interactive logging on, then off."""
    was = keras.config.is_interactive_logging_enabled()
    if request.param:
        keras.config.enable_interactive_logging()
    else:
        keras.config.disable_interactive_logging()
    try:
        yield request.param
    finally:
        if was:
            keras.config.enable_interactive_logging()
        else:
            keras.config.disable_interactive_logging()


def _check_route(interactive, capsys, caplog, expected):
    """`expected` reached stdout and not the log, or the reverse."""
    out = capsys.readouterr().out
    logged = [r.getMessage() for r in caplog.records if r.name == "keras_kd"]
    if interactive:
        assert expected in out
        assert not any(expected in message for message in logged)
    else:
        assert out == ""
        assert any(expected in message for message in logged), logged
        assert all(r.levelno == logging.INFO for r in caplog.records if r.name == "keras_kd")


def _fit(teacher, student, callback, epochs=1):
    x, y = make_data(n=16)
    distiller = keras_kd.Distiller(teacher, student)
    distiller.compile(optimizer="sgd", loss=SPARSE)
    distiller.fit(x, y, batch_size=16, epochs=epochs, callbacks=[callback], verbose=0)
    return distiller


def test_print_msg_follows_interactive_logging(interactive, capsys, caplog):
    caplog.set_level(logging.INFO, logger="keras_kd")
    _messages.print_msg("\nhello from keras_kd")
    _check_route(interactive, capsys, caplog, "hello from keras_kd")
    if not interactive:
        assert caplog.records[-1].getMessage() == "hello from keras_kd"  # No progress-bar newline.


def test_xla_compile_messages(interactive, teacher, student, capsys, caplog):
    caplog.set_level(logging.INFO, logger="keras_kd")
    callback = keras_kd.callbacks.XLACompile(False, verbose=1)
    distiller = _fit(teacher, student, callback)
    _check_route(interactive, capsys, caplog, "XLACompile(mode=False): XLA off.")
    distiller.xla_first_call_seconds = 1.25  # As a first XLA call records it.
    callback.on_train_batch_end(0)
    _check_route(interactive, capsys, caplog, "XLACompile: first XLA call (compile + step) 1.25 s.")


def test_xla_compile_is_quiet_by_default(teacher, student, capsys, caplog):
    caplog.set_level(logging.INFO, logger="keras_kd")
    _fit(teacher, student, keras_kd.callbacks.XLACompile(False))
    assert capsys.readouterr().out == ""
    assert not [r for r in caplog.records if "XLACompile" in r.getMessage()]


def test_live_value_scheduler_messages(interactive, teacher, student, capsys, caplog):
    caplog.set_level(logging.INFO, logger="keras_kd")
    scheduler = keras_kd.callbacks.LiveValueScheduler(lambda epoch: 2.0 + epoch, verbose=1)
    _fit(teacher, student, scheduler, epochs=2)
    _check_route(interactive, capsys, caplog, "Epoch 2: LiveValueScheduler setting temperature to 3.")


def test_tflite_export_report(interactive, student, tmp_path, monkeypatch, capsys, caplog):
    caplog.set_level(logging.INFO, logger="keras_kd")
    # The conversion itself is tested in test_export.py: here, only its report's route.
    monkeypatch.setattr(tflite_callback.export, "export_tflite", lambda *args, **kwargs: "the export report")
    callback = keras_kd.callbacks.TFLiteExport(os.path.join(tmp_path, "student.tflite"))
    callback.set_model(student)
    callback.on_train_begin()
    callback.on_train_end()
    _check_route(interactive, capsys, caplog, "the export report")


def _print_calls(path):
    """(line, text) of each call of the builtin `print` in a module's code
    (docstrings and comments are not code)."""
    with open(path, encoding="utf-8") as file:
        source = file.read()
    return [
        (node.lineno, ast.get_source_segment(source, node))
        for node in ast.walk(ast.parse(source, path))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"
    ]


def _library_modules():
    """Every module of keras_kd but the command line and the main job."""
    for folder, _, names in os.walk(PACKAGE):
        for name in sorted(names):
            path = os.path.join(folder, name)
            relative = os.path.relpath(path, PACKAGE).replace(os.sep, "/")
            if not name.endswith(".py") or relative == "__main__.py" or relative.startswith("demo"):
                continue
            yield relative, path


def test_library_code_does_not_print():
    modules = dict(_library_modules())
    assert {"distiller.py", "callbacks/xla.py", "deployment/export.py"} <= set(modules)
    printing = {relative: calls for relative, path in modules.items() if (calls := _print_calls(path))}
    assert printing == {}, "library code prints; use keras_kd._internal.messages.print_msg (callbacks), logging or warnings"


def test_the_print_finder_finds_prints_in_code_only(tmp_path):
    path = os.path.join(tmp_path, "module.py")
    with open(path, "w", encoding="utf-8") as file:
        file.write('"""Example: `print(report)`."""\n# print(x)\nx = "print(y)"\nprint(x)\n')
    assert _print_calls(path) == [(4, "print(x)")]
