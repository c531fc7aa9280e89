"""Import paths of modules that moved when the package took its folders.

`install()` (called by `keras_kd/__init__.py`) lets `import keras_kd.cache`,
`from keras_kd.data.augmentation import Mix` and the like keep working: each old
path is the module at its new path. Paths that were internal warn with a
`DeprecationWarning` naming the new path; the documented public ones
(`keras_kd.compat`, `keras_kd.lifelong`, `keras_kd.cache`...) do not.
"""

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

# Old module path -> (new module path, whether the old one is deprecated).
MOVED = {
    "keras_kd.augmentation": ("keras_kd.data.augmentation", False),
    "keras_kd.cache": ("keras_kd.data.cache", False),
    "keras_kd.replay": ("keras_kd.data.replay", False),
    "keras_kd.compat": ("keras_kd.methods.compat", False),
    "keras_kd.lifelong": ("keras_kd.methods.lifelong", False),
    "keras_kd.ensemble": ("keras_kd.methods.ensemble", False),
    "keras_kd.chain": ("keras_kd.methods.chain", False),
    "keras_kd.export": ("keras_kd.deployment.export", False),
    "keras_kd.evaluation": ("keras_kd.deployment.evaluation", False),
    "keras_kd.learned_temperature": ("keras_kd.losses.learned_temperature", False),
    "keras_kd.files": ("keras_kd._internal.files", True),
    "keras_kd.backends": ("keras_kd._internal.backends", True),
    "keras_kd.checks": ("keras_kd._internal.checks", True),
    "keras_kd.validation": ("keras_kd._internal.checks", True),
    "keras_kd._keras_internals": ("keras_kd._internal.keras_internals", True),
    "keras_kd.teachers": ("keras_kd._step.teachers", True),
    "keras_kd.views": ("keras_kd._step.output_views", True),
    "keras_kd.student_loss": ("keras_kd._step.student_loss", True),
    "keras_kd.reduction": ("keras_kd._step.reduction", True),
    "keras_kd.live_values": ("keras_kd._step.live_values", True),
    "keras_kd.nonfinite": ("keras_kd._step.nonfinite", True),
    "keras_kd.teacher_precision": ("keras_kd._internal.teacher_precision", True),
    "keras_kd.xla": ("keras_kd._step.xla", True),
    "keras_kd.distribution": ("keras_kd._step.distribution", True),
    "keras_kd.loss_means": ("keras_kd._step.loss_means", True),
    "keras_kd.random_states": ("keras_kd._step.random_states", True),
    "keras_kd._messages": ("keras_kd._internal.messages", True),
    "keras_kd._optional": ("keras_kd._internal.optional", True),
}


class _MovedModuleLoader(importlib.abc.Loader):
    """Loads an old path as the module at its new path."""

    def __init__(self, new_name, deprecated):
        self.new_name = new_name
        self.deprecated = deprecated

    def create_module(self, spec):
        if self.deprecated:
            warnings.warn(
                f"`{spec.name}` moved to `{self.new_name}`; the old path will be removed.",
                DeprecationWarning,
                stacklevel=2,
            )
        module = importlib.import_module(self.new_name)
        self.new_spec = module.__spec__
        return module

    def exec_module(self, module):
        # Already executed at its new path; importlib set the old path's
        # spec on it, which is put back.
        module.__spec__ = self.new_spec


class _MovedModuleFinder(importlib.abc.MetaPathFinder):
    """Finds the old paths in `MOVED`."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in MOVED:
            return None
        new_name, deprecated = MOVED[fullname]
        return importlib.util.spec_from_loader(fullname, _MovedModuleLoader(new_name, deprecated))


def install():
    """Makes the old paths importable (once per process)."""
    if not any(isinstance(finder, _MovedModuleFinder) for finder in sys.meta_path):
        sys.meta_path.append(_MovedModuleFinder())


def module_attribute(name):
    """`keras_kd.<name>` for an old module path (the package's `__getattr__`)."""
    full_name = f"keras_kd.{name}"
    if full_name not in MOVED:
        raise AttributeError(f"module 'keras_kd' has no attribute {name!r}")
    new_name, deprecated = MOVED[full_name]
    if deprecated:  # Here, where the warning points at the user's line.
        warnings.warn(
            f"`{full_name}` moved to `{new_name}`; the old path will be removed.",
            DeprecationWarning,
            stacklevel=3,
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return importlib.import_module(full_name)
