import keras
import keras_hub
import numpy as np
from keras import ops

from keras_memnet.generation.samplers import get_sampler
from keras_memnet.generation.windowed_decoder import WindowedDecoder
from keras_memnet.layers.memory_hop import MemoryHop
from keras_memnet.layers.temporal_encoding import TemporalEncoding

WEIGHT_TYING_MODES = ("layerwise", "adjacent")


@keras.saving.register_keras_serializable(package="keras_memnet")
class MemN2NLM(keras.Model):
    """End-To-End Memory Network language model.

    The word-level language model of Sukhbaatar et al., 2015, "End-To-End
    Memory Networks", section 5. The previous `memory_size` words are the
    memory; there is no question, so the controller state starts as a
    constant vector of `query_value` (0.1). Each hop attends over the memory
    and updates the state; the last state is projected to next-word logits.

    With the default `weight_tying="layerwise"` the memory embeddings A and
    C, the temporal encodings T_A and T_C and the state map H are shared by
    all hops (`u_next = H u + o`, an RNN-like stack), and units beyond
    `linear_units` go through a ReLU: the paper's language-model setting.
    `weight_tying="adjacent"` is the paper's other scheme (section 2.2): hop
    `k` reads keys with embedding `k` and values with embedding `k + 1`,
    `u_next = u + o`, and the logits use the last embedding transposed.
    There are no biases, and every weight starts from N(0, `init_stddev`).

    Token id 0 is padding: slots holding it get no attention, so prompts
    shorter than the memory can be left-padded.

    Train it with the paper's recipe (`keras_memnet.recipes.MemN2NLMRecipe`)
    and measure it with `keras_memnet.metrics.Perplexity`.

    Args:
        vocabulary_size: int >= 2. Number of token ids, padding included.
        hops: int >= 1. Number of memory hops. Defaults to `6`.
        memory_size: int >= 1. Number of previous tokens read. Defaults to
            `100`.
        embedding_dim: int >= 1. Width of embeddings and state. Defaults to
            `150`.
        linear_units: int or `None`. Units of the state kept linear; the rest
            go through a ReLU. `None` (default) means half of
            `embedding_dim`, as in the paper. Use `embedding_dim` for an
            all-linear state.
        weight_tying: `"layerwise"` (default) or `"adjacent"`.
        dropout: float in [0, 1). Dropout on the memory embeddings and on the
            final state during training. Defaults to `0.0`.
        query_value: float. Value of every unit of the initial state.
            Defaults to `0.1`.
        init_stddev: float > 0. Standard deviation of the normal
            initialisation of all weights. Defaults to `0.05`.
        vocabulary: optional `keras_memnet.tokenizers.WordVocabulary` (or
            `CharVocabulary`) of size `vocabulary_size`. It is saved with the
            model and lets `generate` take and return text.
        **kwargs: other keyword arguments of `keras.Model` (`name`, `dtype`).

    Input: int token ids `(batch, memory_size)`, oldest first.
    Output: next-token logits `(batch, vocabulary_size)`.

    Example:

    ```python
    import keras
    import numpy as np
    from keras_memnet.models import MemN2NLM

    model = MemN2NLM(vocabulary_size=50, hops=3, memory_size=8,
                     embedding_dim=16)
    model.compile(
        optimizer=keras.optimizers.SGD(1.0),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    contexts = np.random.randint(1, 50, size=(64, 8))
    targets = np.random.randint(1, 50, size=(64,))
    model.fit(contexts, targets, epochs=1, verbose=0)
    model.generate(contexts[:1], max_length=5)  # five new token ids
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
        vocabulary=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        _check_int("vocabulary_size", vocabulary_size, minimum=2)
        _check_int("hops", hops, minimum=1)
        _check_int("memory_size", memory_size, minimum=1)
        _check_int("embedding_dim", embedding_dim, minimum=1)
        if linear_units is None:
            linear_units = embedding_dim // 2
        if (
            not isinstance(linear_units, int)
            or not 0 <= linear_units <= embedding_dim
        ):
            raise ValueError(
                "`linear_units` must be None or an integer between 0 and "
                f"embedding_dim={embedding_dim}. "
                f"Received: linear_units={linear_units!r}"
            )
        if weight_tying not in WEIGHT_TYING_MODES:
            raise ValueError(
                f"`weight_tying` must be one of {WEIGHT_TYING_MODES}. "
                f"Received: weight_tying={weight_tying!r}"
            )
        if not isinstance(dropout, (int, float)) or not 0 <= dropout < 1:
            raise ValueError(
                f"`dropout` must be in [0, 1). Received: dropout={dropout!r}"
            )
        if not isinstance(init_stddev, (int, float)) or not init_stddev > 0:
            raise ValueError(
                "`init_stddev` must be a number > 0. "
                f"Received: init_stddev={init_stddev!r}"
            )
        if vocabulary is not None and vocabulary.size != vocabulary_size:
            raise ValueError(
                f"The vocabulary has {vocabulary.size} tokens but "
                f"vocabulary_size={vocabulary_size}. They must be equal."
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
        self.vocabulary = vocabulary

        def normal():
            # A fresh initializer per weight: one unseeded instance reused
            # would give identical values to equally shaped weights.
            return keras.initializers.RandomNormal(stddev=init_stddev)

        # Layer-wise tying needs one embedding (and temporal encoding) for
        # the keys and one for the values; adjacent tying needs hops + 1.
        num_embeddings = 2 if weight_tying == "layerwise" else hops + 1
        self.memory_embeddings = [
            keras.layers.Embedding(
                vocabulary_size,
                embedding_dim,
                embeddings_initializer=normal(),
                dtype=self.dtype_policy,
                name=f"memory_embedding_{i}",
            )
            for i in range(num_embeddings - 1)
        ]
        last_embedding = (keras.layers.Embedding if weight_tying ==
                          "layerwise" else keras_hub.layers.ReversibleEmbedding)
        self.memory_embeddings.append(
            last_embedding(
                vocabulary_size,
                embedding_dim,
                embeddings_initializer=normal(),
                dtype=self.dtype_policy,
                name=f"memory_embedding_{num_embeddings - 1}",
            )
        )
        self.temporal_encodings = [
            TemporalEncoding(
                memory_size,
                embeddings_initializer=normal(),
                dtype=self.dtype_policy,
                name=f"temporal_encoding_{i}",
            )
            for i in range(num_embeddings)
        ]
        if weight_tying == "layerwise":
            shared_hop = MemoryHop(
                linear_units=linear_units,
                kernel_initializer=normal(),
                dtype=self.dtype_policy,
                name="memory_hop",
            )
            self.memory_hops = [shared_hop]
            self.output_projection = keras.layers.Dense(
                vocabulary_size,
                use_bias=False,
                kernel_initializer=normal(),
                dtype=self.dtype_policy,
                name="output_projection",
            )
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
            self.output_projection = None
        self.dropout_layer = keras.layers.Dropout(
            dropout, dtype=self.dtype_policy, name="dropout"
        )
        self._decoders = _DecoderCache()

    @property
    def embedding_layers(self):
        """The word-embedding layers, `(vocabulary_size, embedding_dim)`."""
        return list(self.memory_embeddings)

    def build(self, input_shape):
        self._check_input_shape(input_shape)
        batch = input_shape[0]
        memory_shape = (batch, self.memory_size, self.embedding_dim)
        state_shape = (batch, self.embedding_dim)
        for embedding in self.memory_embeddings:
            embedding.build((batch, self.memory_size))
        for encoding in self.temporal_encodings:
            encoding.build(memory_shape)
        for hop in self.memory_hops:
            hop.build(state_shape, memory_shape, memory_shape)
        if self.output_projection is not None:
            self.output_projection.build(state_shape)
        self.dropout_layer.build(memory_shape)

    def call(self, token_ids, training=False):
        self._check_input_shape(token_ids.shape)
        token_ids = ops.cast(token_ids, "int32")
        memory_mask = ops.not_equal(token_ids, 0)
        memories = [
            self.dropout_layer(
                encoding(embedding(token_ids)), training=training
            )
            for embedding, encoding in zip(
                self.memory_embeddings, self.temporal_encodings
            )
        ]
        state = ops.full(
            (ops.shape(token_ids)[0], self.embedding_dim),
            self.query_value,
            dtype=self.compute_dtype,
        )
        for k in range(self.hops):
            if self.weight_tying == "layerwise":
                hop, keys, values = self.memory_hops[0], *memories
            else:
                hop, keys, values = self.memory_hops[k], *memories[k : k + 2]
            state = hop(state, keys, values, mask=memory_mask)
        state = self.dropout_layer(state, training=training)
        if self.output_projection is not None:
            logits = self.output_projection(state)
        else:
            logits = self.memory_embeddings[-1](state, reverse=True)
        # Keep the softmax in float32 under mixed precision.
        return ops.cast(logits, "float32")

    def compute_output_shape(self, input_shape):
        return (input_shape[0], self.vocabulary_size)

    def _check_input_shape(self, shape):
        if len(shape) != 2 or shape[-1] not in (None, self.memory_size):
            raise ValueError(
                "MemN2NLM expects token ids of shape (batch, memory_size="
                f"{self.memory_size}). Received: shape={tuple(shape)}. "
                "Pass contexts of exactly memory_size tokens (left-pad short "
                "ones with 0)."
            )

    def _check_token_ids(self, token_ids):
        """Checks ids given as arrays; symbolic or dataset inputs are not."""
        if isinstance(token_ids, (list, tuple)):
            token_ids = np.asarray(token_ids)
        if not isinstance(token_ids, np.ndarray):
            return
        self._check_input_shape(token_ids.shape)
        self._check_id_range(token_ids)

    def _check_id_range(self, token_ids):
        if token_ids.size and (
            token_ids.min() < 0 or token_ids.max() >= self.vocabulary_size
        ):
            raise ValueError(
                "Token ids must be in [0, vocabulary_size="
                f"{self.vocabulary_size}). Received ids from "
                f"{token_ids.min()} to {token_ids.max()}."
            )

    def fit(self, x=None, y=None, *args, **kwargs):
        self._check_token_ids(x)
        return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        self._check_token_ids(x)
        return super().evaluate(x, y, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        self._check_token_ids(x)
        return super().predict(x, *args, **kwargs)

    def generate(
        self,
        prompt,
        max_length=20,
        sampler="greedy",
        temperature=1.0,
        top_k=10,
        top_p=0.9,
        num_beams=5,
        seed=None,
    ):
        """Continues prompts by `max_length` tokens.

        The decoding loop is compiled (see
        `keras_memnet.generation.WindowedDecoder`). Only the last
        `memory_size` tokens of a prompt are read; shorter prompts are
        left-padded.

        Args:
            prompt: a string or list of strings (needs `vocabulary`), or
                token ids: a 1-D sequence or a 2-D `(batch, length)` array,
                left-padded with 0.
            max_length: int >= 1, number of new tokens.
            sampler: `"greedy"`, `"random"`, `"top_k"`, `"top_p"`, `"beam"`
                or a `keras_hub.samplers.Sampler`.
            temperature: float > 0, divides the logits.
            top_k: int, for `"top_k"`.
            top_p: float, for `"top_p"`.
            num_beams: int, for `"beam"`.
            seed: int or `None`. The same seed gives the same sample.

        Returns:
            The new tokens only: text (a string, or a list for a list of
            prompts) when given text, an int array when given ids (1-D for a
            1-D prompt).
        """
        if isinstance(max_length, bool) or not isinstance(max_length, int):
            raise ValueError(
                "`max_length` must be an integer >= 1. "
                f"Received: max_length={max_length!r}"
            )
        if max_length < 1:
            raise ValueError(
                "`max_length` must be an integer >= 1. "
                f"Received: max_length={max_length}"
            )
        as_text = isinstance(prompt, str) or (
            isinstance(prompt, (list, tuple))
            and len(prompt) > 0
            and all(isinstance(p, str) for p in prompt)
        )
        single = isinstance(prompt, str) if as_text else np.ndim(prompt) == 1
        if as_text:
            if self.vocabulary is None:
                raise ValueError(
                    "Text prompts need a model with a `vocabulary`. Pass "
                    "token ids, or build the model with `vocabulary=...`."
                )
            texts = [prompt] if isinstance(prompt, str) else list(prompt)
            rows = [self.vocabulary.encode(text) for text in texts]
        else:
            ids = np.asarray(prompt)
            if ids.ndim not in (1, 2) or not np.issubdtype(
                ids.dtype, np.integer
            ):
                raise ValueError(
                    "`prompt` must be text or integer token ids of shape "
                    f"(length,) or (batch, length). Received: {prompt!r:.80}"
                )
            rows = list(np.atleast_2d(ids))
        for row in rows:
            if len(row) == 0 or not np.any(np.asarray(row) != 0):
                raise ValueError(
                    "`prompt` is empty: every prompt needs at least one "
                    "token that is not padding."
                )
        prompt_ids = _left_pad([row[-self.memory_size :] for row in rows])
        self._check_id_range(prompt_ids)
        decoder = self._decoders.get(
            self,
            sampler,
            (sampler, temperature, top_k, top_p, num_beams),
            lambda: get_sampler(
                sampler, temperature, top_k, top_p, num_beams, seed
            ),
        )
        new_ids = decoder.generate(prompt_ids, max_length, seed=seed)
        if as_text:
            texts = [self.vocabulary.decode(row) for row in new_ids]
            return texts[0] if single else texts
        return new_ids[0] if single else new_ids

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
                "vocabulary": keras.saving.serialize_keras_object(
                    self.vocabulary
                ),
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["vocabulary"] = keras.saving.deserialize_keras_object(
            config.get("vocabulary")
        )
        return cls(**config)


class _DecoderCache:
    """Compiled decoders of a model, one per sampler setting.

    A plain object, so that Keras does not track the decoders (which wrap
    the model) as layers of the model.
    """

    def __init__(self):
        self.decoders = {}

    def get(self, model, sampler, key, make_sampler):
        if not isinstance(sampler, str):
            key = id(sampler)
        if key not in self.decoders:
            self.decoders[key] = WindowedDecoder(
                model, make_sampler(), model.memory_size
            )
        return self.decoders[key]


def _left_pad(rows):
    length = max(len(row) for row in rows)
    padded = np.zeros((len(rows), length), dtype="int32")
    for i, row in enumerate(rows):
        padded[i, length - len(row) :] = row
    return padded


def _check_int(name, value, minimum):
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(
            f"`{name}` must be an integer >= {minimum}. "
            f"Received: {name}={value!r}"
        )
