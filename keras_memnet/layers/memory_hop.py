import keras
from keras import ops


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
        query: `(batch, dim)` controller state `u`.
        keys: `(batch, memory, dim)` memory keys, compared with the query.
        values: `(batch, memory, dim)` memory values, read out by attention.
        mask: optional boolean `(batch, memory)`; `False` marks padded slots,
            which get no attention.
        return_attention_scores: bool. If `True`, also return the attention
            probabilities `p`, shape `(batch, memory)`.

    Returns:
        The next controller state, `(batch, dim)`, and the attention
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
        if linear_units is not None and (
            not isinstance(linear_units, int) or linear_units < 0
        ):
            raise ValueError(
                "`linear_units` must be None or an integer >= 0. "
                f"Received: linear_units={linear_units!r}"
            )
        self.linear_units = linear_units
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
        if len(query_shape) != 2:
            raise ValueError(
                "`query` must have shape (batch, dim). "
                f"Received: query.shape={tuple(query_shape)}"
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
        return_attention_scores=False,
    ):
        # Batched matrix-vector products on the (batch, memory, dim) layout
        # as stored: unlike einsum, no transposed copy of the memories is
        # made, forward or backward (benchmarks/train_throughput.py).
        scores = ops.squeeze(ops.matmul(keys, query[:, :, None]), -1)
        probabilities = self.softmax(scores, mask=mask)
        read = ops.squeeze(ops.matmul(probabilities[:, None, :], values), 1)
        if self.query_kernel is not None:
            query = ops.matmul(query, self.query_kernel)
        outputs = query + read
        if self.linear_units is not None:
            # One elementwise select instead of slicing and concatenating.
            units = ops.arange(ops.shape(outputs)[-1])
            outputs = ops.where(
                units >= self.linear_units, ops.relu(outputs), outputs
            )
        if return_attention_scores:
            return outputs, probabilities
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
        return_attention_scores=False,
    ):
        outputs = keras.KerasTensor(query.shape, dtype=self.compute_dtype)
        if return_attention_scores:
            scores = keras.KerasTensor(keys.shape[:-1], dtype=self.compute_dtype)
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
