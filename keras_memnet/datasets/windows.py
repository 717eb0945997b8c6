"""Lazy `tf.data` pipelines for next-token language modelling.

`make_windows`: window `i` is `tokens[i - memory_size:i]` (oldest first)
followed by the target `tokens[i]`, one target per row.

`make_sequences`: chunk `k` holds `sequence_length` consecutive targets and
the `memory_size + sequence_length - 1` tokens that precede them, so a model
that reads every `memory_size`-token window of the row (`MemN2NLM` "in
sequence form") scores all of its targets at once.

Neither windows nor chunks are ever materialised: the pipelines batch
positions and gather each batch from one constant copy of the token array,
so their memory stays within a small multiple of the token array.

`sequence_arrays` gives `make_sequences`' rows, in order, as NumPy arrays:
for backends and machines without TensorFlow, and for `fit` on arrays.
TensorFlow is imported only by the two pipelines, so the package imports
without it.
"""

import math

import numpy as np

from keras_memnet.utils.arguments import check_int


def make_windows(
    tokens,
    memory_size,
    batch_size,
    shuffle=True,
    num_windows=None,
    seed=None,
    pad_start=False,
    drop_remainder=False,
    vocabulary_size=None,
    initial_epoch=0,
):
    """Makes a `tf.data.Dataset` of `(context, next_token)` batches.

    Two ways to walk the corpus, as in Sukhbaatar et al., "End-To-End Memory
    Networks" (NeurIPS 2015, arXiv:1503.08895), which trained on randomly
    placed windows and evaluated on every position:

    - `shuffle=True`: each epoch draws `num_windows` window positions
      uniformly at random (with replacement), fresh every epoch. The draw
      of epoch `e` (counted from 0) is a function of `seed` and `e` alone,
      and the `k`-th pass over the dataset is epoch `initial_epoch + k`,
      so that a run resumed at epoch `e` draws what it would have drawn.
    - `shuffle=False`: one sequential pass over every window position, in
      order, for `evaluate`.

    Args:
        tokens: 1-D integer array of token ids.
        memory_size: int >= 1, the context length `M`.
        batch_size: int >= 1.
        shuffle: bool, random-window epochs (`True`) or a sequential pass.
        num_windows: int >= 1 or None. Windows per random epoch; None means
            as many as there are window positions. Ignored when
            `shuffle=False`.
        seed: int or None, seed of the random positions.
        initial_epoch: int >= 0, the epoch of the first pass (see above).
        pad_start: bool. If True, targets start at position 1 and contexts
            shorter than `memory_size` are left-padded with id 0, so every
            token but the first is scored. If False, targets start at
            position `memory_size`.
        drop_remainder: bool, drop a last partial batch.
        vocabulary_size: int or None. If given, ids must lie in
            `[0, vocabulary_size)`.

    Returns:
        A `tf.data.Dataset` of `(context, target)`, `context` int32 of shape
        `(batch, memory_size)` oldest first, `target` int32 of shape
        `(batch,)`.

    Example:

    >>> import numpy as np
    >>> dataset = make_windows(
    ...     np.arange(10), memory_size=3, batch_size=4, shuffle=False
    ... )
    >>> context, target = next(iter(dataset))
    >>> context.numpy().tolist()[0], target.numpy().tolist()[0]
    ([0, 1, 2], 3)
    """
    import tensorflow as tf

    memory_size = check_int("memory_size", memory_size, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    tokens = _check_tokens(
        tokens, memory_size, pad_start, vocabulary_size, "one window"
    )
    num_tokens = int(tokens.size)
    first_target = 1 if pad_start else memory_size
    num_positions = num_tokens - first_target
    if num_windows is None:
        num_windows = num_positions
    num_windows = check_int("num_windows", num_windows, minimum=1)

    # One int32 copy of the corpus lives in the graph; with `pad_start` it is
    # preceded by `memory_size` pad ids so that every slice is in range.
    offset = memory_size if pad_start else 0
    padded = np.zeros(num_tokens + offset, dtype=np.int32)
    padded[offset:] = tokens
    corpus = tf.constant(padded)
    relative = tf.range(-memory_size, 0, dtype=tf.int64)

    def gather(positions):
        # `positions` are target positions in the original token array.
        positions = positions + offset
        context = tf.gather(corpus, positions[:, None] + relative[None, :])
        target = tf.gather(corpus, positions)
        # Static batch dimension for backends that compile per shape.
        rows = batch_size if drop_remainder else None
        return (
            tf.ensure_shape(context, [rows, memory_size]),
            tf.ensure_shape(target, [rows]),
        )

    if shuffle:
        num_batches = _count_batches(num_windows, batch_size, drop_remainder)
        if num_batches == 0:
            raise ValueError(
                f"`num_windows`={num_windows} is smaller than `batch_size`="
                f"{batch_size} with drop_remainder=True: no batch is left."
            )
        epoch_seeds = _epoch_seeds(seed, initial_epoch)

        def batches_of_epoch(epoch_seed):
            return tf.data.Dataset.range(num_batches).map(
                lambda batch_index: (batch_index, epoch_seed)
            )

        def random_positions(batch_index, epoch_seed):
            size = tf.minimum(
                tf.constant(batch_size, tf.int64),
                num_windows - batch_index * batch_size,
            )
            # A stateless draw of the whole batch's positions (cheaper than
            # one tf.data element per window).
            return tf.random.stateless_uniform(
                tf.reshape(size, [1]),
                seed=tf.random.experimental.stateless_fold_in(
                    epoch_seed, batch_index
                ),
                minval=first_target,
                maxval=num_tokens,
                dtype=tf.int64,
            )

        positions = (
            epoch_seeds.flat_map(batches_of_epoch)
            .apply(tf.data.experimental.assert_cardinality(num_batches))
            .map(random_positions, num_parallel_calls=tf.data.AUTOTUNE)
        )
    else:
        num_batches = _count_batches(num_positions, batch_size, drop_remainder)
        if num_batches == 0:
            raise ValueError(
                f"The corpus has {num_positions} window positions, fewer "
                f"than `batch_size`={batch_size} with drop_remainder=True: "
                "no batch is left."
            )

        def sequential_positions(batch_index):
            start = first_target + batch_index * batch_size
            stop = tf.minimum(start + batch_size, num_tokens)
            return tf.range(start, stop, dtype=tf.int64)

        positions = tf.data.Dataset.range(num_batches).map(
            sequential_positions, num_parallel_calls=tf.data.AUTOTUNE
        )
    dataset = positions.map(gather, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


def count_windows(num_tokens, memory_size, pad_start=False):
    """Number of window positions in a corpus of `num_tokens` tokens."""
    first_target = 1 if pad_start else memory_size
    return max(0, int(num_tokens) - first_target)


def make_sequences(
    tokens,
    memory_size,
    sequence_length,
    batch_size,
    shuffle=True,
    seed=None,
    pad_start=False,
    short_context=False,
    drop_remainder=False,
    vocabulary_size=None,
    initial_epoch=0,
):
    """Makes a `tf.data.Dataset` of `(inputs, targets, sample_weight)` batches.

    For training a memory-network language model "in sequence form": a
    model that maps ids of shape `(batch, memory_size + sequence_length - 1)`
    to one prediction per `memory_size`-token window, `(batch,
    sequence_length, vocabulary)`, output `t` reading input positions
    `t .. t + memory_size - 1` (oldest first) and predicting the token that
    follows them, as `MemN2NLM` does on longer inputs.

    With `M = memory_size` and `T = sequence_length`, the targets start at
    `first_target = M` (or 1 with `pad_start`) and are cut into chunks of
    `T`: chunk `k` has targets `tokens[p:p + T]` and inputs
    `tokens[p - M:p + T - 1]` with `p = first_target + k * T`. Consecutive
    chunks overlap by `M - 1` input tokens, so every target is scored exactly
    once per epoch, always with its full `M`-token context (as the window
    `make_windows` gives it). The last chunk may be partial: its inputs and
    targets are right-padded with id 0 and the padded targets get
    `sample_weight` 0 (real targets 1).

    - `shuffle=True`: the chunks come in a fresh random order every epoch.
      The order of epoch `e` (counted from 0) is a function of `seed` and
      `e` alone, and the `k`-th pass over the dataset is epoch
      `initial_epoch + k`, so that a run resumed at epoch `e` sees the
      order it would have seen.
    - `shuffle=False`: the chunks in order, for `evaluate`.

    `short_context=True` zeroes (pads) every input before `p - 1` in every
    chunk, so the chunk's first target reads 1 real token, the next 2, and
    so on up to `M`; targets from `M - 1` on keep their full context. A
    model that starts with near-uniform attention over many memory slots
    gets a diluted gradient towards the most recent tokens; short contexts
    concentrate it (see `RandomWindows` in `examples/train_char_memn2n.py`),
    and a character model may not learn at all without them. The fraction
    of short-context targets is `(M - 1) / T`, so `T` sets the mix; keep
    `short_context=False` for evaluation.

    Args:
        tokens: 1-D integer array of token ids.
        memory_size: int >= 1, the context length `M`.
        sequence_length: int >= 1, the number of targets `T` per row.
        batch_size: int >= 1, rows per batch.
        shuffle: bool, a fresh chunk order each epoch (`True`) or
            sequential order.
        seed: int or None, seed of the chunk order.
        initial_epoch: int >= 0, the epoch of the first pass (see above).
        pad_start: bool. If True, the corpus is left-padded with
            `memory_size` ids 0 and targets start at position 1, so every
            token but the first is scored. If False, targets start at
            position `memory_size`.
        short_context: bool, pad the first `M - 1` inputs of every row (see
            above).
        drop_remainder: bool, drop a last partial batch of rows. (A last
            partial row is kept, with its zero-weight padding.)
        vocabulary_size: int or None. If given, ids must lie in
            `[0, vocabulary_size)`.

    Returns:
        A `tf.data.Dataset` of `(inputs, targets, sample_weight)`: `inputs`
        int32 of shape `(batch, memory_size + sequence_length - 1)`,
        `targets` int32 of shape `(batch, sequence_length)` and
        `sample_weight` float32 of the same shape. The batch dimension is
        static when `drop_remainder=True`.

    Example:

    >>> import numpy as np
    >>> dataset = make_sequences(
    ...     np.arange(1, 11),
    ...     memory_size=3,
    ...     sequence_length=4,
    ...     batch_size=2,
    ...     shuffle=False,
    ... )
    >>> inputs, targets, weights = next(iter(dataset))
    >>> inputs.numpy().tolist()
    [[1, 2, 3, 4, 5, 6], [5, 6, 7, 8, 9, 10]]
    >>> targets.numpy().tolist()
    [[4, 5, 6, 7], [8, 9, 10, 0]]
    >>> weights.numpy().tolist()
    [[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0.0]]
    """
    import tensorflow as tf

    memory_size = check_int("memory_size", memory_size, minimum=1)
    sequence_length = check_int("sequence_length", sequence_length, minimum=1)
    batch_size = check_int("batch_size", batch_size, minimum=1)
    tokens = _check_tokens(
        tokens, memory_size, pad_start, vocabulary_size, "one target"
    )
    num_tokens = int(tokens.size)
    first_target = 1 if pad_start else memory_size
    num_chunks = count_sequences(
        num_tokens, memory_size, sequence_length, pad_start=pad_start
    )
    num_batches = _count_batches(num_chunks, batch_size, drop_remainder)
    if num_batches == 0:
        raise ValueError(
            f"The corpus has {num_chunks} sequences of `sequence_length`="
            f"{sequence_length}, fewer than `batch_size`={batch_size} with "
            "drop_remainder=True: no batch is left."
        )

    # One int32 copy of the corpus lives in the graph: with `pad_start` it is
    # preceded by `memory_size` pad ids, and it is followed by
    # `sequence_length - 1` pad ids that fill the last chunk's tail.
    offset = memory_size if pad_start else 0
    padded = np.zeros(num_tokens + offset + sequence_length - 1, np.int32)
    padded[offset : offset + num_tokens] = tokens
    corpus = tf.constant(padded)
    input_length = memory_size + sequence_length - 1
    input_offsets = tf.range(-memory_size, sequence_length - 1, dtype=tf.int64)
    target_offsets = tf.range(sequence_length, dtype=tf.int64)
    # Input slots kept by `short_context`: the last `sequence_length`, from
    # the token just before the first target on.
    keep = np.ones(input_length, np.int32)
    if short_context:
        keep[: memory_size - 1] = 0
    keep = tf.constant(keep)
    rows = batch_size if drop_remainder else None

    def gather(chunks):
        # First target position of each chunk, in the original token array.
        starts = first_target + chunks * sequence_length
        positions = starts[:, None] + target_offsets[None, :]
        inputs = tf.gather(
            corpus, starts[:, None] + offset + input_offsets[None, :]
        )
        if short_context:
            inputs = inputs * keep[None, :]
        targets = tf.gather(corpus, positions + offset)
        weights = tf.cast(positions < num_tokens, tf.float32)
        # Static shapes for backends that compile per shape.
        return (
            tf.ensure_shape(inputs, [rows, input_length]),
            tf.ensure_shape(targets, [rows, sequence_length]),
            tf.ensure_shape(weights, [rows, sequence_length]),
        )

    if shuffle:
        # Only the int64 indices of the chunks are shuffled.
        chunks = _epoch_shuffled_indices(num_chunks, seed, initial_epoch)
    else:
        chunks = tf.data.Dataset.range(num_chunks)
    dataset = chunks.batch(batch_size, drop_remainder=drop_remainder).map(
        gather, num_parallel_calls=tf.data.AUTOTUNE
    )
    return dataset.prefetch(tf.data.AUTOTUNE)


def count_sequences(num_tokens, memory_size, sequence_length, pad_start=False):
    """Number of `make_sequences` rows (chunks) of a corpus of `num_tokens`
    tokens, the last one possibly partial."""
    first_target = 1 if pad_start else memory_size
    num_targets = max(0, int(num_tokens) - first_target)
    return math.ceil(num_targets / int(sequence_length))


def sequence_arrays(
    tokens,
    memory_size,
    sequence_length,
    pad_start=False,
    short_context=False,
    vocabulary_size=None,
):
    """Every `make_sequences` row, in order, as NumPy arrays.

    The same rows as `make_sequences(..., shuffle=False)` (see it for the
    layout and the arguments), materialised: `(memory_size +
    sequence_length - 1) / sequence_length` ids per target, so use it when
    that fits in memory, e.g. to `fit` on arrays (`shuffle=True` in `fit`
    redraws the row order every epoch) or where TensorFlow is not
    installed.

    Returns:
        `(inputs, targets, sample_weight)`: int32 `(rows, memory_size +
        sequence_length - 1)`, int32 `(rows, sequence_length)` and float32
        `(rows, sequence_length)`, 0 on the padding of a last partial row.

    Example:

    >>> import numpy as np
    >>> inputs, targets, weights = sequence_arrays(
    ...     np.arange(1, 11), memory_size=3, sequence_length=4
    ... )
    >>> inputs.tolist()
    [[1, 2, 3, 4, 5, 6], [5, 6, 7, 8, 9, 10]]
    >>> targets.tolist()
    [[4, 5, 6, 7], [8, 9, 10, 0]]
    >>> weights.tolist()
    [[1.0, 1.0, 1.0, 1.0], [1.0, 1.0, 1.0, 0.0]]
    """
    memory_size = check_int("memory_size", memory_size, minimum=1)
    sequence_length = check_int("sequence_length", sequence_length, minimum=1)
    tokens = _check_tokens(
        tokens, memory_size, pad_start, vocabulary_size, "one target"
    )
    num_tokens = int(tokens.size)
    offset = memory_size if pad_start else 0
    first_target = 1 if pad_start else memory_size
    num_chunks = count_sequences(
        num_tokens, memory_size, sequence_length, pad_start=pad_start
    )
    padded = np.zeros(num_tokens + offset + sequence_length - 1, np.int32)
    padded[offset : offset + num_tokens] = tokens
    starts = first_target + sequence_length * np.arange(num_chunks)
    positions = starts[:, None] + np.arange(sequence_length)[None, :]
    input_offsets = np.arange(-memory_size, sequence_length - 1)
    inputs = padded[starts[:, None] + offset + input_offsets[None, :]]
    if short_context:
        inputs[:, : memory_size - 1] = 0
    targets = padded[positions + offset]
    weights = (positions < num_tokens).astype(np.float32)
    return inputs, targets, weights


def _epoch_shuffled_indices(count, seed, initial_epoch=0):
    """A dataset of `0 .. count - 1`, in a new order each epoch.

    Each epoch's permutation is drawn from that epoch's seed
    (`_epoch_seeds`), so a run resumed at `initial_epoch` draws the same
    orders as an uninterrupted one. The cardinality is `count`.
    """
    import tensorflow as tf

    def indices_of_epoch(epoch_seed):
        order = tf.random.experimental.stateless_shuffle(
            tf.range(count, dtype=tf.int64), seed=epoch_seed
        )
        return tf.data.Dataset.from_tensor_slices(order)

    return (
        _epoch_seeds(seed, initial_epoch)
        .flat_map(indices_of_epoch)
        .apply(tf.data.experimental.assert_cardinality(count))
    )


def _epoch_seeds(seed, initial_epoch):
    """A dataset of one element per pass: the seed of that pass's epoch.

    A counter in the pipeline numbers the passes from `initial_epoch`; the
    seed is `(seed, epoch)`, for TensorFlow's stateless random ops. So the
    draw of an epoch does not depend on how many passes this process made
    before, only on the epoch, unlike `reshuffle_each_iteration`.
    """
    import tensorflow as tf

    initial_epoch = check_int("initial_epoch", initial_epoch, minimum=0)
    if seed is None:
        seed = int(np.random.default_rng().integers(2**31))
    seed = check_int("seed", seed)
    counter = tf.Variable(initial_epoch - 1, dtype=tf.int64, trainable=False)

    def next_epoch_seed(_):
        epoch = counter.assign_add(1)
        return tf.stack([tf.constant(seed, tf.int64), epoch])

    return tf.data.Dataset.range(1).map(next_epoch_seed)


def _check_tokens(tokens, memory_size, pad_start, vocabulary_size, what):
    """Validates a 1-D integer token array with at least one target.

    `what` names the unit in the too-short message ("one window", ...).
    Returns the tokens as a NumPy array (not copied).
    """
    tokens = np.asarray(tokens)
    if tokens.ndim != 1:
        raise ValueError(
            f"`tokens` must be a 1-D array of token ids. Got shape "
            f"{tokens.shape}."
        )
    if tokens.size == 0:
        raise ValueError("`tokens` is empty: the corpus has no tokens.")
    if not np.issubdtype(tokens.dtype, np.integer):
        raise ValueError(
            f"`tokens` must hold integer ids. Got dtype {tokens.dtype}."
        )
    num_tokens = int(tokens.size)
    first_target = 1 if pad_start else memory_size
    if num_tokens < first_target + 1:
        needed = "2" if pad_start else f"memory_size + 1 = {memory_size + 1}"
        raise ValueError(
            f"The corpus has {num_tokens} tokens, fewer than the {needed} "
            f"needed for {what} with `memory_size`={memory_size}"
            f"{' and pad_start=True' if pad_start else ''}."
        )
    low, high = int(tokens.min()), int(tokens.max())
    if low < 0:
        raise ValueError(f"Token ids must be >= 0. Got a minimum of {low}.")
    if vocabulary_size is not None and high >= vocabulary_size:
        raise ValueError(
            f"Token ids must be < `vocabulary_size`={vocabulary_size}. Got a "
            f"maximum of {high}."
        )
    if high > np.iinfo(np.int32).max:
        raise ValueError(f"Token ids must fit in int32. Got {high}.")
    return tokens


def _count_batches(count, batch_size, drop_remainder):
    """Batches of `batch_size` from `count` rows, a partial last one kept
    unless `drop_remainder`."""
    if drop_remainder:
        return count // batch_size
    return math.ceil(count / batch_size)
