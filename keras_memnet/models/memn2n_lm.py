import keras
import keras_hub
import numpy as np
from keras import ops

from keras_memnet.generation.samplers import get_sampler
from keras_memnet.generation.windowed_decoder import WindowedDecoder
from keras_memnet.layers.adaptive_softmax import AdaptiveSoftmax
from keras_memnet.layers.adaptive_softmax import check_cutoffs
from keras_memnet.layers.adaptive_softmax import default_cutoffs
from keras_memnet.layers.memory_hop import MemoryHop
from keras_memnet.layers.temporal_encoding import TemporalEncoding

WEIGHT_TYING_MODES = ("layerwise", "adjacent")
OUTPUT_MODES = ("softmax", "adaptive")


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
        output: `"softmax"` (default): a full `embedding_dim x
            vocabulary_size` projection to logits. `"adaptive"`: an
            `keras_memnet.layers.AdaptiveSoftmax` (Grave et al., 2017) that
            returns exact normalised log-probabilities at a fraction of the
            cost; ids must be sorted by frequency, as `WordVocabulary` does.
            When the compiled loss is `SparseCategoricalCrossentropy(
            from_logits=True)` (reduction `"sum_over_batch_size"` or
            `"sum"`), `fit` computes that same loss with the layer's fast
            `negative_log_likelihood`, which evaluates each tail cluster only
            for the rows whose target is in it. Any other loss is applied to
            the log-probabilities as usual.
        adaptive_cutoffs: list of ints or `None`, the cluster cutoffs of the
            adaptive softmax. `None` means `[2000, 10000]` without the
            entries `>= vocabulary_size` (half the vocabulary if none is
            left).
        **kwargs: other keyword arguments of `keras.Model` (`name`, `dtype`).

    Two forms of the same model, with the same weights:

    - **Window form.** Input: int token ids `(batch, memory_size)`, oldest
      first. Output: next-token logits `(batch, vocabulary_size)`.
    - **Sequence form**, for training and evaluation. Input: ids
      `(batch, memory_size + T - 1)`. Output: `(batch, T, vocabulary_size)`,
      where output `t` predicts the token after input position
      `t + memory_size - 1` from the `memory_size` ids ending there: exactly
      the window form on that window, but every token is embedded once and
      the hops are matrix products over the whole sequence, so every token
      of the batch is a target at a fraction of the cost.
      `Corpus.sequences` makes such batches. With `dropout`, a token's
      embedding is dropped alike in every window that reads it.

    With `output="adaptive"` the outputs are float32 log-probabilities (also
    logits: their softmax is the distribution itself).

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
    # Sequence form: 8 + 20 - 1 ids per row give 20 predictions per row.
    ids = np.random.randint(1, 50, size=(16, 8 + 20))
    model.fit(ids[:, :-1], ids[:, 8:], epochs=1, verbose=0)
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
        output="softmax",
        adaptive_cutoffs=None,
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
        if output not in OUTPUT_MODES:
            raise ValueError(
                f"`output` must be one of {OUTPUT_MODES}. "
                f"Received: output={output!r}"
            )
        if output == "adaptive" and adaptive_cutoffs is None:
            adaptive_cutoffs = default_cutoffs(vocabulary_size)
        if adaptive_cutoffs is not None:
            if output != "adaptive":
                raise ValueError(
                    "`adaptive_cutoffs` applies only to output='adaptive'. "
                    f"Received: output={output!r}"
                )
            check_cutoffs(
                adaptive_cutoffs, vocabulary_size, name="adaptive_cutoffs"
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
        self.output_mode = output
        self.adaptive_cutoffs = (
            None if adaptive_cutoffs is None else list(adaptive_cutoffs)
        )
        self._training_outputs = _TrainingOutputs()

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
        last_embedding = (
            keras_hub.layers.ReversibleEmbedding
            if weight_tying == "adjacent" and output == "softmax"
            else keras.layers.Embedding
        )
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
        if output == "adaptive":
            self.output_projection = AdaptiveSoftmax(
                vocabulary_size,
                self.adaptive_cutoffs,
                kernel_initializer=normal(),
                dtype=self.dtype_policy,
                name="adaptive_softmax",
            )
        elif weight_tying == "layerwise":
            self.output_projection = keras.layers.Dense(
                vocabulary_size,
                use_bias=False,
                kernel_initializer=normal(),
                dtype=self.dtype_policy,
                name="output_projection",
            )
        else:
            self.output_projection = None
        if weight_tying == "adjacent":
            self.memory_hops = [
                MemoryHop(
                    linear_units=linear_units,
                    use_query_projection=False,
                    dtype=self.dtype_policy,
                    name=f"memory_hop_{i}",
                )
                for i in range(hops)
            ]
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
        if token_ids.shape[1] is None:
            raise ValueError(
                "MemN2NLM needs the length of its input known when traced: "
                "it decides between the window form (memory_size ids) and "
                "the sequence form (more ids). Received: shape="
                f"{tuple(token_ids.shape)}."
            )
        state = self._final_state(token_ids, training)
        state = self.dropout_layer(state, training=training)
        if self.output_mode == "adaptive":
            log_probs = self.output_projection(state)
            if training:
                # For the fast loss in `compute_loss`; unused outputs are
                # pruned from compiled train steps.
                self._training_outputs.keep(log_probs, state)
            return log_probs
        if self.output_projection is not None:
            logits = self.output_projection(state)
        else:
            logits = self.memory_embeddings[-1](state, reverse=True)
        # Keep the softmax in float32 under mixed precision.
        return ops.cast(logits, "float32")

    def _final_state(self, token_ids, training):
        """The controller state after the last hop.

        Window form: one window per row, `(batch, dim)`; the slot encodings
        are added to the embedded slots. Sequence form: every window of a
        row, `(batch, T, dim)`; each token is embedded once and the slot
        encodings enter the hops' scores and reads directly (see
        `MemoryHop`'s sequence form), so dropout drops units of a token's
        embedding for every window that reads it, not per window.
        """
        memory_mask = ops.not_equal(token_ids, 0)
        num_windows = token_ids.shape[1] - self.memory_size + 1
        if num_windows == 1:
            memories = [
                encoding(embedding(token_ids))
                for embedding, encoding in zip(
                    self.memory_embeddings, self.temporal_encodings
                )
            ]
            encodings = [None] * len(memories)
            state_shape = (ops.shape(token_ids)[0], self.embedding_dim)
        else:
            memories = [
                embedding(token_ids) for embedding in self.memory_embeddings
            ]
            encodings = [e.embeddings for e in self.temporal_encodings]
            state_shape = (
                ops.shape(token_ids)[0], num_windows, self.embedding_dim
            )
        memories = [
            self.dropout_layer(memory, training=training) for memory in memories
        ]
        state = ops.full(
            state_shape, self.query_value, dtype=self.compute_dtype
        )
        for k in range(self.hops):
            if self.weight_tying == "layerwise":
                hop, keys, values = self.memory_hops[0], 0, 1
            else:
                hop, keys, values = self.memory_hops[k], k, k + 1
            state = hop(
                state,
                memories[keys],
                memories[values],
                mask=memory_mask,
                key_encodings=encodings[keys],
                value_encodings=encodings[values],
            )
        return state

    def compute_output_shape(self, input_shape):
        if input_shape[1] == self.memory_size:
            return (input_shape[0], self.vocabulary_size)
        num_windows = input_shape[1] - self.memory_size + 1
        return (input_shape[0], num_windows, self.vocabulary_size)

    def compute_loss(
        self, x=None, y=None, y_pred=None, sample_weight=None, training=True
    ):
        # The adaptive softmax's own negative log-likelihood equals sparse
        # cross-entropy on its log-probabilities, and skips most of the
        # tail-cluster work; see the `output` argument.
        state = self._training_outputs.take(y_pred)
        reduction = self._fast_loss_reduction()
        if state is None or reduction is None or y is None or not training:
            return super().compute_loss(
                x, y, y_pred, sample_weight, training=training
            )
        # Sequence form: every window of every row is one target.
        state = ops.reshape(state, (-1, self.embedding_dim))
        nll = self.output_projection.negative_log_likelihood(state, y)
        if sample_weight is not None:
            nll = nll * ops.reshape(ops.cast(sample_weight, nll.dtype), (-1,))
        loss = ops.sum(nll)
        if reduction == "sum_over_batch_size":
            loss = loss / ops.cast(ops.shape(nll)[0], loss.dtype)
        for extra_loss in self.losses:
            loss = loss + ops.cast(
                self._aggregate_additional_loss(extra_loss), loss.dtype
            )
        return loss

    def _fast_loss_reduction(self):
        """The compiled loss's reduction if the fast adaptive loss equals it."""
        loss = getattr(self, "loss", None)
        compiled = getattr(self, "_compile_loss", None)
        if (
            self.output_mode != "adaptive"
            or not isinstance(loss, keras.losses.SparseCategoricalCrossentropy)
            or not loss.from_logits
            or loss.ignore_class is not None
            or loss.reduction not in ("sum_over_batch_size", "sum")
            or getattr(compiled, "_user_loss_weights", None) is not None
        ):
            return None
        return loss.reduction

    def _check_input_shape(self, shape):
        if len(shape) != 2 or (
            shape[-1] is not None and shape[-1] < self.memory_size
        ):
            raise ValueError(
                "MemN2NLM expects token ids of shape (batch, memory_size="
                f"{self.memory_size}) for one window per row, or (batch, "
                "memory_size + T - 1) for T windows per row. Received: "
                f"shape={tuple(shape)}. Left-pad short contexts with 0."
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

    def compile(self, *args, jit_compile="auto", **kwargs):
        """`keras.Model.compile`, with XLA on by default on TensorFlow.

        Keras's `jit_compile="auto"` turns XLA off on TensorFlow without a
        GPU. For this model XLA trains faster on CPU too (about 1.4x to 2.4x
        at the paper's sizes, both outputs; benchmarks/train_throughput.py),
        so `"auto"` means `True` here on TensorFlow. JAX always compiles
        with XLA; PyTorch keeps Keras's default (eager). Pass
        `jit_compile=False` to turn it off.
        """
        if (
            jit_compile == "auto"
            and keras.config.backend() == "tensorflow"
            and not kwargs.get("run_eagerly")
        ):
            jit_compile = True
        super().compile(*args, jit_compile=jit_compile, **kwargs)

    def compile_from_config(self, config):
        # Keras skips compiling a loaded model whose `compile` is overridden,
        # so this restores what `keras.Model.compile_from_config` does.
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built and getattr(self, "optimizer", None) is not None:
            self.optimizer.build(self.trainable_variables)

    def fit(self, x=None, y=None, *args, **kwargs):
        self._check_token_ids(x)
        self._use_functions_for_length(x)
        validation_data = kwargs.get("validation_data")
        if isinstance(validation_data, (list, tuple)) and validation_data:
            validation_data = validation_data[0]
        if validation_data is not None:
            self._use_functions_for_length(validation_data, "test_function")
        return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        self._check_token_ids(x)
        self._use_functions_for_length(x, "test_function")
        return super().evaluate(x, y, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        self._check_token_ids(x)
        self._use_functions_for_length(x, "predict_function")
        return super().predict(x, *args, **kwargs)

    def _use_functions_for_length(self, x, *names):
        """Drops compiled functions traced for another input length.

        The form (window or sequence) follows from the static input length.
        TensorFlow retraces a function for a second length with that length
        unknown, so a new function is made for each new length instead.
        """
        length = _input_length(x)
        lengths = self.__dict__.setdefault("_function_lengths", {})
        for name in names or ("train_function", "test_function"):
            if length is not None and lengths.get(name, length) != length:
                setattr(self, name, None)
            if length is not None:
                lengths[name] = length

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
                "output": self.output_mode,
                "adaptive_cutoffs": self.adaptive_cutoffs,
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


class _TrainingOutputs:
    """The final state behind the latest training-mode output.

    `compute_loss` gets only `y_pred`; this hands it the state that produced
    that very tensor (within the same traced train step). A plain object, so
    that Keras does not track the tensors.
    """

    def __init__(self):
        self.outputs = None
        self.state = None

    def keep(self, outputs, state):
        self.outputs, self.state = outputs, state

    def take(self, outputs):
        state = self.state if outputs is self.outputs else None
        self.outputs = self.state = None
        return state


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


def _input_length(x):
    """The static length of token ids given as an array or a dataset."""
    spec = getattr(x, "element_spec", None)
    if spec is not None:
        spec = spec[0] if isinstance(spec, tuple) else spec
        shape = getattr(spec, "shape", None)
        return None if shape is None or len(shape) != 2 else shape[1]
    shape = getattr(x, "shape", None)
    if shape is None or len(shape) != 2:
        return None
    return shape[1]


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
