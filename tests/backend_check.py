"""Run by test_backends.py under KERAS_BACKEND=jax and torch.

Exercises the layers, the model, the callbacks, generation and saving on
one backend, comparing with NumPy where a reference exists.
"""

import os
import sys
import tempfile

import keras
import numpy as np

sys.path.insert(0, os.path.dirname(__file__))

from test_memn2n_lm import argmax_without_padding  # noqa: E402
from test_memn2n_lm import numpy_forward  # noqa: E402
from test_memory_hop import numpy_hop  # noqa: E402
from test_memory_hop import random_inputs  # noqa: E402
from test_memn2n_lm import (  # noqa: E402
    test_evaluate_perplexity_is_the_same_for_windows_and_sequences,
)
from test_recipe import (  # noqa: E402
    test_sequence_step_is_the_sum_of_its_window_steps,
)

from keras_memnet.callbacks import GradientNormClipping  # noqa: E402
from keras_memnet.callbacks import PlateauAnnealing  # noqa: E402
from keras_memnet.layers import MemoryHop  # noqa: E402
from keras_memnet.metrics import Perplexity  # noqa: E402
from keras_memnet.models import MemN2NLM  # noqa: E402

assert keras.config.backend() == os.environ["KERAS_BACKEND"]

# MemoryHop against NumPy, with a mask.
query, keys, values = random_inputs()
mask = np.ones((3, 7), dtype=bool)
mask[1, :4] = False
hop = MemoryHop(linear_units=3)
outputs = keras.ops.convert_to_numpy(hop(query, keys, values, mask=mask))
expected, _ = numpy_hop(
    query, keys, values, keras.ops.convert_to_numpy(hop.query_kernel), mask, 3
)
np.testing.assert_allclose(outputs, expected, rtol=1e-4, atol=1e-5)

# The model against NumPy, training with the recipe's callbacks.
for tying in ("layerwise", "adjacent"):
    model = MemN2NLM(
        vocabulary_size=30, hops=2, memory_size=6, embedding_dim=8,
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
    if tying == "layerwise":
        np.testing.assert_allclose(
            model.predict(ids, verbose=0), numpy_forward(model, ids),
            rtol=1e-4, atol=1e-5,
        )
    history = model.fit(
        ids, ids[:, -2], validation_data=(ids[:64], ids[:64, -2]),
        epochs=8, batch_size=32, verbose=0,
        callbacks=[GradientNormClipping(5.0), PlateauAnnealing()],
    )
    losses = history.history["loss"]
    assert losses[-1] < 0.8 * losses[0], losses
    assert np.all(np.isfinite(history.history["gradient_norm"]))

# Greedy generation equals step-by-step argmax; seeded sampling repeats.
prompts = ids[5:8]
generated = model.generate(prompts, max_length=5)
window = prompts.copy()
for step in range(5):
    next_ids = argmax_without_padding(model.predict(window, verbose=0))
    np.testing.assert_array_equal(generated[:, step], next_ids)
    window = np.concatenate([window[:, 1:], next_ids[:, None]], axis=1)
first = model.generate(prompts, 6, sampler="random", seed=3)
np.testing.assert_array_equal(
    first, model.generate(prompts, 6, sampler="random", seed=3)
)
np.testing.assert_array_equal(
    model.generate(prompts, 4, sampler="beam", num_beams=1),
    model.generate(prompts, 4),
)

# Sequence form: ids (batch, M + T - 1) give the window form on each of
# the T windows; one fit step in sequence form with the recipe's clipping.
for tying, output in (("layerwise", "softmax"), ("adjacent", "adaptive")):
    seq_model = MemN2NLM(
        vocabulary_size=30, hops=2, memory_size=6, embedding_dim=8,
        weight_tying=tying, output=output,
    )
    rng = np.random.default_rng(1)
    sequence = rng.integers(1, 30, (3, 6 + 4 - 1))
    sequence[0, :3] = 0
    sequence[1, :6] = 0
    windows = np.stack([sequence[:, t : t + 6] for t in range(4)], 1)
    expected = keras.ops.convert_to_numpy(seq_model(windows.reshape(-1, 6)))
    expected = expected.reshape(3, 4, 30)
    np.testing.assert_allclose(
        keras.ops.convert_to_numpy(seq_model(sequence)), expected,
        rtol=1e-5, atol=1e-5,
    )
    np.testing.assert_allclose(
        seq_model.predict(sequence, verbose=0), expected, rtol=1e-5, atol=1e-5
    )
    np.testing.assert_allclose(
        seq_model.predict(windows.reshape(-1, 6), verbose=0).reshape(3, 4, 30),
        expected, rtol=1e-5, atol=1e-5,
    )
    seq_model.compile(
        optimizer=keras.optimizers.SGD(0.5),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=[Perplexity(from_logits=True)],
    )
    targets = rng.integers(1, 30, (3, 4))
    weights = np.ones((3, 4), dtype="float32")
    weights[2, 3] = 0.0
    before = [keras.ops.convert_to_numpy(w).copy() for w in seq_model.weights]
    history = seq_model.fit(
        sequence, targets, sample_weight=weights, batch_size=3, epochs=1,
        verbose=0, callbacks=[GradientNormClipping(0.1)],
    )
    assert np.all(np.isfinite(history.history["loss"])), history.history
    assert np.isfinite(history.history["gradient_norm"][0]), history.history
    after = [keras.ops.convert_to_numpy(w) for w in seq_model.weights]
    assert all(b.shape == a.shape for b, a in zip(before, after))
    assert any(not np.allclose(b, a) for b, a in zip(before, after))
    # The step moved the weights by at most lr * max_norm (clipped).
    step = np.sqrt(sum(((a - b) ** 2).sum() for b, a in zip(before, after)))
    assert step <= 0.5 * 0.1 * (1 + 1e-4), step

# .keras round trip.
with tempfile.TemporaryDirectory() as folder:
    path = os.path.join(folder, "lm.keras")
    model.save(path)
    restored = keras.saving.load_model(path, safe_mode=True)
    np.testing.assert_array_equal(
        restored.predict(ids[:10], verbose=0), model.predict(ids[:10], verbose=0)
    )
# Gradients: one sequence-form SGD step equals the sum of its window steps;
# and evaluation gives the same perplexity in both forms.
test_sequence_step_is_the_sum_of_its_window_steps()
test_evaluate_perplexity_is_the_same_for_windows_and_sequences(
    "layerwise", "softmax"
)
test_evaluate_perplexity_is_the_same_for_windows_and_sequences(
    "adjacent", "adaptive"
)
print("backend check passed:", keras.config.backend())
