import math

import keras
from keras import ops

from keras_memnet.utils.arguments import check_float
from keras_memnet.utils.arguments import check_int
from keras_memnet.utils.initializers import clone_initializer


@keras.saving.register_keras_serializable(package="keras_memnet")
class AdaptiveSoftmax(keras.layers.Layer):
    """Adaptive softmax: an exact, cheaper output layer for large vocabularies.

    Grave et al., 2017, "Efficient softmax approximation for GPUs" (ICML,
    arXiv:1609.04309). The vocabulary is split by frequency at `cutoffs`
    into a head (the `cutoffs[0]` most frequent ids) and tail clusters
    `[cutoffs[i], cutoffs[i + 1])`. The head is a softmax over its ids plus
    one entry per tail cluster; tail cluster `i` is a softmax over its own
    ids, computed from the hidden state projected down to
    `dim // tail_dim_factor ** (i + 1)` units. So

    ```
    log p(w) = log p_head(w)                          w in the head
    log p(w) = log p_head(cluster i) + log p_i(w)     w in tail cluster i
    ```

    which is a normalised distribution over all `vocabulary_size` ids, with
    far fewer multiply-adds than a `dim x vocabulary_size` projection.

    Ids must be ordered by decreasing frequency for the clusters to make
    sense. `keras_memnet.tokenizers.WordVocabulary.from_text` does that: id
    0 is `<pad>`, id 1 `<unk>`, then word types by descending count; both
    special ids fall in the head.

    - `call(hidden)` returns the exact log-probabilities of every id,
      `(..., vocabulary_size)`, for evaluation and generation. As they are
      already normalised, `SparseCategoricalCrossentropy(from_logits=True)`
      and `Perplexity(from_logits=True)` on them give the exact negative
      log-likelihood (a log-softmax of log-probabilities is the identity).
    - `negative_log_likelihood(hidden, targets)` is the fast training loss:
      each tail cluster is evaluated only for the rows whose target falls in
      it, as in the paper. To keep shapes static (XLA, `jax.jit`), the rows
      are gathered into a buffer of 1/8, 1/4 or 1/2 of the batch, the
      smallest that holds them, or all rows are used
      (`keras.ops.switch`), so the result is exact for any batch. This
      needs the batch size when the step is traced: on TensorFlow, feed
      batches of a fixed size (`drop_remainder=True` in `tf.data`);
      otherwise every row evaluates every tail cluster (still without the
      full distribution).

    Args:
        vocabulary_size: int >= 2. Number of ids.
        cutoffs: strictly increasing list of ints in `(0, vocabulary_size)`:
            the first id of each tail cluster. `[2000, 10000]` makes a head
            of ids `[0, 2000)` and tails `[2000, 10000)` and
            `[10000, vocabulary_size)`.
        tail_dim_factor: number >= 1. Tail cluster `i` works in
            `max(1, dim // tail_dim_factor ** (i + 1))` dimensions. Defaults
            to `4`, the paper's choice. `1` keeps the full width.
        use_bias: bool. Whether the head and tail logits have biases.
            Defaults to `False` (the memory-network language model has none).
        kernel_initializer: initializer of every kernel. Defaults to
            `"glorot_uniform"`.
        bias_initializer: initializer of the biases. Defaults to `"zeros"`.
        kernel_regularizer: optional regularizer of every kernel.
        **kwargs: other keyword arguments of `keras.layers.Layer`.

    Input shape: `(..., dim)`.
    Output shape: `(..., vocabulary_size)` float32 log-probabilities.

    Example:

    ```python
    import numpy as np
    from keras_memnet.layers import AdaptiveSoftmax

    layer = AdaptiveSoftmax(vocabulary_size=1000, cutoffs=[100, 400])
    hidden = np.random.normal(size=(8, 64)).astype("float32")
    log_probs = layer(hidden)  # (8, 1000)
    np.exp(log_probs).sum(-1)  # all 1.0
    targets = np.random.randint(0, 1000, size=(8,))
    layer.negative_log_likelihood(hidden, targets)  # (8,), fast
    ```
    """

    def __init__(
        self,
        vocabulary_size,
        cutoffs,
        tail_dim_factor=4,
        use_bias=False,
        kernel_initializer="glorot_uniform",
        bias_initializer="zeros",
        kernel_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        vocabulary_size = check_int(
            "vocabulary_size", vocabulary_size, minimum=2
        )
        cutoffs = check_cutoffs(cutoffs, vocabulary_size)
        check_float("tail_dim_factor", tail_dim_factor, minimum=1)
        self.vocabulary_size = vocabulary_size
        self.cutoffs = cutoffs
        self.tail_dim_factor = tail_dim_factor
        self.use_bias = bool(use_bias)
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.kernel_regularizer = keras.regularizers.get(kernel_regularizer)
        # [0, c0), [c0, c1), ..., [c_last, vocabulary_size)
        self.cluster_bounds = list(
            zip(cutoffs, cutoffs[1:] + [vocabulary_size])
        )

    @property
    def head_size(self):
        """Head ids plus one entry per tail cluster."""
        return self.cutoffs[0] + len(self.cluster_bounds)

    def tail_dims(self, dim):
        """Widths of the tail projections for an input of width `dim`."""
        return [
            max(1, int(dim // self.tail_dim_factor ** (i + 1)))
            for i in range(len(self.cluster_bounds))
        ]

    def build(self, input_shape):
        dim = input_shape[-1]
        if dim is None:
            raise ValueError(
                "The last axis of the input of `AdaptiveSoftmax` must be "
                f"known. Received: input_shape={tuple(input_shape)}"
            )
        self.head_kernel = self._kernel("head_kernel", (dim, self.head_size))
        self.head_bias = self._bias("head_bias", self.head_size)
        self.tail_projections, self.tail_kernels, self.tail_biases = [], [], []
        for i, ((low, high), tail_dim) in enumerate(
            zip(self.cluster_bounds, self.tail_dims(dim))
        ):
            self.tail_projections.append(
                self._kernel(f"tail_projection_{i}", (dim, tail_dim))
            )
            self.tail_kernels.append(
                self._kernel(f"tail_kernel_{i}", (tail_dim, high - low))
            )
            self.tail_biases.append(self._bias(f"tail_bias_{i}", high - low))

    def _kernel(self, name, shape):
        # A fresh initializer per weight: one unseeded instance reused would
        # give equally shaped weights identical values.
        return self.add_weight(
            name=name,
            shape=shape,
            initializer=clone_initializer(self.kernel_initializer),
            regularizer=self.kernel_regularizer,
        )

    def _bias(self, name, size):
        if not self.use_bias:
            return None
        return self.add_weight(
            name=name, shape=(size,), initializer=self.bias_initializer
        )

    def _logits(self, hidden, kernels, bias):
        """`hidden @ kernels[0] @ kernels[1] ...` (+ bias), as float32."""
        for kernel in kernels:
            hidden = ops.matmul(hidden, ops.cast(kernel, self.compute_dtype))
        if bias is not None:
            hidden = hidden + ops.cast(bias, self.compute_dtype)
        # Normalise in float32 even under mixed precision.
        return ops.cast(hidden, "float32")

    def call(self, hidden):
        hidden = ops.cast(hidden, self.compute_dtype)
        head = ops.log_softmax(
            self._logits(hidden, [self.head_kernel], self.head_bias), axis=-1
        )
        cutoff = self.cutoffs[0]
        parts = [head[..., :cutoff]]
        for i, (projection, kernel, bias) in enumerate(
            zip(self.tail_projections, self.tail_kernels, self.tail_biases)
        ):
            tail = ops.log_softmax(
                self._logits(hidden, [projection, kernel], bias), axis=-1
            )
            parts.append(head[..., cutoff + i : cutoff + i + 1] + tail)
        return ops.concatenate(parts, axis=-1)

    def negative_log_likelihood(self, hidden, targets):
        """Per-row `-log p(target)`, computed without the full distribution.

        Equal to `-take_along_axis(layer(hidden), targets)`, but each tail
        cluster's logits are computed only for (a static-size buffer of) the
        rows whose target is in that cluster.

        Args:
            hidden: `(batch, dim)` float tensor.
            targets: `(batch,)` int ids in `[0, vocabulary_size)`.

        Returns:
            float32 `(batch,)`.
        """
        if not self.built:
            self.build(tuple(hidden.shape))
        hidden = ops.cast(hidden, self.compute_dtype)
        targets = ops.reshape(ops.cast(targets, "int32"), (-1,))
        cutoff = self.cutoffs[0]
        head_logits = self._logits(hidden, [self.head_kernel], self.head_bias)
        # Position of each target in the head: itself, or its cluster's entry.
        head_targets = targets
        for i, (low, high) in enumerate(self.cluster_bounds):
            in_cluster = ops.logical_and(targets >= low, targets < high)
            head_targets = ops.where(in_cluster, cutoff + i, head_targets)
        nll = (
            ops.logsumexp(head_logits, axis=-1)
            - ops.take_along_axis(head_logits, head_targets[:, None], axis=-1)[
                :, 0
            ]
        )
        for i in range(len(self.cluster_bounds)):
            nll = nll + self._tail_nll(i, hidden, targets)
        return nll

    def _tail_nll(self, i, hidden, targets):
        """`-log p_i(target)` for rows with a target in cluster `i`, else 0."""
        low, high = self.cluster_bounds[i]
        size = high - low
        projection = self.tail_projections[i]
        kernel = self.tail_kernels[i]
        bias = self.tail_biases[i]
        in_cluster = ops.cast(
            ops.logical_and(targets >= low, targets < high), "float32"
        )
        count = ops.sum(ops.cast(in_cluster, "int32"))

        def tail_nll(hidden, targets, weights):
            logits = self._logits(hidden, [projection, kernel], bias)
            local = ops.clip(targets - low, 0, size - 1)
            # A one-hot product, not `take_along_axis`, whose TensorFlow
            # gradient needs a run-time shape that XLA rejects in a branch.
            target_logits = ops.sum(
                logits * ops.one_hot(local, size, dtype="float32"), axis=-1
            )
            return (ops.logsumexp(logits, axis=-1) - target_logits) * weights

        def none_in_cluster(hidden, targets, in_cluster):
            return ops.zeros_like(in_cluster)

        def all_rows(hidden, targets, in_cluster):
            return tail_nll(hidden, targets, in_cluster)

        def gathered(capacity):
            def branch(hidden, targets, in_cluster):
                # Padding makes `capacity` rows available for any batch size.
                padding = ops.zeros((capacity,), "float32")
                member = ops.concatenate([in_cluster, padding])
                _, rows = ops.top_k(member, k=capacity, sorted=False)
                rows = ops.cast(rows, "int32")
                # Rows are picked and put back with a one-hot matrix rather
                # than a gather and scatter: a gather's gradient is a
                # scatter-add, which TensorFlow's XLA ran 20x slower on a
                # 2-core CPU (6.1 s against 0.33 s a step of 6,400 rows).
                positions = ops.arange(ops.shape(hidden)[0], dtype="int32")
                select = ops.cast(
                    ops.equal(rows[:, None], positions[None, :]), "float32"
                )
                picked = ops.matmul(ops.cast(select, hidden.dtype), hidden)
                picked_targets = ops.take(
                    ops.concatenate([targets, ops.cast(padding, "int32")]),
                    rows,
                )
                row_nll = tail_nll(
                    picked, picked_targets, ops.take(member, rows)
                )
                return ops.matmul(row_nll[None, :], select)[0]

            return branch

        if hidden.shape[0] is None:
            # Batch size known only at run time (TensorFlow graphs of
            # `tf.data` input): static buffers cannot be sized, and
            # TensorFlow's XLA fails on these branches then, so every row
            # is evaluated (still without the full distribution).
            return all_rows(hidden, targets, in_cluster)
        capacities = self._capacities(hidden.shape[0])
        branches = (
            [none_in_cluster] + [gathered(c) for c in capacities] + [all_rows]
        )
        # 0 if no row is in the cluster, else 1 + the index of the smallest
        # buffer that holds them all (the last branch takes every row).
        index = ops.cast(count > 0, "int32") + sum(
            ops.cast(count > capacity, "int32") for capacity in capacities
        )
        return ops.switch(index, branches, hidden, targets, in_cluster)

    @staticmethod
    def _capacities(batch_size):
        """Static buffer sizes: 1/8, 1/4 and 1/2 of the batch size."""
        return sorted(
            {math.ceil(batch_size / 2**j) for j in (3, 2, 1)} - {batch_size}
        )

    def compute_output_shape(self, input_shape):
        return tuple(input_shape[:-1]) + (self.vocabulary_size,)

    def compute_output_spec(self, hidden):
        return keras.KerasTensor(
            self.compute_output_shape(hidden.shape), dtype="float32"
        )

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "vocabulary_size": self.vocabulary_size,
                "cutoffs": list(self.cutoffs),
                "tail_dim_factor": self.tail_dim_factor,
                "use_bias": self.use_bias,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "bias_initializer": keras.initializers.serialize(
                    self.bias_initializer
                ),
                "kernel_regularizer": keras.regularizers.serialize(
                    self.kernel_regularizer
                ),
            }
        )
        return config


def check_cutoffs(cutoffs, vocabulary_size, name="cutoffs"):
    """Validates adaptive-softmax cutoffs; errors name the argument `name`."""
    message = (
        f"`{name}` must be a non-empty, strictly increasing list of integers "
        f"in (0, vocabulary_size={vocabulary_size}). "
        f"Received: {name}={cutoffs!r}"
    )
    if not isinstance(cutoffs, (list, tuple)) or not cutoffs:
        raise ValueError(message)
    try:
        cutoffs = [
            check_int(name, cutoff, minimum=1, maximum=vocabulary_size - 1)
            for cutoff in cutoffs
        ]
    except ValueError:
        # The message about the whole list says more than one entry's.
        raise ValueError(message) from None
    if any(a >= b for a, b in zip(cutoffs, cutoffs[1:])):
        raise ValueError(message)
    return cutoffs


def default_cutoffs(vocabulary_size):
    """`[2000, 10000]` below `vocabulary_size`, or a halving for small ones."""
    cutoffs = [c for c in (2000, 10000) if c < vocabulary_size]
    return cutoffs or [max(1, math.ceil(vocabulary_size / 2))]
