"""Optional packages: each feature that needs one names the extra to install.

`pip install keras-kd` brings only Keras and numpy. The rest comes with the
extras in setup.cfg, named for what they enable; a feature whose package is
missing raises an `ImportError` saying which extra to install, at the point
of use (never at `import keras_kd`).
"""

import importlib
import importlib.util

# The extras of setup.cfg: the modules each one brings, and how to say it.
EXTRAS = {
    "tensorflow": (("tensorflow",), "TensorFlow"),
    "litert": (("tensorflow", "ai_edge_litert"), "TensorFlow and LiteRT"),
    "plot": (("matplotlib",), "matplotlib"),
    "demo": (("tensorflow", "ai_edge_litert", "matplotlib"),
             "TensorFlow, LiteRT and matplotlib"),
    "examples": (("tensorflow", "ai_edge_litert", "matplotlib", "tensorflow_datasets", "sklearn"),
                 "TensorFlow, LiteRT, matplotlib, tensorflow-datasets and scikit-learn"),
    "text": (("tensorflow", "keras_hub", "safetensors"), "TensorFlow, keras-hub and safetensors"),
}


def available(module):
    """Whether `module` can be imported, without importing it."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # A parent package missing, or hidden.
        return False


def missing_error(extra, feature, why="", then=""):
    """The `ImportError` for `feature`, which needs `extra`'s packages.

    Args:
        extra: A key of `EXTRAS`.
        feature: What needs it, as the message starts, e.g.
            "`keras_kd.plot_histories`".
        why: Optional words after what is needed, e.g. ": ...".
        then: Optional words after the install command.
    """
    needs = EXTRAS[extra][1]
    pronoun = "them" if " and " in needs else "it"
    return ImportError(
        f"{feature} needs {needs}{why}. Install {pronoun} with "
        f"`pip install keras-kd[{extra}]`{then}."
    )


def require(module, extra, feature):
    """Imports and returns `module`, or raises an `ImportError` naming the extra.

    Args:
        module: The module to import, e.g. `"matplotlib.pyplot"`.
        extra: The setup.cfg extra that brings it, e.g. `"plot"`.
        feature: What needs it, as the message starts, e.g.
            "`keras_kd.plot_histories`".
    """
    try:
        return importlib.import_module(module)
    except ImportError as error:
        raise missing_error(extra, feature) from error


def require_extra(extra, feature):
    """Raises an `ImportError` naming `extra` unless all its modules are
    installed (checked without importing them)."""
    if not all(available(module) for module in EXTRAS[extra][0]):
        raise missing_error(extra, feature)
