"""The package's imports read top-down (docs/architecture.md): public API →
Distiller → step parts → data paths and terms → internals, with no cycles."""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "keras_kd"

# Layer of each top-level part of the package: 0 is the top.
LAYERS = {
    "__init__": 0, "__main__": 0, "demo": 0, "demo_data": 0,
    "callbacks": 0, "methods": 0, "deployment": 0,
    "distiller": 1,
    "_step": 2,
    "data": 3, "losses": 3, "schedules": 3, "optimizers": 3,
    "_internal": 4,
}


def _module_name(path):
    parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _part(module):
    """`"keras_kd.data.cache"` -> `"data"`; the package itself -> `"__init__"`."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _imports(path):
    """The keras_kd modules a file imports (`from keras_kd.x import y` counts
    `keras_kd.x.y` when that is a module, else `keras_kd.x`)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "keras_kd":
            for alias in node.names:
                candidate = f"{node.module}.{alias.name}"
                names.add(candidate if candidate in MODULES else node.module)
        elif isinstance(node, ast.Import):
            names.update(a.name for a in node.names if a.name.split(".")[0] == "keras_kd")
    return names


FILES = {path: _module_name(path) for path in PACKAGE.rglob("*.py")}
MODULES = set(FILES.values())
GRAPH = {module: _imports(path) & MODULES for path, module in FILES.items()}


def test_every_part_of_the_package_has_a_layer():
    assert {_part(module) for module in MODULES} <= set(LAYERS)


def test_no_module_imports_up():
    upward = [
        f"{module} (layer {LAYERS[_part(module)]}) imports {imported} (layer {LAYERS[_part(imported)]})"
        for module, imported_modules in GRAPH.items()
        for imported in imported_modules
        if LAYERS[_part(imported)] < LAYERS[_part(module)]
    ]
    assert upward == []


def test_no_import_cycles():
    cycles, state = [], {}

    def visit(module, stack):
        state[module] = "open"
        for imported in sorted(GRAPH[module]):
            # A package's __init__ importing its own submodules is not a cycle.
            if imported.startswith(module + "."):
                continue
            if state.get(imported) == "open":
                cycles.append(stack[stack.index(imported):] + [imported])
            elif imported not in state:
                visit(imported, stack + [imported])
        state[module] = "done"

    for module in sorted(GRAPH):
        if module not in state:
            visit(module, [module])
    assert cycles == []


def test_at_most_twelve_modules_at_the_top_level():
    assert len(list(PACKAGE.glob("*.py"))) <= 12


def test_no_library_module_imports_the_main_job():
    importers = [
        module for module, imported in GRAPH.items()
        if any(i == "keras_kd.demo" or i.startswith("keras_kd.demo.") for i in imported)
        and _part(module) not in ("__main__", "demo")
    ]
    assert importers == []


def test_old_public_paths_import_the_moved_modules_without_warning():
    import subprocess
    import sys

    code = (
        "import warnings; warnings.simplefilter('error', DeprecationWarning)\n"
        "import keras_kd\n"
        "from keras_kd.compat import Distiller\n"
        "from keras_kd.cache import TeacherCache, LOGITS_KEY\n"
        "import keras_kd.lifelong, keras_kd.augmentation, keras_kd.replay\n"
        "assert keras_kd.cache.TeacherCache is keras_kd.data.cache.TeacherCache\n"
        "assert keras_kd.compat.Distiller is Distiller\n"
        "assert keras_kd.data.cache.__spec__.name == 'keras_kd.data.cache'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, cwd=PACKAGE.parent)


def test_old_internal_paths_still_import_with_a_deprecation_warning():
    import importlib
    import sys
    import warnings

    sys.modules.pop("keras_kd.nonfinite", None)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", DeprecationWarning)
        old = importlib.import_module("keras_kd.nonfinite")
    new = importlib.import_module("keras_kd._step.nonfinite")
    assert old is new
    assert any("`keras_kd.nonfinite` moved to `keras_kd._step.nonfinite`" in str(w.message) for w in caught)


PUBLIC_MODULES = [
    "keras_kd", "keras_kd.losses", "keras_kd.callbacks", "keras_kd.schedules", "keras_kd.optimizers",
    "keras_kd.data", "keras_kd.data.augmentation", "keras_kd.data.cache", "keras_kd.data.replay",
    "keras_kd.data.batch_format", "keras_kd.data.text_inputs", "keras_kd.methods.chain",
    "keras_kd.methods.ensemble", "keras_kd.methods.lifelong", "keras_kd.methods.compat",
    "keras_kd.deployment.export", "keras_kd.deployment.evaluation",
]


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_public_modules_list_what_they_export(name):
    import importlib

    module = importlib.import_module(name)
    assert module.__all__, name
    assert [n for n in module.__all__ if not hasattr(module, n)] == []
