import keras
from keras import ops

from keras_memnet.utils.arguments import check_int


@keras.saving.register_keras_serializable(package="keras_memnet")
class MemoryHop(keras.layers.Layer):
    """One hop of an End-To-End Memory Network.

    Implements one layer of Sukhbaatar et al., 2015, "End-To-End Memory
    Networks" (section 2): the controller state `u` reads the memory by
    attention and is updated with what it read,

    ```
    p = softmax(u · m_i)          over the valid memory slots
    o = sum_i p_i c_i
    u_next = H u + o              (section 2.2, layer-wise tying)
    ```

    where `m_i` are the memory keys (input embeddings `A x_i + T_A(i)`) and
    `c_i` the memory values (output embeddings `C x_i + T_C(i)`). `H` is a
    learned linear map without bias. For the language models of section 5,
    the paper passes all but the first `linear_units` units of `u_next`
    through a ReLU.

    Calling one instance several times shares its `H` across those hops,
    which is the paper's layer-wise (RNN-like) weight tying. With
    `use_query_projection=False` the update is `u_next = u + o`, the form used
    with adjacent tying.

    **Sequence form.** Given a query per position, `(batch, T, dim)`, and
    the memory of a whole sequence, `(batch, T + M - 1, dim)`, query `t`
    reads the `M` positions `t .. t + M - 1` (a causal sliding window, slot
    0 the oldest). This is the same computation as `T` separate window
    calls, done with matrix products over the whole sequence: scores
    `u (A x)^T` for every pair, shifted so that column `i` is slot `i`
    (pad, reshape, slice); the slot encodings `T_A`, `T_C` enter as
    `u T_A^T` and `p T_C`, so each token is embedded once instead of once
    per window. Pass the slot encodings as `key_encodings` and
    `value_encodings` rather than adding them to `keys` and `values`.

    Args:
        linear_units: int or `None`. If an int, units `[linear_units:]` of the
            output go through a ReLU and the first `linear_units` stay linear
            (`0` means all ReLU). `None` (default) keeps every unit linear.
        use_query_projection: bool. Whether to apply the learned map `H` to
            the query (`H u + o`) or to add the query unchanged (`u + o`).
            Defaults to `True`.
        kernel_initializer: initializer of `H`. Defaults to
            `RandomNormal(stddev=0.05)`, the paper's setting.
        kernel_regularizer: optional regularizer of `H`.
        **kwargs: other keyword arguments of `keras.layers.Layer`.

    Call arguments:
        query: `(batch, dim)` controller state `u`, or `(batch, T, dim)`
            for the sequence form.
        keys: `(batch, memory, dim)` memory keys, compared with the query.
            In the sequence form, `(batch, T + M - 1, dim)`.
        values: memory values, read out by attention; shaped like `keys`.
        mask: optional boolean `(batch, memory)` (or `(batch, T + M - 1)`);
            `False` marks padded positions, which get no attention.
        key_encodings: optional `(M, dim)` slot encodings added to the keys
            of every window (`T_A`; slot 0 the oldest).
        value_encodings: optional `(M, dim)` slot encodings added to the
            values of every window (`T_C`).
        return_attention_scores: bool. If `True`, also return the attention
            probabilities `p`, shape `(batch, memory)` (sequence form:
            `(batch, T, M)`, slot 0 the oldest).

    Returns:
        The next controller state, shaped like `query`, and the attention
        probabilities if `return_attention_scores=True`.

    Example:

    ```python
    import numpy as np
    from keras_memnet.layers import MemoryHop

    hop = MemoryHop(linear_units=8)
    query = np.full((2, 16), 0.1, dtype="float32")
    memory = np.random.normal(size=(2, 10, 16)).astype("float32")
    # Three hops with one instance: layer-wise tying.
    u = query
    for _ in range(3):
        u = hop(u, memory, memory)
    u.shape  # (2, 16)

    # Sequence form: 5 queries, each reading a window of 4 positions.
    tokens = np.random.normal(size=(2, 8, 16)).astype("float32")
    queries = np.full((2, 5, 16), 0.1, dtype="float32")
    hop(queries, tokens, tokens).shape  # (2, 5, 16)
    ```
    """

    def __init__(
        self,
        linear_units=None,
        use_query_projection=True,
        kernel_initializer=None,
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.linear_units = check_int(
            "linear_units", linear_units, minimum=0, allow_none=True
        )
        self.use_query_projection = bool(use_query_projection)
        self.kernel_initializer = keras.initializers.get(
            kernel_initializer
            or keras.initializers.RandomNormal(mean=0.0, stddev=0.05)
        )
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        # The memory mask is consumed here; the output has no memory axis.
        self.supports_masking = True
        self.softmax = keras.layers.Softmax(
            axis=-1, dtype=self.dtype_policy, name="attention_softmax"
        )

    def build(self, query_shape, keys_shape, values_shape):
        dim = query_shape[-1]
        if len(query_shape) not in (2, 3):
            raise ValueError(
                "`query` must have shape (batch, dim), or (batch, T, dim) "
                f"for the sequence form. Received: query.shape="
                f"{tuple(query_shape)}"
            )
        for name, shape in (("keys", keys_shape), ("values", values_shape)):
            if len(shape) != 3 or shape[-1] != dim:
                raise ValueError(
                    f"`{name}` must have shape (batch, memory, {dim}) to "
                    f"match query.shape={tuple(query_shape)}. "
                    f"Received: {name}.shape={tuple(shape)}"
                )
        if self.linear_units is not None and self.linear_units > dim:
            raise ValueError(
                f"`linear_units` must be between 0 and the query width {dim}. "
                f"Received: linear_units={self.linear_units}"
            )
        self.query_kernel = None
        if self.use_query_projection:
            self.query_kernel = self.add_weight(
                name="query_kernel",
                shape=(dim, dim),
                initializer=self.kernel_initializer,
                regularizer=self.kernel_regularizer,
            )
        self.softmax.build(keys_shape[:-1])

    def call(
        self,
        query,
        keys,
        values,
        mask=None,
        key_encodings=None,
        value_encodings=None,
        return_attention_scores=False,
    ):
        if len(query.shape) == 3:
            read, probabilities = self._read_windows(
                query, keys, values, mask, key_encodings, value_encodings
            )
        else:
            read, probabilities = self._read(
                query, keys, values, mask, key_encodings, value_encodings
            )
        outputs = self._update(query, read)
        if return_attention_scores:
            return outputs, probabilities
        return outputs

    def _read(self, query, keys, values, mask, key_encodings, value_encodings):
        """One window per query: `(batch, dim)` against `(batch, M, dim)`."""
        if key_encodings is not None:
            keys = keys + ops.cast(key_encodings, keys.dtype)
        if value_encodings is not None:
            values = values + ops.cast(value_encodings, values.dtype)
        # Batched matrix-vector products on the (batch, memory, dim) layout
        # as stored: unlike einsum, no transposed copy of the memories is
        # made, forward or backward (benchmarks/train_throughput.py).
        scores = ops.squeeze(ops.matmul(keys, query[:, :, None]), -1)
        probabilities = self.softmax(scores, mask=mask)
        read = ops.squeeze(ops.matmul(probabilities[:, None, :], values), 1)
        return read, probabilities

    def _read_windows(
        self, query, keys, values, mask, key_encodings, value_encodings
    ):
        """Sliding windows: `(batch, T, dim)` against `(batch, T+M-1, dim)`."""
        num_queries, length = query.shape[1], keys.shape[1]
        memory_size = window_size(num_queries, length)
        for name, encoding in (
            ("key_encodings", key_encodings),
            ("value_encodings", value_encodings),
        ):
            if encoding is not None and encoding.shape[0] != memory_size:
                raise ValueError(
                    f"`{name}` has {encoding.shape[0]} slots, but {length} "
                    f"memory positions for {num_queries} queries make "
                    f"windows of {memory_size}."
                )
        # Every query against every position, then row t shifted left by t.
        scores = window_band(
            ops.matmul(query, ops.transpose(keys, (0, 2, 1))), memory_size
        )
        if key_encodings is not None:
            scores = scores + ops.matmul(
                query, ops.transpose(ops.cast(key_encodings, query.dtype))
            )
        window_mask = None
        if mask is not None:
            slots = ops.arange(num_queries)[:, None] + ops.arange(memory_size)
            window_mask = ops.take(mask, slots, axis=1)
        probabilities = self.softmax(scores, mask=window_mask)
        read = ops.matmul(window_unband(probabilities, length), values)
        if value_encodings is not None:
            read = read + ops.matmul(
                probabilities, ops.cast(value_encodings, probabilities.dtype)
            )
        return read, probabilities

    def _update(self, query, read):
        if self.query_kernel is not None:
            query = ops.matmul(query, self.query_kernel)
        outputs = query + read
        if self.linear_units is not None:
            # One elementwise select instead of slicing and concatenating.
            units = ops.arange(ops.shape(outputs)[-1])
            outputs = ops.where(
                units >= self.linear_units, ops.relu(outputs), outputs
            )
        return outputs

    def compute_mask(self, query, mask=None):
        return None

    def compute_output_shape(self, query_shape, keys_shape, values_shape):
        return tuple(query_shape)

    def compute_output_spec(
        self,
        query,
        keys,
        values,
        mask=None,
        key_encodings=None,
        value_encodings=None,
        return_attention_scores=False,
    ):
        outputs = keras.KerasTensor(query.shape, dtype=self.compute_dtype)
        if return_attention_scores:
            if len(query.shape) == 3:
                shape = tuple(query.shape[:2]) + (
                    window_size(query.shape[1], keys.shape[1]),
                )
            else:
                shape = keys.shape[:-1]
            scores = keras.KerasTensor(shape, dtype=self.compute_dtype)
            return outputs, scores
        return outputs

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "linear_units": self.linear_units,
                "use_query_projection": self.use_query_projection,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "kernel_regularizer": keras.regularizers.serialize(
                    self.kernel_regularizer
                ),
            }
        )
        return config


def window_size(num_queries, length):
    """Slots per window when `num_queries` windows tile `length` positions."""
    if num_queries is None or length is None:
        raise ValueError(
            "The sequence form of `MemoryHop` needs static query and memory "
            f"lengths. Received: {num_queries} queries, {length} positions."
        )
    if length < num_queries:
        raise ValueError(
            f"The sequence form needs at least as many memory positions as "
            f"queries (T + M - 1 for T queries and windows of M). Received: "
            f"{num_queries} queries and {length} positions."
        )
    return length - num_queries + 1


def window_band(scores, memory_size):
    """`(batch, T, L)` -> `(batch, T, M)` with `out[t, i] = scores[t, t + i]`.

    Read row-major with a stride of `L + 1` instead of `L`, row `t` starts
    `t` columns further right: pad the flat rows by `T`, reshape to
    `(T, L + 1)` and keep the first `M` columns. No gather is involved, so
    the gradient is a pad and a reshape too.
    """
    num_queries, length = scores.shape[1], scores.shape[2]
    flat = ops.reshape(scores, (-1, num_queries * length))
    flat = ops.pad(flat, ((0, 0), (0, num_queries)))
    return ops.reshape(flat, (-1, num_queries, length + 1))[:, :, :memory_size]


def window_unband(band, length):
    """The inverse placement: `out[t, t + i] = band[t, i]`, zeros elsewhere."""
    num_queries, memory_size = band.shape[1], band.shape[2]
    padded = ops.pad(band, ((0, 0), (0, 0), (0, length + 1 - memory_size)))
    flat = ops.reshape(padded, (-1, num_queries * (length + 1)))
    return ops.reshape(
        flat[:, : num_queries * length], (-1, num_queries, length)
    )
