"""Lazy sliding-window `tf.data` pipeline for next-token language modelling.

Window `i` is `tokens[i - memory_size:i]` (oldest first) followed by the
target `tokens[i]`. Windows are never materialised as a `(n, memory_size)`
array: the pipeline batches window end positions and gathers each batch's
contexts from one constant copy of the token array, so its memory stays
within a small multiple of the token array.
"""

import math

import numpy as np
import tensorflow as tf


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
):
    """Makes a `tf.data.Dataset` of `(context, next_token)` batches.

    Two ways to walk the corpus, as in Sukhbaatar et al., "End-To-End Memory
    Networks" (NeurIPS 2015, arXiv:1503.08895), which trained on randomly
    placed windows and evaluated on every position:

    - `shuffle=True`: each epoch draws `num_windows` window positions
      uniformly at random (with replacement), fresh every epoch and
      reproducible given `seed`.
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
    >>> dataset = make_windows(np.arange(10), memory_size=3, batch_size=4,
    ...                        shuffle=False)
    >>> context, target = next(iter(dataset))
    >>> context.numpy().tolist()[0], target.numpy().tolist()[0]
    ([0, 1, 2], 3)
    """
    memory_size = _positive_int(memory_size, "memory_size")
    batch_size = _positive_int(batch_size, "batch_size")
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
            f"needed for one window with `memory_size`={memory_size}"
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
    num_positions = num_tokens - first_target
    if num_windows is None:
        num_windows = num_positions
    num_windows = _positive_int(num_windows, "num_windows")

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
        num_batches = (
            num_windows // batch_size
            if drop_remainder
            else math.ceil(num_windows / batch_size)
        )
        if num_batches == 0:
            raise ValueError(
                f"`num_windows`={num_windows} is smaller than `batch_size`="
                f"{batch_size} with drop_remainder=True: no batch is left."
            )
        # One random seed per batch, redrawn every epoch, feeds a stateless
        # draw of the whole batch's positions (cheaper than one tf.data
        # element per window).
        batch_seeds = tf.data.Dataset.random(
            seed=seed, rerandomize_each_iteration=True
        ).take(num_batches)

        def random_positions(batch_index, batch_seed):
            size = tf.minimum(
                tf.constant(batch_size, tf.int64),
                num_windows - batch_index * batch_size,
            )
            return tf.random.stateless_uniform(
                tf.reshape(size, [1]),
                seed=tf.stack([batch_seed, batch_index]),
                minval=first_target,
                maxval=num_tokens,
                dtype=tf.int64,
            )

        positions = batch_seeds.enumerate().map(
            random_positions, num_parallel_calls=tf.data.AUTOTUNE
        )
    else:
        num_batches = (
            num_positions // batch_size
            if drop_remainder
            else math.ceil(num_positions / batch_size)
        )
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


def _positive_int(value, name):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ValueError(f"`{name}` must be an integer >= 1. Got: {value!r}")
    if value < 1:
        raise ValueError(f"`{name}` must be an integer >= 1. Got: {value}")
    return int(value)
