"""Save, load and continue: teacher, student, terms, live state, compile state."""

import keras
import numpy as np
import pytest

import keras_kd
from tests.conftest import make_data, make_mlp


def _compiled_distiller(teacher, student):
    terms = [keras_kd.losses.KLDivergence(), keras_kd.losses.SoftTargetCrossentropy(weight=0.5, temperature=2.0)]
    distiller = keras_kd.Distiller(teacher, student, temperature=4.0, alpha=0.3, terms=terms)
    return distiller.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=["accuracy"],
    )


def test_save_load_and_continue_fitting(teacher, student, tmp_path):
    x, y = make_data(n=64)
    distiller = _compiled_distiller(teacher, student)
    distiller.fit(x, y, batch_size=16, epochs=1, verbose=0)
    distiller.set_live_value("temperature", 2.5)
    distiller.set_live_value("soft_ce_weight", 0.75)
    path = tmp_path / "d.keras"
    distiller.save(path)

    restored = keras.models.load_model(path)  # safe_mode stays on.
    assert isinstance(restored, keras_kd.Distiller)
    assert [t.name for t in restored.terms] == ["kl", "soft_ce"]
    for name, variable in distiller.live_variables.items():
        assert float(restored.live_variables[name].numpy()) == float(variable.numpy()), name
    assert not restored.teacher.trainable
    for a, b in zip(distiller.weights, restored.weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    assert int(restored.optimizer.iterations.numpy()) == 4
    for a, b in zip(distiller.optimizer.variables, restored.optimizer.variables):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    np.testing.assert_array_equal(restored.predict(x, verbose=0), distiller.predict(x, verbose=0))

    # Both continue identically, without calling compile() again.
    continued = restored.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0).history
    original = distiller.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0).history
    assert sorted(continued) == ["accuracy", "kl_loss", "loss", "skipped_steps", "soft_ce_loss", "student_loss"]
    for key in original:
        np.testing.assert_allclose(continued[key], original[key], rtol=1e-6)
    for a, b in zip(distiller.student.weights, restored.student.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7)


def test_get_config_round_trip(teacher, student):
    distiller = keras_kd.Distiller(teacher, student, temperature=3.0, alpha=0.25, teacher_returns="logits")
    config = distiller.get_config()
    rebuilt = keras_kd.Distiller.from_config(config)
    assert rebuilt.get_config() == config
    assert float(rebuilt.temperature.numpy()) == 3.0 and float(rebuilt.alpha.numpy()) == 0.25


@pytest.mark.upstream
def test_keras_distillation_cannot_fit_after_loading(teacher, student, tmp_path):
    """Documents keras.distillation (PEER.md): a loaded Distiller cannot fit."""
    x, y = make_data(n=32)
    peer = keras.distillation.Distiller(
        teacher, student, distillation_losses=keras.distillation.LogitsDistillation(2.0)
    )
    peer.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    peer.fit(x, y, verbose=0)
    peer.save(tmp_path / "peer.keras")
    with pytest.warns(UserWarning, match="compile"):
        restored = keras.models.load_model(tmp_path / "peer.keras")
    with pytest.raises(AttributeError, match="_student_loss"):
        restored.fit(x, y, verbose=0)


def test_every_part_loads_in_safe_mode(tmp_path):
    """All keras_kd objects deserialize with safe_mode=True (no lambdas, no pickle)."""
    keras.utils.set_random_seed(3)
    teacher = keras.Sequential(
        [keras.Input((12,)), keras.layers.Dense(16, activation="relu"), keras.layers.Dense(5), keras.layers.Softmax()],
        name="soft_teacher",
    )
    student = keras.Sequential(
        [keras.Input((12,)), keras.layers.Dense(8, activation="relu", name="hidden"),
         keras.layers.Dropout(0.3), keras.layers.Dense(5)],
        name="student",
    )
    terms = [
        keras_kd.losses.KLDivergence(),
        keras_kd.losses.SoftTargetCrossentropy(weight=0.5, temperature=2.0),
        keras_kd.losses.LogitMSE(weight=0.1),
    ]
    distiller = keras_kd.Distiller(teacher, student, terms=terms, teacher_returns="probabilities")
    distiller.compile(optimizer="adam", loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    x, y = make_data(n=32)
    distiller.fit(x, y, batch_size=16, epochs=1, verbose=0)
    distiller.save(tmp_path / "d.keras")
    restored = keras.saving.load_model(tmp_path / "d.keras", safe_mode=True)
    assert restored.teacher_returns == "probabilities"
    assert [type(t).__name__ for t in restored.terms] == ["KLDivergence", "SoftTargetCrossentropy", "LogitMSE"]
    # The Dropout random state came back too: the next epoch draws the same masks.
    a = distiller.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0).history["loss"]
    b = restored.fit(x, y, batch_size=16, epochs=1, shuffle=False, verbose=0).history["loss"]
    np.testing.assert_allclose(b, a, rtol=1e-6)


def test_the_package_has_no_unsafe_deserialization():
    """No eval/exec, no pickle-like modules, no Lambda layers, no safe_mode=False."""
    import ast
    import pathlib

    package = pathlib.Path(keras_kd.__file__).parent
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                names = [a.name for a in node.names] + [getattr(node, "module", None) or ""]
                assert not {"pickle", "dill", "marshal", "cloudpickle", "shelve"} & {n.split(".")[0] for n in names}, path
            if isinstance(node, ast.Call):
                func = node.func
                name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", "")
                assert name not in {"eval", "exec", "Lambda", "enable_unsafe_deserialization"}, (path, node.lineno)
                for keyword in node.keywords:
                    if keyword.arg == "safe_mode":
                        assert not (isinstance(keyword.value, ast.Constant) and keyword.value.value is False), path


def test_the_old_argument_name_teacher_outputs_still_works_with_a_warning():
    teacher, student = make_mlp(16, seed=1), make_mlp(8, seed=2)
    with pytest.warns(DeprecationWarning, match="`teacher_outputs` is renamed `teacher_returns`"):
        distiller = keras_kd.Distiller(teacher, student, teacher_outputs="logits")
    assert distiller.teacher_returns == "logits"
    config = distiller.get_config()
    assert "teacher_returns" in config and "teacher_outputs" not in config
    config["teacher_outputs"] = config.pop("teacher_returns")  # As files saved before 0.3 hold it.
    assert keras_kd.Distiller.from_config(config).teacher_returns == "logits"
