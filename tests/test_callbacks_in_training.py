"""The recipe's callbacks on real models, on every backend.

Moved from the per-backend script (tests/backend_check.py) that ran these
under `KERAS_BACKEND=jax` and `torch` in subprocesses; the suite now runs
on every backend itself.
"""

import keras
import numpy as np
import pytest

from keras_memnet.callbacks import GradientNormClipping
from keras_memnet.callbacks import PlateauAnnealing
from keras_memnet.metrics import Perplexity
from keras_memnet.models import MemN2NLM


@pytest.mark.parametrize("tying", ["layerwise", "adjacent"])
def test_window_model_trains_with_clipping_and_plateau_annealing(tying):
    keras.utils.set_random_seed(0)
    model = MemN2NLM(
        vocabulary_size=30,
        hops=2,
        memory_size=6,
        embedding_dim=8,
        weight_tying=tying,
    )
    model.compile(
        optimizer=keras.optimizers.Adam(0.02),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        metrics=[Perplexity(from_logits=True)],
    )
    rng = np.random.default_rng(0)
    ids = rng.integers(1, 30, (256, 6))
    ids[:5, :2] = 0
    history = model.fit(
        ids,
        ids[:, -2],
        validation_data=(ids[:64], ids[:64, -2]),
        epochs=8,
        batch_size=32,
        verbose=0,
        callbacks=[GradientNormClipping(5.0), PlateauAnnealing()],
    )
    losses = history.history["loss"]
    assert losses[-1] < 0.8 * losses[0], losses
    assert np.all(np.isfinite(history.history["gradient_norm"]))
    assert np.all(np.isfinite(history.history["val_perplexity"]))


@pytest.mark.parametrize(
    "tying, output", [("layerwise", "softmax"), ("adjacent", "adaptive")]
)
def test_clipped_sequence_step_with_sample_weights_is_bounded(tying, output):
    """One SGD step in sequence form, a target weighted out, clipped to
    `max_norm`: the weights move by `lr * max_norm`."""
    keras.utils.set_random_seed(1)
    model = MemN2NLM(
        vocabulary_size=30,
        hops=2,
        memory_size=6,
        embedding_dim=8,
        weight_tying=tying,
        output=output,
    )
    rng = np.random.default_rng(1)
    sequence = rng.integers(1, 30, (3, 6 + 4 - 1))
    sequence[0, :3] = 0
    sequence[1, :6] = 0
    model.compile(
        optimizer=keras.optimizers.SGD(0.5),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=[Perplexity(from_logits=True)],
    )
    model.build((None, 6))
    targets = rng.integers(1, 30, (3, 4))
    weights = np.ones((3, 4), dtype="float32")
    weights[2, 3] = 0.0
    before = [keras.ops.convert_to_numpy(w).copy() for w in model.weights]
    history = model.fit(
        sequence,
        targets,
        sample_weight=weights,
        batch_size=3,
        epochs=1,
        verbose=0,
        callbacks=[GradientNormClipping(0.01)],
    )
    assert np.all(np.isfinite(history.history["loss"])), history.history
    norm = history.history["gradient_norm"][0]
    assert np.isfinite(norm) and norm > 0.01, history.history
    after = [keras.ops.convert_to_numpy(w) for w in model.weights]
    assert all(b.shape == a.shape for b, a in zip(before, after))
    step = np.sqrt(sum(((a - b) ** 2).sum() for b, a in zip(before, after)))
    # Clipped: the update is lr * max_norm long (all weights are dense).
    np.testing.assert_allclose(step, 0.5 * 0.01, rtol=1e-3)
