"""Keras's own keras.distillation test suite, run against keras_kd's compat layer.

The installed Keras ships `keras/src/distillation/distiller_test.py`. This
module reads it at test time, changes only its Distiller import line to
keras_kd's, and runs its tests here: "change only the import" is checked by
Keras's own tests, not by ours. No Keras code is copied into the repository.

Tests that cannot pass are listed in `EXPECTED_FAILURES` as strict xfails,
each with the keras.distillation behaviour it asserts and why keras_kd differs.
"""

import os
import types

import keras
import pytest

KERAS_IMPORT = "from keras.src.distillation.distiller import Distiller"
OUR_IMPORT = "from keras_kd.methods.compat import Distiller"

# name of the test method -> why it fails against keras_kd.
EXPECTED_FAILURES = {}


def _keras_test_source():
    path = os.path.join(
        os.path.dirname(keras.__file__), "src", "distillation", "distiller_test.py"
    )
    with open(path, encoding="utf-8") as file:
        source = file.read()
    assert source.count(KERAS_IMPORT) == 1, (
        f"{path} no longer imports the Distiller with {KERAS_IMPORT!r}: update "
        "KERAS_IMPORT in this test."
    )
    return path, source.replace(KERAS_IMPORT, OUR_IMPORT)


def _load_keras_suite():
    path, source = _keras_test_source()
    module = types.ModuleType("keras_distiller_test")
    module.__file__ = path
    exec(compile(source, path, "exec"), module.__dict__)  # noqa: S102
    return module.TestDistiller


_KerasSuite = _load_keras_suite()


def _marked(name):
    method = getattr(_KerasSuite, name)
    if name in EXPECTED_FAILURES:
        return pytest.mark.xfail(strict=True, reason=EXPECTED_FAILURES[name])(method)
    return method


TestKerasDistillerSuite = type(
    "TestKerasDistillerSuite",
    (_KerasSuite,),
    {name: _marked(name) for name in dir(_KerasSuite) if name.startswith("test_")},
)
del _KerasSuite


def test_the_suite_still_has_the_tests_we_expect():
    names = {n for n in dir(TestKerasDistillerSuite) if n.startswith("test_")}
    assert len(names) == 11, sorted(names)
    assert set(EXPECTED_FAILURES) <= names
