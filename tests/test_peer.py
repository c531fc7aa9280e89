"""keras_kd against keras.distillation on the same batch and the same weights."""

import keras
import numpy as np
import pytest
from keras import distillation as peer

import keras_kd
from keras_kd.methods import compat
from tests import reference
from tests.conftest import make_data

SPARSE = keras.losses.SparseCategoricalCrossentropy(from_logits=True)


def _evaluate(distiller, x, y, sample_weight=None):
    return distiller.evaluate(
        x, y, sample_weight=sample_weight, batch_size=len(x), return_dict=True, verbose=0
    )


def _peer(teacher, student, temperature, loss, student_loss_weight=0.5):
    distiller = peer.Distiller(
        teacher, student,
        distillation_losses=peer.LogitsDistillation(temperature=temperature, loss=loss),
        student_loss_weight=student_loss_weight,
    )
    distiller.compile(optimizer="sgd", loss=SPARSE)
    return distiller


@pytest.mark.parametrize("temperature", [1.0, 2.0, 5.0])
def test_equals_keras_distillation_with_a_kl_object(teacher, student, temperature):
    x, y = make_data(n=64)
    theirs = _evaluate(_peer(teacher, student, temperature, keras.losses.KLDivergence(), 0.3), x, y)
    ours = keras_kd.Distiller(teacher, student, temperature=temperature, alpha=0.3).compile(
        optimizer="sgd", loss=SPARSE
    )
    ours = _evaluate(ours, x, y)
    np.testing.assert_allclose(ours["loss"], theirs["loss"], rtol=1e-5)
    np.testing.assert_allclose(ours["student_loss"], theirs["student_loss"], rtol=1e-5)
    np.testing.assert_allclose(ours["kl_loss"], theirs["distillation_loss"], rtol=1e-5)


def test_default_string_loss_is_wrong_there_and_right_here(teacher, student):
    x, y = make_data(n=64)
    expected = reference.kl(np.asarray(teacher(x)), np.asarray(student(x)), 2.0).mean()
    theirs = _evaluate(_peer(teacher, student, 2.0, "kl_divergence"), x, y)
    # Their default applies the plain kl_divergence function to clipped logits/T, without T².
    assert abs(theirs["distillation_loss"] - expected) > 0.5 * expected
    # The same code after changing only the import gets T² · KL.
    ours = compat.Distiller(
        teacher, student,
        distillation_losses=compat.LogitsDistillation(temperature=2.0, loss="kl_divergence"),
        student_loss_weight=0.5,
    )
    ours.compile(optimizer="sgd", loss=SPARSE)
    np.testing.assert_allclose(_evaluate(ours, x, y)["kl_loss"], expected, rtol=1e-5)


def test_keras_distillation_code_runs_after_changing_only_the_import(teacher, student):
    x, y = make_data(n=64)
    for module in (peer, compat):  # The same lines, two imports.
        distiller = module.Distiller(
            teacher=teacher,
            student=student,
            distillation_losses=[module.LogitsDistillation(temperature=3.0)],
            distillation_loss_weights=[0.8],
            student_loss_weight=0.25,
        )
        distiller.compile(optimizer="adam", loss=SPARSE, metrics=["accuracy"])
        history = distiller.fit(x, y, epochs=1, verbose=0)
        assert {"accuracy", "total_loss", "student_loss", "distillation_loss"} <= set(history.history)
    assert isinstance(distiller, keras_kd.Distiller)
    assert float(distiller.alpha.numpy()) == 0.25
    # What was passed reads back as passed: the user's own objects and numbers.
    assert distiller.student_loss_weight == 0.25
    assert distiller.distillation_loss_weights == [0.8]
    (loss,) = distiller.distillation_losses
    assert type(loss) is peer.LogitsDistillation and loss.temperature == 3.0
    assert float(distiller.live_variables["kl_weight"].numpy()) == pytest.approx(0.8)
    assert float(distiller.live_variables["kl_temperature"].numpy()) == 3.0


def test_keras_distillation_objects_are_converted(teacher, student):
    distiller = compat.Distiller(
        teacher, student,
        distillation_losses=[
            peer.LogitsDistillation(temperature=2.0),
            peer.LogitsDistillation(temperature=4.0, loss="categorical_crossentropy"),
        ],
    )
    assert [type(t).__name__ for t in distiller.terms] == ["KLDivergence", "SoftTargetCrossentropy"]
    # keras.distillation's default weight in the compat layer; keras_kd's own is 0.1.
    assert float(distiller.alpha.numpy()) == 0.5
    assert float(keras_kd.Distiller(teacher, student).alpha.numpy()) == pytest.approx(0.1)
    with pytest.raises(ValueError, match=r"Arguments `teacher_layer_name` and `student_layer_name` are required"):
        compat.Distiller(teacher, student, distillation_losses=peer.FeatureDistillation())
    feature = peer.FeatureDistillation(loss="mse", teacher_layer_name="logits", student_layer_name="logits")
    converted = compat.Distiller(teacher, student, distillation_losses=feature).terms[0]
    assert type(converted).__name__ == "FeatureHint" and converted.adapter is None
    assert (converted.teacher_layer, converted.student_layer) == ("logits", "logits")
    with pytest.raises(ValueError, match=r"Argument `loss` of `LogitsDistillation` must be one of"):
        compat.to_term(peer.LogitsDistillation(loss="mse"))


def test_duplicate_peer_losses_get_suffixes_and_native_duplicates_are_refused(teacher, student):
    distiller = compat.Distiller(
        teacher, student,
        distillation_losses=[peer.LogitsDistillation(3.0), peer.LogitsDistillation(2.0), peer.LogitsDistillation(1.0)],
    )
    assert [t.name for t in distiller.terms] == ["kl", "kl_1", "kl_2"]
    assert [float(t.temperature.numpy()) for t in distiller.terms] == [3.0, 2.0, 1.0]
    with pytest.raises(ValueError, match=r"Each term needs a unique `name`"):
        keras_kd.Distiller(teacher, student, terms=[keras_kd.losses.KLDivergence(), keras_kd.losses.KLDivergence()])
    with pytest.raises(ValueError, match=r"For `keras.distillation` losses use `keras_kd.compat.Distiller`"):
        keras_kd.Distiller(teacher, student, terms=peer.LogitsDistillation(2.0))


def test_compat_config_round_trip_keeps_the_peer_objects(teacher, student):
    distiller = compat.Distiller(
        teacher, student, distillation_losses=[peer.LogitsDistillation(3.0), peer.LogitsDistillation(2.0)],
        distillation_loss_weights=[0.7, 0.3], student_loss_weight=0.7,
    )
    config = distiller.get_config()
    assert config["student_loss_weight"] == 0.7 and config["distillation_loss_weights"] == [0.7, 0.3]
    restored = compat.Distiller.from_config(config)
    assert [type(loss) for loss in restored.distillation_losses] == [peer.LogitsDistillation] * 2
    assert [loss.temperature for loss in restored.distillation_losses] == [3.0, 2.0]
    assert [t.name for t in restored.terms] == ["kl", "kl_1"]
    np.testing.assert_allclose([float(t.weight.numpy()) for t in restored.terms], [0.7, 0.3], rtol=1e-6)


def test_deprecated_top_level_names_warn_and_still_work():
    with pytest.warns(DeprecationWarning, match=r"`keras_kd.LogitsDistillation` is deprecated"):
        term = keras_kd.LogitsDistillation(temperature=2.0)
    assert isinstance(term, keras_kd.losses.KLDivergence) and float(term.temperature.numpy()) == 2.0
    with pytest.warns(DeprecationWarning, match=r"`keras_kd.FeatureDistillation` is deprecated"):
        hint = keras_kd.FeatureDistillation("mse", "hidden", "hidden")
    assert isinstance(hint, keras_kd.losses.FeatureHint)
    with pytest.warns(DeprecationWarning, match=r"renamed `keras_kd.callbacks.LiveValueScheduler`"):
        scheduler = keras_kd.callbacks.TemperatureScheduler(keras_kd.schedules.Constant(2.0))
    assert isinstance(scheduler, keras_kd.callbacks.LiveValueScheduler)


@pytest.mark.upstream
def test_keras_distillation_rejects_a_live_temperature(teacher, student):
    with pytest.raises(ValueError, match="temperature must be a number"):
        peer.LogitsDistillation(temperature=keras.Variable(2.0))


def test_sample_weights_ignored_there_and_honoured_here(teacher, student):
    x, y = make_data(n=64)
    weights = np.tile([1.0, 0.0], 32).astype("float32")
    theirs = _peer(teacher, student, 2.0, keras.losses.KLDivergence())
    assert _evaluate(theirs, x, y, weights)["loss"] == pytest.approx(_evaluate(theirs, x, y)["loss"])
    ours = keras_kd.Distiller(teacher, student, temperature=2.0, alpha=0.5).compile(optimizer="sgd", loss=SPARSE)
    t, s = np.asarray(teacher(x)), np.asarray(student(x))
    expected = reference.total_loss(t, s, y, 2.0, 0.5, [(1.0, reference.kl, None)], weights)
    np.testing.assert_allclose(_evaluate(ours, x, y, weights)["loss"], expected, rtol=1e-5)
    assert abs(_evaluate(ours, x, y)["loss"] - expected) > 1e-3


def test_padded_positions_count_in_the_peers_distillation_term_and_not_here():
    from tests import test_sequence_outputs as sequences

    x, y = sequences._batch([7, 3, 5, 1, 6], time=7)
    teacher, student = sequences._tagger(16, 1), sequences._tagger(8, 2)
    flat = lambda a: np.asarray(a, np.float64).reshape(-1, sequences.CLASSES)  # noqa: E731
    kl = reference.kl(flat(teacher(x)), flat(student(x)), 2.0).reshape(x.shape)
    valid = x != 0
    theirs = peer.Distiller(
        teacher=teacher, student=student, student_loss_weight=0.0,
        distillation_losses=peer.LogitsDistillation(temperature=2.0, loss=keras.losses.KLDivergence()),
    )
    theirs.compile(optimizer="sgd", loss=SPARSE)
    ours = keras_kd.Distiller(teacher, student, temperature=2.0, alpha=0.0)
    ours.compile(optimizer="sgd", loss=SPARSE)
    their_loss = theirs.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    our_loss = ours.evaluate(x, y, verbose=0, return_dict=True)["loss"]
    # keras.distillation: the mean over every position, padding included.
    np.testing.assert_allclose(their_loss, kl.mean(), rtol=1e-3)
    assert abs(their_loss - kl[valid].mean()) > 0.2 * kl[valid].mean()
    np.testing.assert_allclose(our_loss, kl[valid].mean(), rtol=1e-3)


def test_compat_weights_apply_and_read_back(teacher, student):
    # Without distillation_losses the weight goes to the default term.
    distiller = compat.Distiller(teacher, student, distillation_loss_weights=[2.0])
    assert float(distiller.terms[0].weight.numpy()) == 2.0 and distiller.distillation_loss_weights == [2.0]
    # NumPy weights, as keras.distillation accepts them.
    distiller = compat.Distiller(
        teacher, student, distillation_losses=[peer.LogitsDistillation(3.0), peer.LogitsDistillation(2.0)],
        distillation_loss_weights=np.array([0.7, 0.3]),
    )
    assert distiller.distillation_loss_weights == [0.7, 0.3]
    # A keras_kd term keeps its own weight when no weights are given.
    own = keras_kd.losses.KLDivergence(weight=0.25)
    distiller = compat.Distiller(teacher, student, distillation_losses=[own])
    assert distiller.distillation_loss_weights == [0.25] and distiller.distillation_losses == [own]
    with pytest.raises(ValueError, match=r"Argument `distillation_losses` must hold at least one"):
        compat.Distiller(teacher, student, distillation_losses=[])


@pytest.mark.parametrize(
    "losses, names",
    [
        (lambda: [keras_kd.losses.KLDivergence(), peer.LogitsDistillation(2.0)], ["kl", "kl_1"]),
        (lambda: [peer.LogitsDistillation(2.0), keras_kd.losses.KLDivergence()], ["kl_1", "kl"]),
        (lambda: [peer.LogitsDistillation(2.0), peer.LogitsDistillation(3.0),
                  keras_kd.losses.KLDivergence(name="kl_1")], ["kl", "kl_2", "kl_1"]),
    ],
)
def test_converted_losses_never_take_a_name_already_used(teacher, student, losses, names):
    distiller = compat.Distiller(teacher, student, distillation_losses=losses())
    assert [t.name for t in distiller.terms] == names


def test_compat_config_keeps_live_changes_and_student_loss_weight_is_assignable(teacher, student):
    distiller = compat.Distiller(teacher, student, distillation_losses=peer.LogitsDistillation(3.0))
    distiller.set_live_value("kl_temperature", 5.0)
    distiller.set_live_value("kl_weight", 0.5)
    distiller.student_loss_weight = 0.2
    assert distiller.student_loss_weight == 0.2 and float(distiller.alpha.numpy()) == pytest.approx(0.2)
    restored = compat.Distiller.from_config(distiller.get_config())
    assert restored.distillation_losses[0].temperature == 5.0
    assert restored.distillation_loss_weights == [0.5] and restored.student_loss_weight == 0.2
    with pytest.raises(ValueError, match=r"Argument `alpha` must be in \[0, 1\]"):
        distiller.student_loss_weight = 2.0


def test_a_custom_keras_distillation_loss_gets_the_fix(teacher, student):
    class Mine(peer.DistillationLoss):
        def compute_loss(self, teacher_outputs, student_outputs, **kwargs):
            return keras.ops.mean(keras.ops.square(teacher_outputs - student_outputs))

    with pytest.raises(ValueError, match=r"a loss of your own is written as a `DistillationTerm` subclass"):
        compat.Distiller(teacher, student, distillation_losses=Mine())
