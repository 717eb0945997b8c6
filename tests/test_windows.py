import keras
import numpy as np
import pytest

from keras_memnet.datasets import Corpus
from keras_memnet.datasets import make_sequences
from keras_memnet.datasets import make_windows
from keras_memnet.datasets import sequence_arrays
from keras_memnet.datasets import text8_sample
from keras_memnet.datasets.windows import count_sequences


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
        make_windows(
            tokens, memory_size, batch_size=64, num_windows=1000, seed=3
        )
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
    with pytest.raises(
        ValueError,
        match=r"has 4 tokens, fewer than the "
        r"memory_size \+ 1 = 6",
    ):
        make_windows(np.arange(4), 5, 2)
    with pytest.raises(
        ValueError, match="< `vocabulary_size`=5. Got a maximum of 9"
    ):
        make_windows(np.arange(10), 3, 2, vocabulary_size=5)
    with pytest.raises(ValueError, match=">= 0"):
        make_windows(np.array([1, -1, 2, 3]), 2, 2)
    with pytest.raises(
        ValueError, match="`memory_size` must be an integer >= 1"
    ):
        make_windows(np.arange(10), 0, 2)
    with pytest.raises(ValueError, match="`batch_size` must be an integer"):
        make_windows(np.arange(10), 2, 2.5)
    with pytest.raises(ValueError, match="`num_windows` must be"):
        make_windows(np.arange(10), 2, 2, num_windows=0)
    with pytest.raises(ValueError, match="1-D"):
        make_windows(np.zeros((3, 3), np.int32), 2, 2)
    corpus = text8_sample(valid_fraction=0.0)
    with pytest.raises(
        ValueError, match="'valid' split of this corpus is empty"
    ):
        corpus.windows("valid", 3, 2)
    with pytest.raises(ValueError, match="`split_name` must be one of"):
        corpus.windows("dev", 3, 2)


def _collect_sequences(dataset):
    parts = [[], [], []]
    for batch in dataset:
        for part, tensor in zip(parts, batch):
            part.append(tensor.numpy())
    return tuple(np.concatenate(part) for part in parts)


def _reference_sequences(
    tokens, memory_size, sequence_length, pad_start=False, short_context=False
):
    """Rows of `make_sequences(shuffle=False)`, straight from the
    definition, one Python slice at a time."""
    tokens = list(tokens)
    if pad_start:
        tokens = [0] * memory_size + tokens
    # First target, in the (padded) list: position `memory_size`, or
    # position 1 of the unpadded tokens.
    first = memory_size + 1 if pad_start else memory_size
    inputs, targets, weights = [], [], []
    for start in range(first, len(tokens), sequence_length):
        row = tokens[start - memory_size : start + sequence_length - 1]
        row += [0] * (memory_size + sequence_length - 1 - len(row))
        if short_context:
            row[: memory_size - 1] = [0] * (memory_size - 1)
        real = tokens[start : start + sequence_length]
        inputs.append(row)
        targets.append(real + [0] * (sequence_length - len(real)))
        weights.append(
            [1.0] * len(real) + [0.0] * (sequence_length - len(real))
        )
    return np.array(inputs), np.array(targets), np.array(weights)


@pytest.mark.parametrize(
    "memory_size,sequence_length,pad_start,short_context",
    [
        (5, 7, False, False),
        (5, 7, True, False),
        (5, 7, False, True),
        (5, 7, True, True),
        (4, 1, False, False),
        (1, 6, True, False),
        (3, 34, False, False),  # One partial row: 36 targets, 39 tokens.
        (3, 36, False, False),  # One full row.
    ],
)
def test_sequential_rows_match_reference(
    memory_size, sequence_length, pad_start, short_context
):
    tokens = np.arange(1, 40)
    dataset = make_sequences(
        tokens,
        memory_size,
        sequence_length,
        batch_size=3,
        shuffle=False,
        pad_start=pad_start,
        short_context=short_context,
    )
    input_spec, target_spec, weight_spec = dataset.element_spec
    assert input_spec.shape.as_list() == [
        None,
        memory_size + sequence_length - 1,
    ]
    assert target_spec.shape.as_list() == [None, sequence_length]
    assert weight_spec.shape.as_list() == [None, sequence_length]
    assert (
        input_spec.dtype.name,
        target_spec.dtype.name,
        weight_spec.dtype.name,
    ) == ("int32", "int32", "float32")
    inputs, targets, weights = _collect_sequences(dataset)
    expected = _reference_sequences(
        tokens, memory_size, sequence_length, pad_start, short_context
    )
    np.testing.assert_array_equal(inputs, expected[0])
    np.testing.assert_array_equal(targets, expected[1])
    np.testing.assert_array_equal(weights, expected[2])
    assert len(inputs) == count_sequences(
        tokens.size, memory_size, sequence_length, pad_start=pad_start
    )
    # Every scored token exactly once, in order.
    first = 1 if pad_start else memory_size
    np.testing.assert_array_equal(targets[weights == 1], tokens[first:])


def test_sequence_rows_by_hand():
    # M = 3, T = 4 on tokens 1..10: targets 4..10 in two rows.
    tokens = np.arange(1, 11)
    inputs, targets, weights = _collect_sequences(
        make_sequences(tokens, 3, 4, batch_size=8, shuffle=False)
    )
    np.testing.assert_array_equal(
        inputs, [[1, 2, 3, 4, 5, 6], [5, 6, 7, 8, 9, 10]]
    )
    np.testing.assert_array_equal(targets, [[4, 5, 6, 7], [8, 9, 10, 0]])
    np.testing.assert_array_equal(weights, [[1, 1, 1, 1], [1, 1, 1, 0]])
    # pad_start: targets 2..10, the first seeing two pads then token 1.
    inputs, targets, weights = _collect_sequences(
        make_sequences(
            tokens, 3, 4, batch_size=8, shuffle=False, pad_start=True
        )
    )
    np.testing.assert_array_equal(
        inputs,
        [[0, 0, 1, 2, 3, 4], [3, 4, 5, 6, 7, 8], [7, 8, 9, 10, 0, 0]],
    )
    np.testing.assert_array_equal(
        targets, [[2, 3, 4, 5], [6, 7, 8, 9], [10, 0, 0, 0]]
    )
    np.testing.assert_array_equal(weights.sum(axis=1), [4, 4, 1])
    # short_context: the first target reads only the token before it.
    inputs, _, _ = _collect_sequences(
        make_sequences(
            tokens, 3, 4, batch_size=8, shuffle=False, short_context=True
        )
    )
    np.testing.assert_array_equal(
        inputs, [[0, 0, 3, 4, 5, 6], [0, 0, 7, 8, 9, 10]]
    )


@pytest.mark.parametrize("pad_start", [False, True])
def test_sequence_contexts_are_the_windows(pad_start):
    # Target t of a row reads inputs t .. t + M - 1: the same M tokens that
    # make_windows gives as that target's context.
    rng = np.random.default_rng(0)
    tokens = rng.integers(1, 20, size=57)
    memory_size, sequence_length = 6, 5
    contexts, window_targets = _collect(
        make_windows(
            tokens,
            memory_size,
            batch_size=64,
            shuffle=False,
            pad_start=pad_start,
        )
    )
    inputs, targets, weights = _collect_sequences(
        make_sequences(
            tokens,
            memory_size,
            sequence_length,
            batch_size=4,
            shuffle=False,
            pad_start=pad_start,
        )
    )
    # Window i is the i-th target; sequence row k slot t is target
    # k * T + t.
    window = np.arange(targets.size).reshape(targets.shape)
    real = weights == 1
    assert real.sum() == len(contexts)
    np.testing.assert_array_equal(window[real], np.arange(len(contexts)))
    for row, slot in zip(*np.nonzero(real)):
        index = window[row, slot]
        np.testing.assert_array_equal(
            inputs[row, slot : slot + memory_size], contexts[index]
        )
        assert targets[row, slot] == window_targets[index]


def test_shuffled_epochs_score_every_target_once():
    # Token i has id i + 1, so a target's position can be read off its id.
    num_tokens, memory_size, sequence_length = 500, 7, 9
    tokens = np.arange(1, num_tokens + 1)
    dataset = make_sequences(
        tokens, memory_size, sequence_length, batch_size=8, seed=5
    )
    epochs = [_collect_sequences(dataset) for _ in range(2)]
    for inputs, targets, weights in epochs:
        real = weights == 1
        assert set(np.unique(weights)) <= {0.0, 1.0}
        np.testing.assert_array_equal(
            np.sort(targets[real]), tokens[memory_size:]
        )
        assert np.all(targets[~real] == 0)
        # Each row is a real chunk: its inputs are the M - 1 + T ids before
        # its first target, 0 past the end.
        starts = targets[:, 0] - 1
        assert np.all((starts - memory_size) % sequence_length == 0)
        positions = starts[:, None] + np.arange(
            -memory_size, sequence_length - 1
        )
        np.testing.assert_array_equal(
            inputs, np.where(positions < num_tokens, positions + 1, 0)
        )
    first_order, second_order = epochs[0][1][:, 0], epochs[1][1][:, 0]
    assert not np.array_equal(first_order, second_order)
    np.testing.assert_array_equal(np.sort(first_order), np.sort(second_order))
    # Sequential order only without shuffle.
    assert not np.all(np.diff(first_order) > 0)
    again = _collect_sequences(
        make_sequences(
            tokens, memory_size, sequence_length, batch_size=8, seed=5
        )
    )
    np.testing.assert_array_equal(again[1], epochs[0][1])


def test_sequence_batches_and_drop_remainder():
    # 100 targets in rows of 9: 11 full rows and one of 1 target.
    tokens = np.arange(1, 111)
    assert count_sequences(110, 10, 9) == 12
    assert count_sequences(110, 10, 9, pad_start=True) == 13
    assert count_sequences(10, 10, 9) == 0
    dataset = make_sequences(tokens, 10, 9, batch_size=5, shuffle=False)
    assert [t.shape[0] for _, t, _ in dataset] == [5, 5, 2]
    dataset = make_sequences(
        tokens, 10, 9, batch_size=4, shuffle=False, drop_remainder=True
    )
    assert dataset.element_spec[0].shape.as_list() == [4, 18]
    assert dataset.element_spec[2].shape.as_list() == [4, 9]
    _, targets, weights = _collect_sequences(dataset)
    assert targets.shape == (12, 9)
    # The partial last row is kept, with its zero weights.
    np.testing.assert_array_equal(weights[-1], [1] + [0] * 8)
    dataset = make_sequences(
        tokens, 10, 9, batch_size=5, seed=0, drop_remainder=True
    )
    _, targets, weights = _collect_sequences(dataset)
    assert targets.shape == (10, 9)
    assert np.unique(targets[weights == 1]).size == weights.sum()


def test_corpus_sequences():
    from keras_memnet.tokenizers import WordVocabulary

    text = "a b c d e f g h i j k l"
    vocab = WordVocabulary.from_text(text)
    ids = vocab.encode(text)
    corpus = Corpus(ids, ids[:0], ids[:6], vocab)
    inputs, targets, weights = _collect_sequences(
        corpus.sequences(
            "train", 3, 4, 2, shuffle=False, pad_start=True, short_context=True
        )
    )
    expected = _reference_sequences(
        ids, 3, 4, pad_start=True, short_context=True
    )
    np.testing.assert_array_equal(inputs, expected[0])
    np.testing.assert_array_equal(targets, expected[1])
    np.testing.assert_array_equal(weights, expected[2])
    assert corpus.num_sequences("train", 3, 4, pad_start=True) == 3
    assert corpus.num_sequences("test", 3, 4) == 1
    with pytest.raises(
        ValueError,
        match="'valid' split of this corpus is empty, so it has no sequences",
    ):
        corpus.sequences("valid", 3, 4, 2)
    with pytest.raises(ValueError, match="`split_name` must be one of"):
        corpus.sequences("dev", 3, 4, 2)


def test_sequence_errors():
    with pytest.raises(ValueError, match="empty"):
        make_sequences(np.zeros(0, np.int32), 3, 4, 2)
    with pytest.raises(
        ValueError,
        match=r"has 5 tokens, fewer than the "
        r"memory_size \+ 1 = 6 needed for one target",
    ):
        make_sequences(np.arange(5), 5, 4, 2)
    with pytest.raises(
        ValueError,
        match=r"fewer than the 2 needed for one "
        r"target with `memory_size`=5 and pad_start=True",
    ):
        make_sequences(np.arange(1), 5, 4, 2, pad_start=True)
    with pytest.raises(
        ValueError, match="< `vocabulary_size`=5. Got a maximum of 9"
    ):
        make_sequences(np.arange(10), 3, 4, 2, vocabulary_size=5)
    with pytest.raises(ValueError, match=">= 0"):
        make_sequences(np.array([1, -1, 2, 3]), 2, 4, 2)
    with pytest.raises(ValueError, match="integer ids"):
        make_sequences(np.arange(10.0), 2, 4, 2)
    with pytest.raises(ValueError, match="1-D"):
        make_sequences(np.zeros((3, 3), np.int32), 2, 4, 2)
    with pytest.raises(ValueError, match="`memory_size` must be an integer"):
        make_sequences(np.arange(10), 0, 4, 2)
    with pytest.raises(
        ValueError,
        match="`sequence_length` must be an "
        "integer >= 1. Received: sequence_length=0",
    ):
        make_sequences(np.arange(10), 2, 0, 2)
    with pytest.raises(
        ValueError, match="`sequence_length` must be an integer"
    ):
        make_sequences(np.arange(10), 2, 4.0, 2)
    with pytest.raises(ValueError, match="`batch_size` must be an integer"):
        make_sequences(np.arange(10), 2, 4, True)
    with pytest.raises(
        ValueError,
        match=r"has 2 sequences of "
        r"`sequence_length`=4, fewer than `batch_size`=3 "
        r"with drop_remainder=True",
    ):
        make_sequences(np.arange(10), 2, 4, 3, drop_remainder=True)


@pytest.mark.parametrize(
    "pad_start,short_context", [(False, False), (True, False), (False, True)]
)
def test_sequence_arrays_are_the_rows_of_make_sequences(
    pad_start, short_context
):
    tokens = np.random.default_rng(0).integers(1, 50, size=203)
    inputs, targets, weights = sequence_arrays(
        tokens, 7, 10, pad_start=pad_start, short_context=short_context
    )
    dataset = make_sequences(
        tokens,
        7,
        10,
        batch_size=4,
        shuffle=False,
        pad_start=pad_start,
        short_context=short_context,
    )
    batches = [tuple(part.numpy() for part in batch) for batch in dataset]
    np.testing.assert_array_equal(
        inputs, np.concatenate([b[0] for b in batches])
    )
    np.testing.assert_array_equal(
        targets, np.concatenate([b[1] for b in batches])
    )
    np.testing.assert_array_equal(
        weights, np.concatenate([b[2] for b in batches])
    )
    assert inputs.dtype == np.int32 and weights.dtype == np.float32
    # Every token after the first context is a target exactly once.
    first = 1 if pad_start else 7
    np.testing.assert_array_equal(targets[weights > 0], tokens[first:])


def test_sequence_arrays_check_their_input():
    with pytest.raises(ValueError, match="`sequence_length` must be an"):
        sequence_arrays(np.arange(1, 20), 3, 0)
    with pytest.raises(ValueError, match="vocabulary_size`=5"):
        sequence_arrays(np.arange(1, 20), 3, 4, vocabulary_size=5)


@pytest.mark.parametrize("form", ["windows", "sequences"])
def test_random_order_is_a_function_of_seed_and_epoch(form):
    """A run resumed at epoch `e` draws what an uninterrupted run draws."""
    tokens = np.arange(1, 300)

    def dataset(initial_epoch=0, seed=7):
        if form == "windows":
            return make_windows(
                tokens, 3, 8, seed=seed, initial_epoch=initial_epoch
            )
        return make_sequences(
            tokens, 3, 4, 8, seed=seed, initial_epoch=initial_epoch
        )

    def one_epoch(data):
        return np.concatenate([batch[1].numpy().ravel() for batch in data])

    uninterrupted = dataset()
    epochs = [one_epoch(uninterrupted) for _ in range(3)]
    assert not np.array_equal(epochs[0], epochs[1])
    resumed = dataset(initial_epoch=2)
    np.testing.assert_array_equal(one_epoch(resumed), epochs[2])
    np.testing.assert_array_equal(one_epoch(dataset()), epochs[0])
    assert not np.array_equal(one_epoch(dataset(seed=8)), epochs[0])
    assert uninterrupted.cardinality().numpy() == len(list(dataset()))
    with pytest.raises(ValueError, match="initial_epoch"):
        dataset(initial_epoch=-1)
