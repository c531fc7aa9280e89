"""A `.keras` file saved by keras_kd before the architecture change loads and trains.

`tests/fixtures/distiller_cc9dbb0.keras` was written by
`tests/fixtures/make_saved_distiller.py` at commit cc9dbb0 (before `compute_loss`,
the compat layer and the renames). Later versions must keep reading it.
"""

import os

import keras
import numpy as np

import keras_kd

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def _load():
    saved = np.load(os.path.join(FIXTURES, "distiller_cc9dbb0.npz"))
    distiller = keras.saving.load_model(os.path.join(FIXTURES, "distiller_cc9dbb0.keras"))
    return distiller, saved


def test_old_file_loads_with_its_weights_and_settings():
    distiller, saved = _load()
    assert isinstance(distiller, keras_kd.Distiller)
    np.testing.assert_allclose(
        distiller.predict(saved["x"], verbose=0), saved["predictions"], rtol=1e-6, atol=1e-6
    )
    assert float(distiller.temperature) == 3.0
    np.testing.assert_allclose(float(distiller.alpha), 0.2, rtol=1e-6)
    (term,) = distiller.terms
    assert isinstance(term, keras_kd.losses.KLDivergence)
    np.testing.assert_allclose(float(term.weight), 0.7, rtol=1e-6)


def test_old_file_keeps_training_from_its_optimizer_state():
    distiller, saved = _load()
    # 2 epochs of 4 batches were run before saving.
    assert int(distiller.optimizer.iterations) == 8
    before = [w.numpy().copy() for w in distiller.student.trainable_weights]
    history = distiller.fit(saved["x"], saved["y"], batch_size=16, epochs=1, verbose=0)
    assert int(distiller.optimizer.iterations) == 12
    assert np.isfinite(history.history["loss"][0])
    assert "kl_loss" in history.history and "accuracy" in history.history
    after = [w.numpy() for w in distiller.student.trainable_weights]
    assert any(not np.allclose(b, a) for b, a in zip(before, after))
