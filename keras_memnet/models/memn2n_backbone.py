import keras
import keras_hub
from keras import ops

from keras_memnet.layers.memory_hop import MemoryHop
from keras_memnet.layers.temporal_encoding import TemporalEncoding
from keras_memnet.utils.arguments import check_float
from keras_memnet.utils.arguments import check_int
from keras_memnet.utils.arguments import check_mesh_axes
from keras_memnet.utils.arguments import check_one_of

WEIGHT_TYING_MODES = ("layerwise", "adjacent")


@keras.saving.register_keras_serializable(package="keras_memnet")
class MemN2NBackbone(keras.Model):
    """End-To-End Memory Network core: token ids to the final state.

    The memory and hops of the language model of Sukhbaatar et al., 2015,
    "End-To-End Memory Networks" (NeurIPS 2015, arXiv:1503.08895, section
    5), without an output head. The previous `memory_size` tokens are the
    memory; there is no question, so the controller state starts as a
    constant vector of `query_value` (0.1). Each hop attends over the
    memory and updates the state; the backbone returns the state after the
    last hop. `keras_memnet.models.MemN2NLM` adds the next-token head.

    With the default `weight_tying="layerwise"` the memory embeddings A and
    C, the temporal encodings T_A and T_C and the state map H are shared by
    all hops (`u_next = H u + o`, an RNN-like stack), and units beyond
    `linear_units` go through a ReLU: the paper's language-model setting.
    `weight_tying="adjacent"` is the paper's other scheme (section 2.2):
    hop `k` reads keys with embedding `k` and values with embedding
    `k + 1`, and `u_next = u + o`; the last embedding is then a
    `keras_hub.layers.ReversibleEmbedding`, so that a head can reuse it
    transposed (`token_embedding`). There are no biases, and every weight
    starts from N(0, `init_stddev`). Token id 0 is padding: slots holding
    it get no attention, so short contexts can be left-padded.

    keras-hub's backbones are Functional models; this one is a subclassed
    `keras.Model` because the rank of its output follows the static length
    of its input (the two forms below). Its weights do not depend on that
    length, so, like a Functional backbone, it is built on construction.

    Args:
        vocabulary_size: int >= 2. Number of token ids, padding included.
        hops: int >= 1. Number of memory hops. Defaults to `6`.
        memory_size: int >= 1. Number of previous tokens read. Defaults to
            `100`.
        embedding_dim: int >= 1. Width of embeddings and state. Defaults to
            `150`.
        linear_units: int in `[0, embedding_dim]` or `None`. Units of the
            state kept linear; the rest go through a ReLU. `None` (default)
            means half of `embedding_dim`, as in the paper. Use
            `embedding_dim` for an all-linear state.
        weight_tying: `"layerwise"` (default) or `"adjacent"`.
        dropout: float in [0, 1). Dropout on the memory embeddings during
            training. Defaults to `0.0`.
        query_value: float. Value of every unit of the initial state.
            Defaults to `0.1`.
        init_stddev: float > 0. Standard deviation of the normal
            initialisation of all weights. Defaults to `0.05`.
        **kwargs: other keyword arguments of `keras.Model` (`name`,
            `dtype`).

    Two forms, with the same weights:

    - **Window form.** Input: int token ids `(batch, memory_size)`, oldest
      first. Output: the final state `(batch, embedding_dim)`.
    - **Sequence form.** Input: ids `(batch, memory_size + T - 1)`.
      Output: `(batch, T, embedding_dim)`, where output `t` is the window
      form on the `memory_size` ids ending at input position
      `t + memory_size - 1`. Every token is embedded once and the hops are
      matrix products over the whole sequence (see `MemoryHop`); with
      `dropout`, a token's embedding is dropped alike in every window that
      reads it.

    Example:

    ```python
    import numpy as np
    from keras_memnet.models import MemN2NBackbone

    backbone = MemN2NBackbone(
        vocabulary_size=50, hops=3, memory_size=8, embedding_dim=16
    )
    windows = np.random.randint(1, 50, size=(4, 8))
    backbone(windows).shape  # (4, 16)
    # Sequence form: 8 + 5 - 1 ids per row give 5 states per row.
    ids = np.random.randint(1, 50, size=(4, 8 + 5 - 1))
    backbone(ids).shape  # (4, 5, 16)
    ```
    """

    def __init__(
        self,
        vocabulary_size,
        hops=6,
        memory_size=100,
        embedding_dim=150,
        linear_units=None,
        weight_tying="layerwise",
        dropout=0.0,
        query_value=0.1,
        init_stddev=0.05,
        **kwargs,
    ):
        super().__init__(**kwargs)
        vocabulary_size = check_int(
            "vocabulary_size", vocabulary_size, minimum=2
        )
        hops = check_int("hops", hops, minimum=1)
        memory_size = check_int("memory_size", memory_size, minimum=1)
        embedding_dim = check_int("embedding_dim", embedding_dim, minimum=1)
        if linear_units is None:
            linear_units = embedding_dim // 2
        linear_units = check_int(
            "linear_units", linear_units, minimum=0, maximum=embedding_dim
        )
        weight_tying = check_one_of(
            "weight_tying", weight_tying, WEIGHT_TYING_MODES
        )
        dropout = check_float(
            "dropout", dropout, minimum=0, maximum=1, max_inclusive=False
        )
        query_value = check_float("query_value", query_value)
        init_stddev = check_float(
            "init_stddev", init_stddev, minimum=0, min_inclusive=False
        )
        self.vocabulary_size = vocabulary_size
        self.hops = hops
        self.memory_size = memory_size
        self.embedding_dim = embedding_dim
        self.linear_units = linear_units
        self.weight_tying = weight_tying
        self.dropout = dropout
        self.query_value = query_value
        self.init_stddev = init_stddev

        # === Layers ===
        # Layer-wise tying needs one embedding (and temporal encoding) for
        # the keys and one for the values; adjacent tying needs hops + 1.
        num_embeddings = 2 if weight_tying == "layerwise" else hops + 1
        self.memory_embeddings = []
        for i in range(num_embeddings):
            # Under adjacent tying the last embedding is also the output
            # map (the paper's W^T = C^K), read transposed by the task.
            tied = weight_tying == "adjacent" and i == num_embeddings - 1
            embedding_class = (
                keras_hub.layers.ReversibleEmbedding
                if tied
                else keras.layers.Embedding
            )
            self.memory_embeddings.append(
                embedding_class(
                    vocabulary_size,
                    embedding_dim,
                    embeddings_initializer=self._normal_initializer(),
                    dtype=self.dtype_policy,
                    name=f"memory_embedding_{i}",
                )
            )
        self.temporal_encodings = [
            TemporalEncoding(
                memory_size,
                embeddings_initializer=self._normal_initializer(),
                dtype=self.dtype_policy,
                name=f"temporal_encoding_{i}",
            )
            for i in range(num_embeddings)
        ]
        if weight_tying == "layerwise":
            # One instance called by every hop shares H between them.
            self.memory_hops = [
                MemoryHop(
                    linear_units=linear_units,
                    kernel_initializer=self._normal_initializer(),
                    dtype=self.dtype_policy,
                    name="memory_hop",
                )
            ]
        else:
            self.memory_hops = [
                MemoryHop(
                    linear_units=linear_units,
                    use_query_projection=False,
                    dtype=self.dtype_policy,
                    name=f"memory_hop_{i}",
                )
                for i in range(hops)
            ]
        self.memory_dropout = keras.layers.Dropout(
            dropout, dtype=self.dtype_policy, name="dropout"
        )
        self.build((None, memory_size))

    def _normal_initializer(self):
        # A fresh initializer per weight: one unseeded instance reused would
        # give identical values to equally shaped weights.
        return keras.initializers.RandomNormal(stddev=self.init_stddev)

    @property
    def token_embedding(self):
        """The last memory embedding, `(vocabulary_size, embedding_dim)`.

        The values embedding of the last hop (the paper's C^K). Under
        adjacent tying it is a `keras_hub.layers.ReversibleEmbedding`, whose
        `reverse=True` call gives the tied next-token logits.
        """
        return self.memory_embeddings[-1]

    def build(self, input_shape=None):
        if input_shape is not None:
            self._check_input_shape(input_shape)
        memory_shape = (None, self.memory_size, self.embedding_dim)
        state_shape = (None, self.embedding_dim)
        # The weights do not depend on the input length; a second build
        # (e.g. from a saved build config) leaves the built layers alone.
        for embedding in self.memory_embeddings:
            if not embedding.built:
                embedding.build((None, self.memory_size))
        for encoding in self.temporal_encodings:
            if not encoding.built:
                encoding.build(memory_shape)
        for hop in self.memory_hops:
            if not hop.built:
                hop.build(state_shape, memory_shape, memory_shape)
        if not self.memory_dropout.built:
            self.memory_dropout.build(memory_shape)

    def call(self, token_ids, training=False):
        state, _ = self._read_memory(token_ids, training=training)
        return state

    def memory_attention(self, token_ids):
        """Each hop's attention weights over the memory slots.

        The same hops as `call` (without dropout), returning what each hop
        reads instead of the final state: hop `k`'s softmax over the
        `memory_size` slots of each window (the paper's `p`, section 2.1).
        Slot 0 is the oldest token of a window and slot `memory_size - 1`
        the most recent, the one just before the predicted token. Padding
        slots (id 0) get weight 0; every window with a token sums to 1.
        `keras_memnet.models.MemN2NLM.memory_attention` takes text and
        labels the slots with their tokens.

        Args:
            token_ids: int token ids in either form: `(batch,
                memory_size)` (one window per row) or `(batch, memory_size
                + T - 1)` (the sequence form, `T` windows per row).

        Returns:
            A backend tensor `(batch, hops, memory_size)` for the window
            form, `(batch, T, hops, memory_size)` for the sequence form.

        Example:

        ```python
        import numpy as np
        from keras_memnet.models import MemN2NBackbone

        backbone = MemN2NBackbone(
            vocabulary_size=50, hops=3, memory_size=8, embedding_dim=16
        )
        windows = np.random.randint(1, 50, size=(4, 8))
        backbone.memory_attention(windows).shape  # (4, 3, 8)
        ids = np.random.randint(1, 50, size=(4, 8 + 5 - 1))
        backbone.memory_attention(ids).shape  # (4, 5, 3, 8)
        ```
        """
        token_ids = ops.convert_to_tensor(token_ids)
        _, weights = self._read_memory(
            token_ids, training=False, return_attention=True
        )
        # Hops next to the slots: one `(hops, memory_size)` map per window.
        return ops.stack(weights, axis=-2)

    def _read_memory(self, token_ids, training=False, return_attention=False):
        """The hops: the final state, and each hop's weights if asked."""
        num_windows = self._num_windows(token_ids.shape)
        token_ids = ops.cast(token_ids, "int32")
        memory_mask = ops.not_equal(token_ids, 0)
        if num_windows == 1:
            # One window per row: the slot encodings are added to the
            # embedded slots.
            memories = [
                encoding(embedding(token_ids))
                for embedding, encoding in zip(
                    self.memory_embeddings, self.temporal_encodings
                )
            ]
            encodings = [None] * len(memories)
            state_shape = (ops.shape(token_ids)[0], self.embedding_dim)
        else:
            # Every window of a row: each token is embedded once and the
            # slot encodings enter the hops' scores and reads directly, so
            # dropout drops a token's units for every window that reads it.
            memories = [
                embedding(token_ids) for embedding in self.memory_embeddings
            ]
            encodings = [e.embeddings for e in self.temporal_encodings]
            state_shape = (
                ops.shape(token_ids)[0],
                num_windows,
                self.embedding_dim,
            )
        memories = [
            self.memory_dropout(memory, training=training)
            for memory in memories
        ]
        state = ops.full(
            state_shape, self.query_value, dtype=self.compute_dtype
        )
        weights = [] if return_attention else None
        for k in range(self.hops):
            if self.weight_tying == "layerwise":
                hop, keys, values = self.memory_hops[0], 0, 1
            else:
                hop, keys, values = self.memory_hops[k], k, k + 1
            outputs = hop(
                state,
                memories[keys],
                memories[values],
                mask=memory_mask,
                key_encodings=encodings[keys],
                value_encodings=encodings[values],
                return_attention_scores=return_attention,
            )
            if return_attention:
                state, probabilities = outputs
                weights.append(probabilities)
            else:
                state = outputs
        return state, weights

    def compute_output_shape(self, input_shape):
        num_windows = self._num_windows(input_shape)
        if num_windows == 1:
            return (input_shape[0], self.embedding_dim)
        return (input_shape[0], num_windows, self.embedding_dim)

    def _num_windows(self, shape):
        """Windows per row: 1 for the window form, T for the sequence form."""
        self._check_input_shape(shape)
        if shape[1] is None:
            raise ValueError(
                "MemN2NBackbone needs the length of its input known when "
                "traced: it decides between the window form (memory_size "
                "ids) and the sequence form (more ids). Received: shape="
                f"{tuple(shape)}."
            )
        return shape[1] - self.memory_size + 1

    def _check_input_shape(self, shape):
        if len(shape) != 2 or (
            shape[-1] is not None and shape[-1] < self.memory_size
        ):
            raise ValueError(
                "Token ids must have shape (batch, memory_size="
                f"{self.memory_size}) for one window per row, or (batch, "
                "memory_size + T - 1) for T windows per row. Received: "
                f"shape={tuple(shape)}. Left-pad short contexts with 0."
            )

    @staticmethod
    def get_layout_map(
        device_mesh,
        model_parallel_dim_name="model",
        data_parallel_dim_name="batch",
    ):
        """A `keras.distribution.LayoutMap` that splits the memory
        embeddings by vocabulary id across the model axis of `device_mesh`.

        The embeddings are the backbone's only weights that grow with the
        vocabulary; the rest (temporal encodings, H) is small and copied to
        every device. The vocabulary size must divide by the size of the
        model axis. `MemN2NLM.get_layout_map` adds the output projection.

        Args:
            device_mesh: a `keras.distribution.DeviceMesh`.
            model_parallel_dim_name: the mesh axis the weights are split
                along.
            data_parallel_dim_name: the mesh axis the batch is split along
                (`ModelParallel`'s `batch_dim_name`); only checked to be on
                the mesh, since no weight is split along it.

        Returns:
            A `keras.distribution.LayoutMap`.

        Example:

        ```python
        import keras
        from keras_memnet.models import MemN2NBackbone

        mesh = keras.distribution.DeviceMesh(
            shape=(1, len(keras.distribution.list_devices())),
            axis_names=("batch", "model"),
        )
        layout_map = MemN2NBackbone.get_layout_map(mesh)
        ```
        """
        check_mesh_axes(
            device_mesh, model_parallel_dim_name, data_parallel_dim_name
        )
        layout_map = keras.distribution.LayoutMap(device_mesh)
        layout_map[r".*/memory_embedding_\d+/embeddings"] = (
            model_parallel_dim_name,
            None,
        )
        return layout_map

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "hops": self.hops,
                "memory_size": self.memory_size,
                "embedding_dim": self.embedding_dim,
                "linear_units": self.linear_units,
                "weight_tying": self.weight_tying,
                "dropout": self.dropout,
                "query_value": self.query_value,
                "init_stddev": self.init_stddev,
            }
        )
        return config
