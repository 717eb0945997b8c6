import math

import keras
import numpy as np
from keras import ops

from keras_memnet.generation.seq2seq_beam_search import SearchModel
from keras_memnet.layers.memory_hop import MemoryHop
from keras_memnet.layers.seq2seq_lstm import Seq2SeqLSTM
from keras_memnet.presets.preset_mixin import PresetMixin
from keras_memnet.tokenizers.sentence_pair_tokenization import END_TOKEN
from keras_memnet.tokenizers.sentence_pair_tokenization import START_TOKEN
from keras_memnet.tokenizers.sentence_pair_tokenization import (
    encode_sentence_pairs,
)
from keras_memnet.tokenizers.sentence_pair_tokenization import tokenize_sentence
from keras_memnet.utils.arguments import check_bool
from keras_memnet.utils.arguments import check_float
from keras_memnet.utils.arguments import check_int
from keras_memnet.utils.arguments import check_one_of
from keras_memnet.utils.initializers import clone_initializer
from keras_memnet.utils.model_inputs import ModelInputsMixin

SAMPLERS = ("greedy", "beam")


@keras.saving.register_keras_serializable(package="keras_memnet")
class Seq2SeqTranslator(PresetMixin, ModelInputsMixin, keras.Model):
    """Word-level translation model of Sutskever, Vinyals & Le (2014), by
    default with attention through `MemoryHop` (Luong et al., 2015).

    Source and target words are embedded (id 0 is padding and masked), a
    `keras_memnet.layers.Seq2SeqLSTM` encodes the (by default reversed)
    source and decodes the target with teacher forcing, each decoder step
    attends over the encoder's states (see **Attention** below;
    `attention_hops=0` leaves it out), and a dense layer gives next-word
    logits over the target vocabulary.

    The model owns both vocabularies. Targets are framed with the target
    vocabulary's start and end tokens: the decoder reads `<start> y1 .. yn`
    and is trained to predict `y1 .. yn <end>`. `encode_pairs` makes these
    arrays for `fit`, and `keras_memnet.datasets.sentence_pair_dataset`
    makes a `tf.data` pipeline of the same batches. `translate` decodes new
    sentences greedily or with beam search (length-normalised scores, each
    beam stopped at its end token), in one compiled loop per batch.

    Inputs to `call`: a dict with `"source_ids"` `(batch, source_length)`
    and `"decoder_input_ids"` `(batch, target_length)`, int ids
    right-padded with 0. Output: logits `(batch, target_length,
    target_vocabulary.size)`.

    **Attention** (`attention_hops >= 1`). The paper's model passes the
    source to the decoder only through the encoder's final states. With
    attention, each decoder step also reads the encoder's top-layer
    states, built from the package's own `keras_memnet.layers.MemoryHop`:
    the states are the memory (keys and values, in the source's written
    order, padding masked), the decoder's top-layer state `h` is the
    query, and `attention_hops` hops (one `MemoryHop` each, `u_next = H u
    + o`) give the attended vector `a`. As in Luong, Pham & Manning (2015)
    the output layer then reads `tanh(W_c [a; h])` instead of `h`. The
    weights of the last hop are returned by `attention_weights` and drive
    `translate(..., replace_unknown=True)`. The attended vector is not fed
    back into the next step's input (Luong's "input feeding"): that would
    make the decoder a step-by-step loop in training instead of one LSTM
    call per layer. `attention_hops=0` is the paper's attention-free
    model, unchanged (same weights, same outputs).

    **The default is one attention hop**, because it measured best: on the
    Tatoeba English-French pairs `fra-eng-76k` (2 layers of 256 cells,
    reversed source, Adam at 2e-3 with the gradient norm clipped at 1, 15
    minutes of training on 2 CPU cores, seed 1), beam-search BLEU was
    22.40 without attention and 33.50 with `attention_hops=1` (35.32 with
    `replace_unknown=True`; 33.78 ± 0.25 over 3 seeds); see
    `docs/RESULTS.md`. Pass `attention_hops=0` for the paper's model.

    The paper trained 4 layers of 1000 cells with every weight drawn from
    uniform(-0.08, 0.08) (`initializer=keras.initializers.RandomUniform(
    -0.08, 0.08)`), plain SGD at learning rate 0.7 halved every half epoch
    after epoch 5 (`keras_memnet.callbacks.StepAnnealing(every=0.5,
    start=5)`) and the gradient's global norm capped at 5
    (`keras_memnet.callbacks.GradientNormClipping(5.0)`).

    References:
        Sutskever, Vinyals & Le (2014), "Sequence to Sequence Learning with
        Neural Networks", NeurIPS. https://arxiv.org/abs/1409.3215
        Luong, Pham & Manning (2015), "Effective Approaches to
        Attention-based Neural Machine Translation", EMNLP.
        https://arxiv.org/abs/1508.04025
        Luong, Sutskever, Le, Vinyals & Zaremba (2015), "Addressing the
        Rare Word Problem in Neural Machine Translation", ACL.
        https://arxiv.org/abs/1410.8206

    Args:
        source_vocabulary: `keras_memnet.tokenizers.WordVocabulary` of
            source words.
        target_vocabulary: `WordVocabulary` of target words; it must hold
            `start_token` and `end_token` (see
            `keras_memnet.tokenizers.build_vocabularies`).
        embedding_dim: int >= 1. Word embedding size.
        units: int >= 1. Cells per LSTM layer.
        num_layers: int >= 1. LSTM layers in the encoder and the decoder.
        reverse_source: bool. Read each source sentence backwards.
        dropout: float in [0, 1). Dropout on non-recurrent connections.
        initializer: None or a Keras initializer for every weight matrix
            (embeddings, LSTM kernels, output layer); None keeps the Keras
            defaults. Biases start at 0 (forget gate at 1).
        start_token, end_token: str. The decoder's start and end tokens.
        seed: int or None. Seed of the dropout layers.
        attention_hops: int >= 0, default 1. 0: no attention (the paper's
            model). n >= 1: every decoder step attends over the encoder's
            states through n `MemoryHop`s, and the output layer reads
            `tanh(W_c [attended; h])`.
        **kwargs: standard `keras.Model` arguments (`name`).

    Example:

    >>> from keras_memnet.tokenizers import build_vocabularies
    >>> pairs = [("1 2 3", "3 2 1"), ("4 5", "5 4")] * 8
    >>> source_vocab, target_vocab = build_vocabularies(pairs)
    >>> model = Seq2SeqTranslator(
    ...     source_vocab, target_vocab, embedding_dim=8, units=16, num_layers=1
    ... )
    >>> model.compile(optimizer="adam")
    >>> x, y = model.encode_pairs(pairs)
    >>> history = model.fit(x, y, epochs=1, verbose=0)
    >>> len(model.translate(["1 2 3"], sampler="beam", num_beams=2))
    1

    The default model attends (one hop); unknown words can be copied from
    the source:

    >>> model.attention_weights(
    ...     x["source_ids"][:2], x["decoder_input_ids"][:2]
    ... ).shape
    (2, 4, 3)
    >>> len(model.translate(["1 2 9"], replace_unknown=True))
    1

    The paper's attention-free model:

    >>> model = Seq2SeqTranslator(
    ...     source_vocab,
    ...     target_vocab,
    ...     embedding_dim=8,
    ...     units=16,
    ...     num_layers=1,
    ...     attention_hops=0,
    ... )
    >>> model.compile(optimizer="adam")
    >>> history = model.fit(x, y, epochs=1, verbose=0)
    >>> len(model.translate(["1 2 3"], sampler="greedy"))
    1
    """

    def __init__(
        self,
        source_vocabulary,
        target_vocabulary,
        embedding_dim=256,
        units=256,
        num_layers=4,
        reverse_source=True,
        dropout=0.0,
        initializer=None,
        start_token=START_TOKEN,
        end_token=END_TOKEN,
        seed=None,
        attention_hops=1,
        **kwargs,
    ):
        super().__init__(**kwargs)
        source_vocabulary = _as_vocabulary(
            source_vocabulary, "source_vocabulary"
        )
        target_vocabulary = _as_vocabulary(
            target_vocabulary, "target_vocabulary"
        )
        for argument, token in (
            ("start_token", start_token),
            ("end_token", end_token),
        ):
            if token not in target_vocabulary:
                raise ValueError(
                    f"`target_vocabulary` has no `{argument}` {token!r}. "
                    "Build the vocabularies with "
                    "`keras_memnet.tokenizers.build_vocabularies`, which "
                    "adds the start and end tokens."
                )
        if start_token == end_token:
            raise ValueError(
                "`start_token` and `end_token` must differ. Both are "
                f"{start_token!r}."
            )
        self.source_vocabulary = source_vocabulary
        self.target_vocabulary = target_vocabulary
        self.embedding_dim = check_int(
            "embedding_dim", embedding_dim, minimum=1
        )
        self.units = units
        self.num_layers = num_layers
        self.reverse_source = reverse_source
        self.dropout = dropout
        self.initializer = (
            None if initializer is None else keras.initializers.get(initializer)
        )
        self.start_token = start_token
        self.end_token = end_token
        self.seed = seed
        self.attention_hops = check_int(
            "attention_hops", attention_hops, minimum=0
        )
        self.start_id = target_vocabulary.token_to_id(start_token)
        self.end_id = target_vocabulary.token_to_id(end_token)

        def weights_initializer(default, offset):
            if self.initializer is None:
                return default
            return clone_initializer(self.initializer, offset)

        # Seq2SeqLSTM validates units, num_layers, reverse_source, dropout.
        self.encoder_decoder = Seq2SeqLSTM(
            units,
            num_layers=num_layers,
            reverse_source=reverse_source,
            dropout=dropout,
            kernel_initializer=weights_initializer("glorot_uniform", 100),
            recurrent_initializer=weights_initializer("orthogonal", 200),
            seed=seed,
            dtype=self.dtype_policy,
            name="encoder_decoder",
        )
        self.source_embedding = keras.layers.Embedding(
            source_vocabulary.size,
            embedding_dim,
            mask_zero=True,
            embeddings_initializer=weights_initializer("uniform", 1),
            dtype=self.dtype_policy,
            name="source_embedding",
        )
        self.target_embedding = keras.layers.Embedding(
            target_vocabulary.size,
            embedding_dim,
            mask_zero=True,
            embeddings_initializer=weights_initializer("uniform", 2),
            dtype=self.dtype_policy,
            name="target_embedding",
        )
        self.output_projection = keras.layers.Dense(
            target_vocabulary.size,
            kernel_initializer=weights_initializer("glorot_uniform", 3),
            dtype=self.dtype_policy,
            name="output_projection",
        )
        # Attention layers exist only with `attention_hops >= 1`, so the
        # attention-free model keeps exactly the paper's weights.
        self.attention_hop_layers = []
        self.attention_output = None
        if self.attention_hops:
            for index in range(self.attention_hops):
                self.attention_hop_layers.append(
                    MemoryHop(
                        kernel_initializer=weights_initializer(
                            None, 10 + index
                        ),
                        dtype=self.dtype_policy,
                        name=f"attention_hop_{index}",
                    )
                )
            self.attention_output = keras.layers.Dense(
                units,
                activation="tanh",
                use_bias=False,
                kernel_initializer=weights_initializer("glorot_uniform", 4),
                dtype=self.dtype_policy,
                name="attention_output",
            )
        # Compiled decoders, keyed by their settings. Set without Keras
        # attribute tracking: they hold this model, and tracking them would
        # make the model contain itself.
        object.__setattr__(self, "_search_models", {})

    def build(self, input_shape):
        source_shape, target_shape = self._input_shapes(input_shape)
        self.source_embedding.build(source_shape)
        self.target_embedding.build(target_shape)
        self.encoder_decoder.build(
            [
                (source_shape[0], source_shape[1], self.embedding_dim),
                (target_shape[0], target_shape[1], self.embedding_dim),
            ]
        )
        self.output_projection.build(
            (target_shape[0], target_shape[1], self.units)
        )
        for hop in self.attention_hop_layers:
            hop.build(
                (None, self.units),
                (None, source_shape[1], self.units),
                (None, source_shape[1], self.units),
            )
        if self.attention_output is not None:
            self.attention_output.build(
                (target_shape[0], target_shape[1], 2 * self.units)
            )
        self.built = True

    @staticmethod
    def _input_shapes(input_shape):
        if isinstance(input_shape, dict):
            return (
                tuple(input_shape["source_ids"]),
                tuple(input_shape["decoder_input_ids"]),
            )
        source_shape, target_shape = input_shape
        return tuple(source_shape), tuple(target_shape)

    @staticmethod
    def _split_inputs(inputs):
        if isinstance(inputs, dict):
            missing = {"source_ids", "decoder_input_ids"} - set(inputs)
            if missing:
                raise ValueError(
                    "Seq2SeqTranslator inputs must be a dict with keys "
                    "'source_ids' and 'decoder_input_ids'. Missing: "
                    f"{sorted(missing)}"
                )
            return inputs["source_ids"], inputs["decoder_input_ids"]
        if isinstance(inputs, (list, tuple)) and len(inputs) == 2:
            return inputs
        raise ValueError(
            "Seq2SeqTranslator inputs must be a dict with keys 'source_ids' "
            "and 'decoder_input_ids' (or a pair of arrays). Received: "
            f"{type(inputs).__name__}"
        )

    def call(self, inputs, training=None):
        source_ids, decoder_input_ids = self._split_inputs(inputs)
        if not self.attention_hops:
            source_mask = ops.not_equal(source_ids, 0)
            target_mask = ops.not_equal(decoder_input_ids, 0)
            outputs = self.encoder_decoder(
                [
                    self.source_embedding(source_ids),
                    self.target_embedding(decoder_input_ids),
                ],
                mask=[source_mask, target_mask],
                training=training,
            )
            return self.output_projection(outputs)
        outputs, _ = self._attentive_decode(
            source_ids, decoder_input_ids, training
        )
        return self.output_projection(outputs)

    def _attentive_decode(self, source_ids, decoder_input_ids, training):
        """Teacher-forced decoding with attention: returns the attentional
        states `(batch, T, units)` and the last hop's weights `(batch, T,
        S)`."""
        self.encoder_decoder._check_batch_sizes(
            source_ids.shape[0], decoder_input_ids.shape[0]
        )
        source_mask = ops.not_equal(source_ids, 0)
        memory, states = self.encoder_decoder.encode(
            self.source_embedding(source_ids),
            source_mask,
            training=training,
            return_sequences=True,
        )
        outputs, _ = self.encoder_decoder.decode(
            self.target_embedding(decoder_input_ids),
            states,
            ops.not_equal(decoder_input_ids, 0),
            training=training,
        )
        return self._attend(outputs, memory, source_mask)

    def _attend(self, queries, memory, source_mask):
        """Reads `memory` `(batch, S, units)` with the decoder states.

        `queries` is `(batch, units)` (one step) or `(batch, T, units)`
        (teacher forcing; each position reads the whole memory, so the
        positions are folded into the batch for `MemoryHop`'s one-window
        form). Returns `tanh(W_c [a; h])` shaped like `queries` and the
        last hop's attention weights, `(batch, S)` or `(batch, T, S)`.
        """
        if len(queries.shape) == 3:
            batch_size, length = ops.shape(queries)[0], ops.shape(queries)[1]
            source_length = ops.shape(memory)[1]
            folded_memory = ops.reshape(
                ops.broadcast_to(
                    ops.expand_dims(memory, 1),
                    (batch_size, length, source_length, self.units),
                ),
                (-1, source_length, self.units),
            )
            folded_mask = ops.reshape(
                ops.broadcast_to(
                    ops.expand_dims(source_mask, 1),
                    (batch_size, length, source_length),
                ),
                (-1, source_length),
            )
            outputs, weights = self._attend(
                ops.reshape(queries, (-1, self.units)),
                folded_memory,
                folded_mask,
            )
            return (
                ops.reshape(outputs, (batch_size, length, self.units)),
                ops.reshape(weights, (batch_size, length, source_length)),
            )
        attended = queries
        for hop in self.attention_hop_layers:
            attended, weights = hop(
                attended,
                memory,
                memory,
                mask=source_mask,
                return_attention_scores=True,
            )
        combined = self.attention_output(
            ops.concatenate([attended, queries], axis=-1)
        )
        return combined, weights

    def attention_weights(self, source_ids, decoder_input_ids):
        """The last hop's attention weights under teacher forcing.

        Args:
            source_ids: `(batch, source_length)` int ids, right-padded
                with 0 (e.g. from `encode_sources`).
            decoder_input_ids: `(batch, target_length)` int ids, `<start>`
                then the target, right-padded with 0 (e.g. from
                `encode_pairs`).

        Returns:
            A float NumPy array `(batch, target_length, source_length)`:
            row `t` weighs the source words (in written order) for the
            word predicted after reading `decoder_input_ids[:, t]`. Each
            row sums to 1 over the valid source positions and is 0 on
            padding. `keras_memnet.visualization.plot_translation_attention`
            draws them for a sentence, source words against output words.
        """
        if not self.attention_hops:
            raise ValueError(
                "`attention_weights()` needs a model with attention; this "
                "one was built with `attention_hops=0`."
            )
        if not self.built:
            raise ValueError(
                "`attention_weights()` was called before the model was "
                "built or trained. Train it with `fit()` first."
            )
        source_ids = ops.convert_to_tensor(np.asarray(source_ids), "int32")
        decoder_input_ids = ops.convert_to_tensor(
            np.asarray(decoder_input_ids), "int32"
        )
        _, weights = self._attentive_decode(
            source_ids, decoder_input_ids, training=False
        )
        return ops.convert_to_numpy(weights)

    def quantize(self, mode=None, config=None, filters=None, **kwargs):
        """`keras.Model.quantize`, e.g. `model.quantize("int8")`.

        Keras quantizes the embeddings and the dense layers (output
        projection, attention output); the LSTMs and the `MemoryHop`s keep
        their float weights. The compiled decoders of `translate` are
        dropped, since they read the weights that quantization replaces.
        A quantized model saves and loads as a preset
        (`save_to_preset`), not as a `.keras` file.
        """
        super().quantize(mode, config=config, filters=filters, **kwargs)
        self._search_models.clear()

    def compile(self, optimizer="adam", loss=None, **kwargs):
        """`keras.Model.compile`, with the loss defaulting to the token
        cross-entropy that ignores padding (id 0)."""
        if loss is None:
            loss = keras.losses.SparseCategoricalCrossentropy(
                from_logits=True, ignore_class=0
            )
        super().compile(optimizer=optimizer, loss=loss, **kwargs)

    def compile_from_config(self, config):
        # `compile` above only fills in a default, so a saved compile config
        # can be replayed through it (Keras skips overridden `compile`s).
        config = keras.saving.deserialize_keras_object(config)
        self.compile(**config)
        if self.built:
            self.optimizer.build(self.trainable_variables)

    # Generation ----------------------------------------------------------

    def encode_source_ids(self, source_ids):
        """Encodes `(batch, source_length)` ids into the decoder's state:
        per-layer `(h, c)`, and with attention `(per-layer (h, c),
        memory, source_ids)`."""
        source_mask = ops.not_equal(source_ids, 0)
        source_embeddings = self.source_embedding(source_ids)
        if not self.attention_hops:
            return self.encoder_decoder.encode(
                source_embeddings, source_mask, training=False
            )
        memory, states = self.encoder_decoder.encode(
            source_embeddings,
            source_mask,
            training=False,
            return_sequences=True,
        )
        # The ids ride along (instead of a boolean mask) so that every
        # state is a number tensor the beam search can repeat and gather.
        return states, memory, ops.cast(source_ids, "int32")

    def decode_step_ids(self, token_ids, states):
        """One decoder step: `(batch,)` previous ids -> `(logits, states)`."""
        if not self.attention_hops:
            outputs, states = self.encoder_decoder.decode_step(
                self.target_embedding(token_ids), states
            )
            return self.output_projection(outputs), states
        lstm_states, memory, source_ids = states
        outputs, lstm_states = self.encoder_decoder.decode_step(
            self.target_embedding(token_ids), lstm_states
        )
        outputs, _ = self._attend(outputs, memory, ops.not_equal(source_ids, 0))
        return (
            self.output_projection(outputs),
            (lstm_states, memory, source_ids),
        )

    def encode_pairs(self, pairs):
        """Encodes `(source, target)` text pairs for `fit`.

        Returns:
            `(x, y)`: `x` a dict of right-padded int32 arrays
            `"source_ids"` and `"decoder_input_ids"` (`<start>` + target),
            `y` the padded labels (target + `<end>`).
        """
        if not len(pairs):
            raise ValueError("`pairs` is empty; give at least one pair.")
        source_ids, decoder_input_ids, label_ids = encode_sentence_pairs(
            pairs,
            self.source_vocabulary,
            self.target_vocabulary,
            self.start_token,
            self.end_token,
        )
        return (
            {
                "source_ids": _right_pad(source_ids),
                "decoder_input_ids": _right_pad(decoder_input_ids),
            },
            _right_pad(label_ids),
        )

    def encode_sources(self, texts, length=None):
        """Tokenises and encodes source texts into a right-padded
        `(len(texts), length)` int32 array."""
        if isinstance(texts, str):
            raise TypeError(
                "`texts` must be a list of strings, not one string. "
                f"Received: {texts!r}"
            )
        sequences = []
        for index, text in enumerate(texts):
            if not isinstance(text, str):
                raise TypeError(
                    f"`texts[{index}]` must be a string. Received: {text!r}"
                )
            tokens = tokenize_sentence(text)
            if not tokens:
                raise ValueError(
                    f"`texts[{index}]` is empty (no words after "
                    f"tokenisation): {text!r}"
                )
            sequences.append(self.source_vocabulary.encode(tokens))
        if not sequences:
            raise ValueError("`texts` is empty; give at least one sentence.")
        longest = max(len(sequence) for sequence in sequences)
        length = check_int("length", length, minimum=1, allow_none=True)
        if length is not None and length < longest:
            raise ValueError(
                f"`length`={length} is shorter than the longest sentence "
                f"({longest} tokens)."
            )
        return _right_pad(sequences, length)

    def translate(
        self,
        texts,
        sampler="beam",
        num_beams=5,
        max_length=None,
        length_penalty=1.0,
        batch_size=64,
        return_tokens=False,
        replace_unknown=False,
        allow_unknown_sources=False,
    ):
        """Translates source sentences.

        Decoding runs as one compiled loop per batch (see
        `keras_memnet.generation.seq2seq_beam_search`): `"greedy"` takes
        the most likely word at each step; `"beam"` keeps `num_beams`
        hypotheses, repeats the encoder state once per beam, stops each
        beam at the end token and ranks by summed log-probability divided
        by `length ** length_penalty`. `num_beams=1` gives the greedy
        result.

        With `replace_unknown=True` (models with attention only), each
        `<unk>` of a translation is replaced by the source word that the
        last attention hop weighs most at that step (Luong et al., 2015,
        "Addressing the Rare Word Problem"): the source token as
        tokenised (lower-cased, as every output word is), not `<unk>`
        even where the source word is itself outside the vocabulary. The
        weights are those of the decoder reading the chosen translation,
        one teacher-forced pass per batch after the search.

        Args:
            texts: list of str. Source sentences.
            sampler: `"beam"` or `"greedy"`.
            num_beams: int >= 1, for `"beam"`.
            max_length: int >= 1 or None. Most target tokens (end token
                included). None: twice the longest source plus 10.
            length_penalty: float >= 0. Exponent of the length
                normalisation.
            batch_size: int >= 1. Sentences per compiled call.
            return_tokens: bool. Return lists of target tokens instead of
                space-joined strings.
            replace_unknown: bool. Replace each output `<unk>` by the most
                attended source word. Needs `attention_hops >= 1`.
            allow_unknown_sources: bool. By default a sentence made only
                of words outside the source vocabulary is an error (the
                model would see nothing but `<unk>`); True translates it
                anyway (for scoring a fixed test set).

        Returns:
            A list with one translation per input: the target tokens up
            to (not including) the end token, joined with spaces.

        Raises:
            ValueError: if `texts` is empty, a text has no words, or
                (unless `allow_unknown_sources`) a text has only unknown
                words; all are checked before any decoding.
        """
        if not self.built:
            raise ValueError(
                "`translate()` was called before the model was built or "
                "trained. Train it with `fit()` first (or load a trained "
                "model with `keras.saving.load_model`)."
            )
        check_one_of("sampler", sampler, SAMPLERS)
        if sampler == "beam":
            num_beams = check_int("num_beams", num_beams, minimum=1)
        batch_size = check_int("batch_size", batch_size, minimum=1)
        length_penalty = check_float(
            "length_penalty", length_penalty, minimum=0
        )
        max_length = check_int(
            "max_length", max_length, minimum=1, allow_none=True
        )
        check_bool("return_tokens", return_tokens)
        replace_unknown = check_bool("replace_unknown", replace_unknown)
        allow_unknown_sources = check_bool(
            "allow_unknown_sources", allow_unknown_sources
        )
        if replace_unknown and not self.attention_hops:
            raise ValueError(
                "`replace_unknown=True` needs attention to find the source "
                "word of each `<unk>`; this model was built with "
                "`attention_hops=0`."
            )
        source_ids = self.encode_sources(texts)
        if not allow_unknown_sources:
            self._check_known_words(texts, source_ids)
        if max_length is None:
            max_length = 2 * source_ids.shape[1] + 10
        search = self._search_model(
            None if sampler == "greedy" else num_beams,
            max_length,
            length_penalty,
        )
        # Fixed batch and length buckets let one compiled loop serve every
        # batch; the filler rows are dropped afterwards.
        batch_size = min(batch_size, len(texts))
        source_length = 8 * math.ceil(source_ids.shape[1] / 8)
        outputs = []
        for begin in range(0, len(texts), batch_size):
            batch = source_ids[begin : begin + batch_size]
            padded = np.zeros((batch_size, source_length), dtype="int32")
            padded[: len(batch), : batch.shape[1]] = batch
            tokens = np.asarray(search.predict_on_batch(padded))
            rows = [self._until_end(row) for row in tokens[: len(batch)]]
            if replace_unknown:
                source_tokens = [
                    tokenize_sentence(text)
                    for text in texts[begin : begin + batch_size]
                ]
                rows = self._replace_unknown_ids(batch, rows, source_tokens)
            outputs.extend(rows)
        results = []
        for row in outputs:
            words = [
                token
                if isinstance(token, str)
                else self.target_vocabulary.id_to_token(token)
                for token in row
            ]
            results.append(words if return_tokens else " ".join(words))
        return results

    def _until_end(self, row):
        """A row of generated ids, up to (not including) the end token."""
        ids = []
        for token_id in np.asarray(row).tolist():
            if token_id in (self.end_id, 0):
                break
            ids.append(token_id)
        return ids

    @staticmethod
    def _unknown_id(vocabulary):
        unk_token = getattr(vocabulary, "unk_token", None)
        if unk_token is None or unk_token not in vocabulary:
            return None
        return vocabulary.token_to_id(unk_token)

    def _check_known_words(self, texts, source_ids):
        unknown_id = self._unknown_id(self.source_vocabulary)
        if unknown_id is None:
            return
        only_unknown = np.all(
            (source_ids == unknown_id) | (source_ids == 0), axis=1
        )
        bad = np.flatnonzero(only_unknown).tolist()
        if bad:
            shown = ", ".join(f"texts[{i}]={texts[i]!r}" for i in bad[:5])
            more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
            raise ValueError(
                f"{len(bad)} source sentence(s) have only words outside the "
                "source vocabulary, so the model would read nothing but "
                f"`<unk>`: {shown}{more}. Remove them, or pass "
                "`allow_unknown_sources=True` to translate them anyway."
            )

    def _replace_unknown_ids(self, source_ids, rows, source_tokens):
        """Replaces target `<unk>` ids in `rows` by the most attended
        source token (a str); other entries stay ids."""
        unknown_id = self._unknown_id(self.target_vocabulary)
        if unknown_id is None or not any(unknown_id in row for row in rows):
            return rows
        length = max(len(row) for row in rows) + 1
        decoder_input_ids = _right_pad(
            [[self.start_id] + row for row in rows], length
        )
        weights = self.attention_weights(source_ids, decoder_input_ids)
        return replace_unknown_tokens(rows, weights, source_tokens, unknown_id)

    def _search_model(self, num_beams, max_length, length_penalty):
        key = (num_beams, max_length, length_penalty)
        if key not in self._search_models:
            self._search_models[key] = SearchModel(
                self,
                start_id=self.start_id,
                end_id=self.end_id,
                max_length=max_length,
                num_beams=num_beams,
                length_penalty=length_penalty,
                forbidden_ids=(0, self.start_id),
            )
        return self._search_models[key]

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "source_vocabulary": keras.saving.serialize_keras_object(
                    self.source_vocabulary
                ),
                "target_vocabulary": keras.saving.serialize_keras_object(
                    self.target_vocabulary
                ),
                "embedding_dim": self.embedding_dim,
                "units": self.units,
                "num_layers": self.num_layers,
                "reverse_source": self.reverse_source,
                "dropout": self.dropout,
                "initializer": None
                if self.initializer is None
                else keras.initializers.serialize(self.initializer),
                "start_token": self.start_token,
                "end_token": self.end_token,
                "seed": self.seed,
                "attention_hops": self.attention_hops,
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("source_vocabulary", "target_vocabulary"):
            config[key] = _as_vocabulary(config[key], key)
        # Configs saved before the attention option existed have no
        # `attention_hops` and describe the attention-free model; the
        # default (1) would not match their weights.
        config.setdefault("attention_hops", 0)
        return cls(**config)


def replace_unknown_tokens(rows, weights, source_tokens, unknown_id):
    """Replaces each `unknown_id` in `rows` by the most attended source
    token (Luong et al., 2015).

    Args:
        rows: list of lists of target ids, one per sentence.
        weights: `(batch, >= len(row), >= len(source))` attention weights;
            `weights[b, t]` weighs the source words for output word `t`.
        source_tokens: list of lists of source tokens (str), in written
            order.
        unknown_id: int. The target vocabulary's `<unk>` id.

    Returns:
        The rows, with each unknown id replaced by a str.

    Example:

    >>> weights = np.array([[[0.1, 0.9], [0.7, 0.3]]])
    >>> replace_unknown_tokens([[1, 5]], weights, [["tom", "runs"]], 1)
    [['runs', 5]]
    """
    weights = np.asarray(weights)
    replaced = []
    for index, (row, tokens) in enumerate(zip(rows, source_tokens)):
        new_row = list(row)
        for position, token_id in enumerate(row):
            if token_id == unknown_id:
                step = weights[index, position, : len(tokens)]
                new_row[position] = tokens[int(np.argmax(step))]
        replaced.append(new_row)
    return replaced


def _right_pad(sequences, length=None):
    """Right-pads int sequences with 0 into a `(len(sequences), length)`
    int32 array; `length` defaults to the longest sequence."""
    return keras.utils.pad_sequences(
        sequences, maxlen=length, dtype="int32", padding="post", value=0
    )


def _as_vocabulary(vocabulary, argument):
    if isinstance(vocabulary, dict):
        vocabulary = keras.saving.deserialize_keras_object(vocabulary)
    for attribute in ("size", "encode", "token_to_id", "id_to_token"):
        if not hasattr(vocabulary, attribute):
            raise TypeError(
                f"`{argument}` must be a vocabulary such as "
                "`keras_memnet.tokenizers.WordVocabulary`. Received: "
                f"{type(vocabulary).__name__}"
            )
    return vocabulary
