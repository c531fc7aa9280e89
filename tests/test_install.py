"""What `pip install keras-kd` brings: Keras and numpy, no TensorFlow; the
rest are extras, and each missing one is named where it is needed."""

import ast
import email
import json
import os
import re
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CORE = {"keras", "numpy"}
EXTRAS = {"tensorflow", "litert", "plot", "demo", "examples", "text", "all", "test"}
# Optional packages a user may well have although keras_kd's core needs none.
OPTIONAL = {"tensorflow", "tensorflow-cpu", "tensorflow-datasets", "ai-edge-litert", "matplotlib", "keras-hub"}


def _name(requirement):
    from packaging.requirements import Requirement

    return re.sub(r"[-_.]+", "-", Requirement(requirement).name).lower()


@pytest.fixture(scope="module")
def metadata(tmp_path_factory):
    """The package's metadata, built from setup.cfg as `pip install` builds
    it, from a copy whose `keras_kd/__init__.py` fails when imported."""
    pytest.importorskip("setuptools")
    folder = tmp_path_factory.mktemp("build")
    for name in ("setup.cfg", "pyproject.toml", "README.md"):
        shutil.copy(os.path.join(ROOT, name), folder)
    os.mkdir(os.path.join(folder, "keras_kd"))
    with open(os.path.join(ROOT, "keras_kd", "__init__.py"), encoding="utf-8") as file:
        source = file.read()
    with open(os.path.join(folder, "keras_kd", "__init__.py"), "w", encoding="utf-8") as file:
        file.write('raise RuntimeError("building imported keras_kd")\n' + source)
    out = os.path.join(folder, "out")
    os.mkdir(out)
    script = (
        "import sys\n"
        "from setuptools import build_meta\n"
        f"name = build_meta.prepare_metadata_for_build_wheel({out!r})\n"
        "assert 'keras_kd' not in sys.modules and 'keras' not in sys.modules\n"
        "print(name)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], cwd=folder, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr[-3000:]
    name = result.stdout.strip().splitlines()[-1]
    with open(os.path.join(out, name, "METADATA"), encoding="utf-8") as file:
        return email.message_from_string(file.read())


def test_version_is_a_literal_read_without_importing(metadata):
    with open(os.path.join(ROOT, "keras_kd", "__init__.py"), encoding="utf-8") as file:
        tree = ast.parse(file.read())
    versions = [
        node.value.value for node in tree.body
        if isinstance(node, ast.Assign) and [getattr(t, "id", None) for t in node.targets] == ["__version__"]
        and isinstance(node.value, ast.Constant)
    ]
    assert len(versions) == 1
    assert metadata["Version"] == versions[0]  # Built by a process in which keras_kd failed to import.


def test_core_requirements_are_keras_and_numpy(metadata):
    requirements = metadata.get_all("Requires-Dist")
    core = {_name(r) for r in requirements if "extra ==" not in r}
    assert core == CORE
    assert set(metadata.get_all("Provides-Extra")) == EXTRAS
    by_extra = {}
    for requirement in requirements:
        extra = re.search(r'extra == "([^"]+)"', requirement)
        if extra:
            by_extra.setdefault(extra.group(1), set()).add(_name(requirement))
    assert by_extra["tensorflow"] == {"tensorflow"}
    assert by_extra["litert"] == {"tensorflow", "ai-edge-litert"}
    assert by_extra["demo"] == {"tensorflow", "ai-edge-litert", "matplotlib"}
    assert "keras-hub" in by_extra["text"] and "tensorflow-datasets" in by_extra["examples"]
    everything = set().union(*(by_extra[e] for e in EXTRAS - {"all", "test"}))
    assert by_extra["all"] == everything
    assert by_extra["test"] == everything | {"pytest", "pytest-xdist", "hypothesis"}


def test_extras_named_in_messages_exist(metadata):
    from keras_kd._internal import optional as _optional
    from keras_kd._internal import backends

    assert set(_optional.EXTRAS) | set(backends.EXTRAS.values()) <= set(metadata.get_all("Provides-Extra"))


def test_keras_and_numpy_pull_no_tensorflow():
    """The installed Keras and numpy, and everything they require in turn
    (without extras), need no TensorFlow, LiteRT, tfds or matplotlib."""
    from importlib import metadata as installed

    from packaging.requirements import Requirement

    seen, todo = set(), list(CORE)
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        for requirement in installed.requires(name) or []:
            requirement = Requirement(requirement)
            if requirement.marker is None or requirement.marker.evaluate({"extra": ""}):
                todo.append(_name(str(requirement)))
    assert {"keras", "numpy", "absl-py"} <= seen
    assert not seen & OPTIONAL, sorted(seen & OPTIONAL)


def _run_without_extras():
    """tests/no_tensorflow_script.py on JAX, where TensorFlow, tfds, LiteRT
    and matplotlib cannot be imported."""
    pytest.importorskip("jax")
    env = dict(os.environ, KERAS_BACKEND="jax", PYTHONPATH=ROOT)
    script = os.path.join(ROOT, "tests", "no_tensorflow_script.py")
    result = subprocess.run([sys.executable, script], capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_the_core_runs_and_each_extra_is_named_where_it_is_missing():
    import numpy as np

    run = _run_without_extras()
    assert run["backend"] == "jax"
    assert not run["tensorflow_imported"]
    assert all(np.isfinite(value) for values in run["history"].values() for value in values)
    install = r"\. Install (it|them) with `pip install keras-kd\[{}\]`\."
    backend = r"\. Install (it|them) with `pip install keras-kd\[{}\]` and set KERAS_BACKEND=tensorflow "
    backend += r"\(this process runs Keras on 'jax'\)\.$"
    expected = {
        "TeacherCache": r"needs TensorFlow, which is not installed .*`pip install keras-kd\[tensorflow\]`",
        "ReplayCache": r"needs TensorFlow, which is not installed .*`pip install keras-kd\[tensorflow\]`",
        "XLACompile": r"^`XLACompile` needs TensorFlow: the XLA rebuild .*" + backend.format("tensorflow"),
        "LearnedTemperature": r"^`LearnedTemperature` needs TensorFlow: .*" + backend.format("tensorflow"),
        "teacher_precision": r"^`teacher_precision` needs TensorFlow: .*" + backend.format("tensorflow"),
        "export_tflite": r"^`export_tflite` needs TensorFlow and LiteRT: .*" + backend.format("litert"),
        "evaluate_models": r"^`export_tflite` needs TensorFlow and LiteRT: .*" + backend.format("litert"),
        "run_tflite": r"^`keras_kd.run_tflite` needs TensorFlow and LiteRT" + install.format("litert"),
        "plot_histories": r"^`keras_kd.plot_histories` needs matplotlib" + install.format("plot"),
        "keras_kd.demo": r"^`keras_kd.demo` needs TensorFlow, LiteRT and matplotlib" + install.format("demo"),
        "python -m keras_kd demo": r"^`python -m keras_kd demo` needs TensorFlow, LiteRT and matplotlib"
                                   + install.format("demo") + r"\nexit 1",
    }
    assert set(run["errors"]) == set(expected)
    for feature, pattern in expected.items():
        assert run["errors"][feature] is not None, feature
        assert re.search(pattern, run["errors"][feature], re.S), (feature, run["errors"][feature])
    assert run["files"] == []  # No export or plot left a file.
