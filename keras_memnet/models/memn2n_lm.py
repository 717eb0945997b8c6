import keras
import numpy as np
from keras import ops

from keras_memnet.generation.samplers import get_sampler
from keras_memnet.generation.windowed_decoder import WindowedDecoder
from keras_memnet.layers.adaptive_softmax import AdaptiveSoftmax
from keras_memnet.layers.adaptive_softmax import check_cutoffs
from keras_memnet.layers.adaptive_softmax import default_cutoffs
from keras_memnet.layers.unseen_token_mixture import UnseenTokenMixture
from keras_memnet.metrics.perplexity import Perplexity
from keras_memnet.models.memn2n_backbone import MemN2NBackbone
from keras_memnet.models.memn2n_lm_preprocessor import MemN2NLMPreprocessor
from keras_memnet.models.memn2n_lm_preprocessor import check_id_range
from keras_memnet.models.memn2n_lm_preprocessor import is_text
from keras_memnet.presets.preset_mixin import PresetMixin
from keras_memnet.utils.arguments import check_bool
from keras_memnet.utils.arguments import check_int
from keras_memnet.utils.arguments import check_one_of
from keras_memnet.utils.model_inputs import ModelInputsMixin
from keras_memnet.utils.model_inputs import input_length
from keras_memnet.utils.model_inputs import one_device_mean

OUTPUT_MODES = ("softmax", "adaptive")
# The decoder holds every new token of every row (and beam) in memory.
MAX_NEW_TOKENS = 10**6


@keras.saving.register_keras_serializable(package="keras_memnet")
class MemN2NLM(PresetMixin, ModelInputsMixin, keras.Model):
    """End-To-End Memory Network language model.

    The word-level language model of Sukhbaatar et al., 2015, "End-To-End
    Memory Networks" (NeurIPS 2015, arXiv:1503.08895), section 5. The
    previous `memory_size` words are the memory; there is no question, so
    the controller state starts as a constant vector of `query_value`
    (0.1). Each hop attends over the memory and updates the state; the
    last state is projected to next-word logits.

    Shaped like a keras-hub causal LM: `backbone` (a
    `keras_memnet.models.MemN2NBackbone`, built from the arguments below)
    maps token ids to the final state; this task adds dropout on that state
    and the output head, `compile` defaults, `generate`, and a
    `preprocessor` (a `keras_memnet.models.MemN2NLMPreprocessor`) that owns
    the `vocabulary` and maps text to ids and back.

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
        unseen_mixture: bool. If `True`, the output goes through a
            `keras_memnet.layers.UnseenTokenMixture`, which gives the ids
            never seen in training a share of the probability measured on
            held-out text, spread evenly among them, and interpolates the
            model with the training unigram
            (`model.adapt_unseen_mixture(training_ids, validation_ids)`
            fits both after training; until then it is the plain
            softmax). For closed vocabularies with words that training
            never shows, such as the earlier text8 study's;
            `train_memn2n_lm` turns it on for such corpora. The outputs are
            then log-probabilities. Defaults to `False`.
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
      `Corpus.sequences` and `preprocessor.sequences` make such rows. With
      `dropout`, a token's embedding is dropped alike in every window that
      reads it.

    With `output="adaptive"` the outputs are float32 log-probabilities (also
    logits: their softmax is the distribution itself).

    Example:

    ```python
    import numpy as np
    from keras_memnet.models import MemN2NLM

    model = MemN2NLM(
        vocabulary_size=50, hops=3, memory_size=8, embedding_dim=16
    )
    # Cross-entropy on the logits, perplexity, and Keras's optimizer.
    model.compile()
    contexts = np.random.randint(1, 50, size=(64, 8))
    targets = np.random.randint(1, 50, size=(64,))
    model.fit(contexts, targets, epochs=1, verbose=0)
    # Sequence form: 8 + 20 - 1 ids per row give 20 predictions per row.
    ids = np.random.randint(1, 50, size=(16, 8 + 20))
    model.fit(ids[:, :-1], ids[:, 8:], epochs=1, verbose=0)
    model.generate(contexts[:1], max_length=5)  # five new token ids
    model.backbone(contexts).shape  # (64, 16): the final states
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
        unseen_mixture=False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        # === Backbone ===
        self.backbone = MemN2NBackbone(
            vocabulary_size=vocabulary_size,
            hops=hops,
            memory_size=memory_size,
            embedding_dim=embedding_dim,
            linear_units=linear_units,
            weight_tying=weight_tying,
            dropout=dropout,
            query_value=query_value,
            init_stddev=init_stddev,
            dtype=self.dtype_policy,
        )
        vocabulary_size = self.backbone.vocabulary_size

        # === Head ===
        output = check_one_of("output", output, OUTPUT_MODES)
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
        self.output_mode = output
        self.adaptive_cutoffs = (
            None if adaptive_cutoffs is None else list(adaptive_cutoffs)
        )
        self.state_dropout = keras.layers.Dropout(
            self.backbone.dropout, dtype=self.dtype_policy, name="state_dropout"
        )
        initializer = keras.initializers.RandomNormal(
            stddev=self.backbone.init_stddev
        )
        if output == "adaptive":
            self.output_projection = AdaptiveSoftmax(
                vocabulary_size,
                self.adaptive_cutoffs,
                kernel_initializer=initializer,
                dtype=self.dtype_policy,
                name="adaptive_softmax",
            )
        elif self.backbone.weight_tying == "layerwise":
            self.output_projection = keras.layers.Dense(
                vocabulary_size,
                use_bias=False,
                kernel_initializer=initializer,
                dtype=self.dtype_policy,
                name="output_projection",
            )
        else:
            # Adjacent tying: the logits use the last memory embedding,
            # transposed (`backbone.token_embedding`).
            self.output_projection = None
        check_bool("unseen_mixture", unseen_mixture)
        self.unseen_mixture = (
            UnseenTokenMixture(
                vocabulary_size, dtype="float32", name="unseen_mixture"
            )
            if unseen_mixture
            else None
        )

        # === Preprocessor ===
        self.preprocessor = MemN2NLMPreprocessor(
            vocabulary=vocabulary, memory_size=self.backbone.memory_size
        )
        if vocabulary is not None and vocabulary.size != vocabulary_size:
            raise ValueError(
                f"The vocabulary has {vocabulary.size} tokens but "
                f"vocabulary_size={vocabulary_size}. They must be equal."
            )
        self._training_outputs = _TrainingOutputs()
        self._decoders = _DecoderCache()

    # The backbone owns the architecture; these read it from there.
    @property
    def vocabulary_size(self):
        return self.backbone.vocabulary_size

    @property
    def hops(self):
        return self.backbone.hops

    @property
    def memory_size(self):
        return self.backbone.memory_size

    @property
    def embedding_dim(self):
        return self.backbone.embedding_dim

    @property
    def linear_units(self):
        return self.backbone.linear_units

    @property
    def weight_tying(self):
        return self.backbone.weight_tying

    @property
    def dropout(self):
        return self.backbone.dropout

    @property
    def query_value(self):
        return self.backbone.query_value

    @property
    def init_stddev(self):
        return self.backbone.init_stddev

    @property
    def vocabulary(self):
        """The preprocessor's vocabulary, or `None`."""
        return self.preprocessor.vocabulary

    @property
    def memory_embeddings(self):
        """The backbone's memory embeddings, A and C (or one per hop + 1)."""
        return self.backbone.memory_embeddings

    @property
    def temporal_encodings(self):
        """The backbone's temporal encodings, one per memory embedding."""
        return self.backbone.temporal_encodings

    @property
    def memory_hops(self):
        """The backbone's hops: one shared hop, or one per hop."""
        return self.backbone.memory_hops

    @property
    def embedding_layers(self):
        """The word-embedding layers, `(vocabulary_size, embedding_dim)`."""
        return list(self.backbone.memory_embeddings)

    def build(self, input_shape):
        self.backbone._check_input_shape(input_shape)
        # The backbone was built on construction; only the head is left.
        state_shape = (input_shape[0], self.embedding_dim)
        head = [self.output_projection, self.state_dropout]
        for layer in head:
            if layer is not None and not layer.built:
                layer.build(state_shape)
        if self.unseen_mixture is not None and not self.unseen_mixture.built:
            self.unseen_mixture.build(
                state_shape[:-1] + (self.vocabulary_size,)
            )

    def call(self, token_ids, training=False):
        state = self.backbone(token_ids, training=training)
        state = self.state_dropout(state, training=training)
        if self.output_mode == "adaptive":
            logits = self.output_projection(state)
            if training:
                # For the fast loss in `compute_loss`; unused outputs are
                # pruned from compiled train steps.
                self._training_outputs.keep(logits, state)
        elif self.output_projection is not None:
            logits = self.output_projection(state)
        else:
            logits = self.backbone.token_embedding(state, reverse=True)
        if self.unseen_mixture is not None:
            mixed = self.unseen_mixture(logits)
            if training:
                # The fast loss then trains on the adaptive softmax's own
                # likelihood, which the mixture renormalises over the seen
                # ids.
                self._training_outputs.rename(logits, mixed)
            return mixed
        # Keep the softmax in float32 under mixed precision.
        return ops.cast(logits, "float32")

    def _final_state(self, token_ids, training=False):
        """The controller state after the last hop (see `MemN2NBackbone`)."""
        return self.backbone(token_ids, training=training)

    def compute_output_shape(self, input_shape):
        state_shape = self.backbone.compute_output_shape(input_shape)
        return tuple(state_shape[:-1]) + (self.vocabulary_size,)

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
        if self.unseen_mixture is None:
            # Exactly `-y_pred` at the targets: the metrics can read it.
            self._training_outputs.keep_nll(y_pred, ops.stop_gradient(nll))
        if sample_weight is not None:
            nll = nll * ops.reshape(ops.cast(sample_weight, nll.dtype), (-1,))
        loss = ops.sum(nll)
        if reduction == "sum_over_batch_size":
            # As `keras.losses.Loss` does for a mean: under a tf.distribute
            # strategy each replica's mean counts for its share, and the
            # replicas' gradients are summed; then as the compiled loss is
            # (`ModelInputsMixin.compute_loss`), made one device's mean.
            loss = loss / ops.cast(
                ops.shape(nll)[0] * _num_replicas_in_sync(), loss.dtype
            )
            loss = one_device_mean(loss, y)
        for extra_loss in self.losses:
            loss = loss + ops.cast(
                self._aggregate_additional_loss(extra_loss), loss.dtype
            )
        return loss

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        nll = self._training_outputs.take_nll(y_pred)
        if nll is None:
            return super().compute_metrics(x, y, y_pred, sample_weight)
        # `Perplexity` reads the fast loss's per-target NLL instead of
        # computing it from `y_pred`, so that the compiled train step never
        # builds the full distribution, which would cost as much as the
        # rest of the adaptive step.
        with Perplexity.reading(nll):
            return super().compute_metrics(x, y, y_pred, sample_weight)

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

    def _input_id_checks(self):
        # `fit`, `evaluate` and `predict` check ids, targets and the input
        # length (`keras_memnet.utils.model_inputs`).
        return self.vocabulary_size, self.backbone._check_input_shape

    def compile(
        self,
        optimizer="rmsprop",
        loss="auto",
        *,
        metrics=None,
        weighted_metrics="auto",
        jit_compile="auto",
        **kwargs,
    ):
        """`keras.Model.compile`, with defaults for a language model.

        Args:
            optimizer: as in `keras.Model.compile`; Keras's default.
            loss: `"auto"` (default) means
                `keras.losses.SparseCategoricalCrossentropy(from_logits=True)`,
                which also selects the adaptive softmax's fast loss. `None`
                means no compiled loss.
            metrics: as in `keras.Model.compile`.
            weighted_metrics: `"auto"` (default) means
                `[keras_memnet.metrics.Perplexity(from_logits=True)]` when
                no `metrics` are given, else none. Weighted, so that the
                zero-weight padding of sequence-form rows is not scored.
            jit_compile: `"auto"` (default) means `True` on TensorFlow.
                Keras's `"auto"` turns XLA off on TensorFlow without a GPU,
                but for this model XLA trains faster on CPU too (about 1.4x
                to 2.4x at the paper's sizes, both outputs;
                benchmarks/train_throughput.py). JAX always compiles with
                XLA; PyTorch keeps Keras's default (eager). Pass `False` to
                turn it off. Under a `tf.distribute` strategy with more
                than one replica `"auto"` means `False`: XLA there fails to
                reach the other replicas' variables (seen on CPU devices);
                pass `True` to try it on GPUs.
            **kwargs: other arguments of `keras.Model.compile`.
        """
        if loss == "auto":
            loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True)
        if weighted_metrics == "auto":
            weighted_metrics = (
                [Perplexity(from_logits=True)] if metrics is None else None
            )
        if (
            jit_compile == "auto"
            and keras.config.backend() == "tensorflow"
            and not kwargs.get("run_eagerly")
        ):
            jit_compile = _num_replicas_in_sync() == 1
        super().compile(
            optimizer=optimizer,
            loss=loss,
            metrics=metrics,
            weighted_metrics=weighted_metrics,
            jit_compile=jit_compile,
            **kwargs,
        )

    def compile_from_config(self, config):
        # Keras skips compiling a loaded model whose `compile` is overridden,
        # so this restores what `keras.Model.compile_from_config` does.
        config = _portable_compile_config(config)
        self.compile(**keras.saving.deserialize_keras_object(config))
        if self.built and getattr(self, "optimizer", None) is not None:
            self.optimizer.build(self.trainable_variables)

    def fit(self, x=None, y=None, *args, **kwargs):
        self._use_functions_for_length(x)
        validation_data = kwargs.get("validation_data")
        if isinstance(validation_data, (list, tuple)) and validation_data:
            validation_data = validation_data[0]
        if validation_data is not None:
            self._use_functions_for_length(validation_data, "test_function")
        return super().fit(x, y, *args, **kwargs)

    def evaluate(self, x=None, y=None, *args, **kwargs):
        self._use_functions_for_length(x, "test_function")
        return super().evaluate(x, y, *args, **kwargs)

    def predict(self, x, *args, **kwargs):
        self._use_functions_for_length(x, "predict_function")
        return super().predict(x, *args, **kwargs)

    def _use_functions_for_length(self, x, *names):
        """Drops compiled functions traced for another input length.

        The form (window or sequence) follows from the static input length.
        TensorFlow retraces a function for a second length with that length
        unknown, so a new function is made for each new length instead.
        """
        length = input_length(x)
        lengths = self.__dict__.setdefault("_function_lengths", {})
        for name in names or ("train_function", "test_function"):
            if length is not None and lengths.get(name, length) != length:
                setattr(self, name, None)
            if length is not None:
                lengths[name] = length

    def evaluate_text(self, text, sequence_length=100, batch_size=16):
        """Perplexity of the model on a text (or 1-D token ids).

        Every token after the first `memory_size` is scored once, with its
        full `memory_size`-token context, in the sequence form (see
        `MemN2NLMPreprocessor.sequences`); the model need not be compiled,
        and its compiled loss and metrics are left alone.

        Args:
            text: a string (needs `vocabulary`; unknown words count as its
                `<unk>`) or 1-D int token ids.
            sequence_length: int >= 1, targets scored per row.
            batch_size: int >= 1, rows per step.

        Returns:
            A dict: `perplexity`, `bits_per_token` (bits per character for
            a character model) and `targets`, the number of tokens scored.
        """
        sequence_length = check_int(
            "sequence_length", sequence_length, minimum=1
        )
        batch_size = check_int("batch_size", batch_size, minimum=1)
        inputs, targets, weights = self.preprocessor.sequences(
            text, sequence_length
        )
        perplexity = Perplexity(from_logits=True)
        for start in range(0, len(inputs), batch_size):
            rows = slice(start, start + batch_size)
            perplexity.update_state(
                targets[rows],
                self.predict_on_batch(inputs[rows]),
                sample_weight=weights[rows],
            )
        value = float(perplexity.result())
        return {
            "perplexity": value,
            "bits_per_token": float(np.log2(value)),
            "targets": int(weights.sum()),
        }

    def memory_attention(self, text_or_ids, sequence_length=100, batch_size=16):
        """What each hop reads, for every prediction along a text.

        The model reads the text as when generating: prediction `i` is made
        after token `i`, from the `memory_size` tokens ending there (fewer
        at the start of the text, the rest padding), so a text of `n`
        tokens gives `n` predictions, the last one the token after the
        text. For each, every hop's attention over the memory slots is
        returned (`MemN2NBackbone.memory_attention`), with the tokens in
        those slots and the model's most likely next token. Computed in the
        sequence form, `batch_size` rows of `sequence_length` predictions
        at a time; `keras_memnet.visualization.plot_memory_attention` draws
        it.

        Args:
            text_or_ids: a string (needs `vocabulary`; unknown words count
                as its `<unk>`) or 1-D int token ids, with at least one
                token that is not padding.
            sequence_length: int >= 1, predictions computed per row.
            batch_size: int >= 1, rows per step.

        Returns:
            A dict, one entry per prediction `i` in `[0, n)`:

            - `"weights"`: float32 `(n, hops, memory_size)`.
              `weights[i, k, j]` is hop `k + 1`'s weight on slot `j`: slot
              `memory_size - 1` holds token `i`, the most recent, and slot
              `memory_size - 1 - d` the token `d` places before it (slot 0
              the oldest, as in the model's input). Slots before the start
              of the text are padding and weigh 0; each hop's weights sum
              to 1.
            - `"memory_ids"`: int32 `(n, memory_size)`, the token id in
              each slot (0 for padding).
            - `"token_ids"`: int32 `(n,)`, the text's ids.
            - `"predicted_ids"`: int32 `(n,)`, the most likely token after
              token `i` (padding left out).
            - `"tokens"`: the text's `n` tokens as strings (`None` without
              a `vocabulary`).

        Example:

        ```python
        from keras_memnet.models import MemN2NLM

        model = MemN2NLM.from_preset("memn2n_text8_12m")
        attention = model.memory_attention("the history of the city")
        attention["weights"].shape  # (5, 6, 100): 5 predictions, 6 hops
        # Hop 1's weights on the 5 words, when predicting the next one.
        attention["weights"][-1, 0, -5:]
        model.vocabulary.id_to_token(attention["predicted_ids"][-1])
        ```
        """
        sequence_length = check_int(
            "sequence_length", sequence_length, minimum=1
        )
        batch_size = check_int("batch_size", batch_size, minimum=1)
        if isinstance(text_or_ids, str):
            token_ids = self.preprocessor.encode(text_or_ids)
        else:
            token_ids = np.asarray(text_or_ids)
            integer = np.issubdtype(token_ids.dtype, np.integer)
            if token_ids.ndim != 1 or not (integer or token_ids.size == 0):
                raise ValueError(
                    "`text_or_ids` must be a string or 1-D integer token "
                    f"ids. Received: text_or_ids={text_or_ids!r:.80}"
                )
        if not np.any(token_ids != 0):
            raise ValueError(
                "`text_or_ids` holds no token (or only padding): give at "
                f"least one word. Received: text_or_ids={text_or_ids!r:.80}"
            )
        check_id_range(token_ids, self.vocabulary_size, "text_or_ids")
        token_ids = token_ids.astype("int32")
        memory, count = self.memory_size, len(token_ids)
        # `memory - 1` zeros first: window `i` (ending at token `i`) then
        # starts at position `i`, and row `r` holds windows `[r T, r T + T)`.
        steps = min(sequence_length, count)
        num_rows = -(-count // steps)
        padded = np.zeros(num_rows * steps + memory - 1, "int32")
        padded[memory - 1 : memory - 1 + count] = token_ids
        rows = padded[
            np.arange(num_rows)[:, None] * steps + np.arange(steps + memory - 1)
        ]
        weights, predicted_ids = [], []
        for start in range(0, num_rows, batch_size):
            batch = rows[start : start + batch_size]
            attention = self.backbone.memory_attention(batch)
            weights.append(
                ops.convert_to_numpy(
                    ops.reshape(attention, (-1, self.hops, memory))
                )
            )
            # Called directly, not through `predict`, as in
            # `adapt_unseen_mixture`; id 0 (padding) is never a prediction.
            logits = self(batch, training=False)
            logits = ops.reshape(logits, (-1, self.vocabulary_size))
            predicted_ids.append(
                ops.convert_to_numpy(ops.argmax(logits[:, 1:], axis=-1) + 1)
            )
        names = None if self.vocabulary is None else self.vocabulary.tokens
        return {
            "weights": np.concatenate(weights)[:count].astype("float32"),
            "memory_ids": padded[np.arange(count)[:, None] + np.arange(memory)],
            "token_ids": token_ids,
            "predicted_ids": np.concatenate(predicted_ids)[:count].astype(
                "int32"
            ),
            "tokens": (
                None
                if names is None
                else [names[i] for i in token_ids.tolist()]
            ),
        }

    def adapt_unseen_mixture(
        self, training_ids, validation_ids, sequence_length=100, batch_size=16
    ):
        """Fits the output's `UnseenTokenMixture` to a corpus.

        Marks the ids seen in `training_ids`, estimates the share of unseen
        words on `validation_ids`, then weighs the training unigram against
        the model by maximum likelihood on the validation text, as scored
        by the model now (call it after training; `train_memn2n_lm` does).

        Args:
            training_ids: 1-D int token ids of the training text.
            validation_ids: 1-D int token ids of held-out text.
            sequence_length: int >= 1, targets scored per row.
            batch_size: int >= 1, rows per step.

        Returns:
            A dict: `unseen_mass` and `unigram_weight`, as now in use.
        """
        if self.unseen_mixture is None:
            raise ValueError(
                "This model has no unseen-token mixture: build it with "
                "`unseen_mixture=True`."
            )
        sequence_length = check_int(
            "sequence_length", sequence_length, minimum=1
        )
        batch_size = check_int("batch_size", batch_size, minimum=1)
        unseen_mass = self.unseen_mixture.adapt(training_ids, validation_ids)
        inputs, targets, weights = self.preprocessor.sequences(
            validation_ids, sequence_length
        )
        target_log_probs = []
        for start in range(0, len(inputs), batch_size):
            rows = slice(start, start + batch_size)
            # Called directly, not through `predict`: a distribution's
            # engine would split (and regroup) the batch between devices.
            log_probs = ops.convert_to_numpy(self(inputs[rows], training=False))
            target_log_probs.append(
                np.take_along_axis(log_probs, targets[rows][..., None], -1)
            )
        scored = weights > 0
        unigram_weight = self.unseen_mixture.fit_unigram_weight(
            np.concatenate(target_log_probs)[..., 0][scored], targets[scored]
        )
        return {"unseen_mass": unseen_mass, "unigram_weight": unigram_weight}

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
        left-padded (`preprocessor.generate_preprocess`).

        Args:
            prompt: a string or list of strings (needs `vocabulary`), or
                token ids: a 1-D sequence or a 2-D `(batch, length)` array,
                left-padded with 0.
            max_length: int in [1, `MAX_NEW_TOKENS`] (a million), number
                of new tokens.
            sampler: `"greedy"`, `"random"`, `"top_k"`, `"top_p"`, `"beam"`
                or a `keras_hub.samplers.Sampler`.
            temperature: float > 0, divides the logits.
            top_k: int in [1, vocabulary_size], for `"top_k"`.
            top_p: float, for `"top_p"`.
            num_beams: int in [1, vocabulary_size], for `"beam"`.
            seed: int or `None`. The same seed gives the same sample.

        Returns:
            The new tokens only: text (a string, or a list for a list of
            prompts) when given text, an int array when given ids (1-D for a
            1-D prompt).
        """
        max_length = check_int(
            "max_length", max_length, minimum=1, maximum=MAX_NEW_TOKENS
        )
        # Checked here: TensorFlow's top-k would fail deep in the decoder.
        for name, value, used in (
            ("top_k", top_k, sampler == "top_k"),
            ("num_beams", num_beams, sampler == "beam"),
        ):
            if used:
                check_int(name, value, minimum=1, maximum=self.vocabulary_size)
        as_text = is_text(prompt)
        prompt_ids = self.preprocessor.generate_preprocess(prompt)
        check_id_range(prompt_ids, self.vocabulary_size)
        decoder = self._decoders.get(
            self,
            sampler,
            (sampler, temperature, top_k, top_p, num_beams),
            lambda: get_sampler(
                sampler, temperature, top_k, top_p, num_beams, seed
            ),
        )
        new_ids = decoder.generate(prompt_ids, max_length, seed=seed)
        single = isinstance(prompt, str) or (
            not as_text and np.ndim(prompt) == 1
        )
        if single:
            new_ids = new_ids[0]
        if as_text:
            return self.preprocessor.generate_postprocess(new_ids)
        return new_ids

    @staticmethod
    def get_layout_map(
        device_mesh,
        model_parallel_dim_name="model",
        data_parallel_dim_name="batch",
    ):
        """A `keras.distribution.LayoutMap` that splits the vocabulary-sized
        weights by vocabulary id across the model axis of `device_mesh`.

        The memory embeddings (`MemN2NBackbone.get_layout_map`) and the
        softmax output projection are split, and with the projection the
        logits and their gradient: each device holds `1 / n` of all three
        and of their optimizer state. The adaptive softmax's weights are
        copied (its clusters rarely divide evenly). The vocabulary size
        must divide by the size of the model axis.

        Args:
            device_mesh: a `keras.distribution.DeviceMesh`.
            model_parallel_dim_name: the mesh axis the weights are split
                along.
            data_parallel_dim_name: the mesh axis the batch is split along
                (`ModelParallel`'s `batch_dim_name`); only checked to be on
                the mesh, since no weight is split along it.

        Returns:
            A `keras.distribution.LayoutMap` for
            `keras.distribution.ModelParallel` (JAX).

        Example:

        ```python
        import keras
        from keras_memnet.models import MemN2NLM

        devices = keras.distribution.list_devices()
        mesh = keras.distribution.DeviceMesh(
            shape=(1, len(devices)), axis_names=("batch", "model")
        )
        engine = keras.distribution.ModelParallel(
            layout_map=MemN2NLM.get_layout_map(mesh), batch_dim_name="batch"
        )
        with engine.scope():
            model = MemN2NLM(
                vocabulary_size=64, hops=2, memory_size=8, embedding_dim=16
            )
        ```
        """
        layout_map = MemN2NBackbone.get_layout_map(
            device_mesh, model_parallel_dim_name, data_parallel_dim_name
        )
        layout_map[r".*/output_projection/kernel"] = (
            None,
            model_parallel_dim_name,
        )
        return layout_map

    def get_config(self):
        config = super().get_config()
        # The backbone's arguments, without its own name, trainable, dtype.
        backbone_config = self.backbone.get_config()
        for key in keras.Model.get_config(self.backbone):
            del backbone_config[key]
        config.update(backbone_config)
        config.update(
            {
                "vocabulary": keras.saving.serialize_keras_object(
                    self.vocabulary
                ),
                "output": self.output_mode,
                "adaptive_cutoffs": self.adaptive_cutoffs,
                "unseen_mixture": self.unseen_mixture is not None,
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
        self.nll_outputs = None
        self.nll = None

    def keep_nll(self, outputs, nll):
        """The per-target NLL of `outputs`, computed by the fast loss."""
        self.nll_outputs, self.nll = outputs, nll

    def take_nll(self, outputs):
        nll = self.nll if outputs is self.nll_outputs else None
        self.nll_outputs = self.nll = None
        return nll

    def keep(self, outputs, state):
        self.outputs, self.state = outputs, state

    def rename(self, outputs, new_outputs):
        """The state behind `outputs` now stands behind `new_outputs`."""
        if outputs is self.outputs:
            self.outputs = new_outputs

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


def _num_replicas_in_sync():
    """The replicas of the current tf.distribute strategy (TensorFlow
    backend); 1 outside one and on other backends, whose engines see
    global arrays."""
    if keras.config.backend() != "tensorflow":
        return 1
    import tensorflow as tf

    return tf.distribute.get_strategy().num_replicas_in_sync


def _portable_compile_config(config):
    """A compile config that loads the same way on every backend.

    A model saved on PyTorch records the PyTorch optimizer class (its
    module is `keras.src.backend.torch...`), which fails to train on
    TensorFlow or JAX: the backend-free `keras.optimizers` class of the same
    name is used instead. And `jit_compile` is the saving backend's
    resolved choice (XLA on TensorFlow, which turns on PyTorch's slow
    compiler): `"auto"` lets the loading backend choose.
    """
    config = dict(config)
    optimizer = config.get("optimizer")
    if isinstance(optimizer, dict) and str(
        optimizer.get("module", "")
    ).startswith("keras.src.backend."):
        config["optimizer"] = dict(optimizer, module="keras.optimizers")
    if "jit_compile" in config:
        config["jit_compile"] = "auto"
    return config
