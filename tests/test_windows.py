import keras
import numpy as np
import pytest

from keras_memnet.datasets import make_windows
from keras_memnet.datasets import text8_sample


def _collect(dataset):
    contexts, targets = [], []
    for context, target in dataset:
        contexts.append(context.numpy())
        targets.append(target.numpy())
    return np.concatenate(contexts), np.concatenate(targets)


def test_sequential_pass_matches_direct_slices_of_real_corpus():
    tokens = text8_sample().train
    memory_size = 30
    dataset = make_windows(tokens, memory_size, batch_size=512, shuffle=False)
    context_spec, target_spec = dataset.element_spec
    assert context_spec.shape.as_list() == [None, memory_size]
    assert context_spec.dtype.name == "int32"
    assert target_spec.shape.as_list() == [None]
    contexts, targets = _collect(dataset)
    expected = np.lib.stride_tricks.sliding_window_view(
        tokens[:-1], memory_size
    )
    assert contexts.shape == (tokens.size - memory_size, memory_size)
    np.testing.assert_array_equal(contexts, expected)
    np.testing.assert_array_equal(targets, tokens[memory_size:])


def test_pad_start_scores_every_token_but_the_first():
    tokens = np.arange(1, 8)
    contexts, targets = _collect(
        make_windows(tokens, 3, batch_size=4, shuffle=False, pad_start=True)
    )
    np.testing.assert_array_equal(targets, tokens[1:])
    np.testing.assert_array_equal(
        contexts[:4], [[0, 0, 1], [0, 1, 2], [1, 2, 3], [2, 3, 4]]
    )
    np.testing.assert_array_equal(contexts[-1], [4, 5, 6])


def test_random_windows_are_real_windows_fresh_each_epoch_and_seeded():
    # Token i has id i + 1, so a window's position can be read off its ids.
    num_tokens, memory_size = 5000, 7
    tokens = np.arange(1, num_tokens + 1)
    dataset = make_windows(
        tokens, memory_size, batch_size=64, num_windows=1000, seed=3
    )
    first_epoch = _collect(dataset)
    second_epoch = _collect(dataset)
    for contexts, targets in (first_epoch, second_epoch):
        assert contexts.shape == (1000, memory_size)
        positions = targets - 1
        assert positions.min() >= memory_size
        assert positions.max() < num_tokens
        np.testing.assert_array_equal(
            contexts, positions[:, None] + np.arange(-memory_size, 0) + 1
        )
    assert not np.array_equal(first_epoch[1], second_epoch[1])
    again = _collect(
        make_windows(tokens, memory_size, batch_size=64, num_windows=1000,
                     seed=3)
    )
    np.testing.assert_array_equal(again[1], first_epoch[1])
    # Roughly uniform over the positions.
    assert np.unique(first_epoch[1]).size > 800


def test_batch_counts_and_drop_remainder():
    tokens = np.arange(1, 111)
    dataset = make_windows(tokens, 10, batch_size=32, shuffle=False)
    assert [t.shape[0] for _, t in dataset] == [32, 32, 32, 4]
    dataset = make_windows(
        tokens, 10, batch_size=32, shuffle=False, drop_remainder=True
    )
    assert dataset.element_spec[0].shape.as_list() == [32, 10]
    assert [t.shape[0] for _, t in dataset] == [32, 32, 32]
    dataset = make_windows(tokens, 10, batch_size=32, num_windows=70, seed=0)
    assert [t.shape[0] for _, t in dataset] == [32, 32, 6]


def test_corpus_windows_feed_keras_fit():
    corpus = text8_sample()
    vocabulary_size = corpus.vocabulary.size
    model = keras.Sequential(
        [
            keras.Input((5,), dtype="int32"),
            keras.layers.Embedding(vocabulary_size, 8),
            keras.layers.Flatten(),
            keras.layers.Dense(vocabulary_size),
        ]
    )
    model.compile(
        optimizer=keras.optimizers.Adam(0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    train = corpus.windows("train", 5, 128, num_windows=128 * 20, seed=0)
    history = model.fit(train, epochs=2, verbose=0, shuffle=False)
    assert history.history["loss"][1] < history.history["loss"][0]
    valid = corpus.windows("valid", 5, 512, shuffle=False)
    assert np.isfinite(model.evaluate(valid, verbose=0))


def test_errors():
    with pytest.raises(ValueError, match="empty"):
        make_windows(np.zeros(0, np.int32), 3, 2)
    with pytest.raises(ValueError, match=r"has 4 tokens, fewer than the "
                       r"memory_size \+ 1 = 6"):
        make_windows(np.arange(4), 5, 2)
    with pytest.raises(ValueError, match="< `vocabulary_size`=5. Got a maximum of 9"):
        make_windows(np.arange(10), 3, 2, vocabulary_size=5)
    with pytest.raises(ValueError, match=">= 0"):
        make_windows(np.array([1, -1, 2, 3]), 2, 2)
    with pytest.raises(ValueError, match="`memory_size` must be an integer >= 1"):
        make_windows(np.arange(10), 0, 2)
    with pytest.raises(ValueError, match="`batch_size` must be an integer"):
        make_windows(np.arange(10), 2, 2.5)
    with pytest.raises(ValueError, match="`num_windows` must be"):
        make_windows(np.arange(10), 2, 2, num_windows=0)
    with pytest.raises(ValueError, match="1-D"):
        make_windows(np.zeros((3, 3), np.int32), 2, 2)
    corpus = text8_sample(valid_fraction=0.0)
    with pytest.raises(ValueError, match="'valid' split of this corpus is empty"):
        corpus.windows("valid", 3, 2)
    with pytest.raises(ValueError, match="`split_name` must be one of"):
        corpus.windows("dev", 3, 2)
