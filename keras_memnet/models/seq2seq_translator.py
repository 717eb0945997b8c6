import math

import keras
import numpy as np
from keras import ops

from keras_memnet.generation.seq2seq_beam_search import SearchModel
from keras_memnet.layers.seq2seq_lstm import Seq2SeqLSTM
from keras_memnet.tokenizers.sentence_pair_tokenization import END_TOKEN
from keras_memnet.tokenizers.sentence_pair_tokenization import START_TOKEN
from keras_memnet.tokenizers.sentence_pair_tokenization import (
    encode_sentence_pairs,
)
from keras_memnet.tokenizers.sentence_pair_tokenization import (
    tokenize_sentence,
)
from keras_memnet.utils.arguments import check_float
from keras_memnet.utils.arguments import check_int
from keras_memnet.utils.arguments import check_one_of
from keras_memnet.utils.initializers import clone_initializer
from keras_memnet.presets.preset_mixin import PresetMixin

SAMPLERS = ("greedy", "beam")


@keras.saving.register_keras_serializable(package="keras_memnet")
class Seq2SeqTranslator(PresetMixin, keras.Model):
    """Word-level translation model of Sutskever, Vinyals & Le (2014).

    Source and target words are embedded (id 0 is padding and masked), a
    `keras_memnet.layers.Seq2SeqLSTM` encodes the (by default reversed)
    source and decodes the target with teacher forcing, and a dense layer
    gives next-word logits over the target vocabulary.

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

    The paper trained 4 layers of 1000 cells with every weight drawn from
    uniform(-0.08, 0.08) (`initializer=keras.initializers.RandomUniform(
    -0.08, 0.08)`), plain SGD at learning rate 0.7 halved every half epoch
    after epoch 5 (`keras_memnet.callbacks.StepAnnealing(every=0.5,
    start=5)`) and the gradient's global norm capped at 5
    (`keras_memnet.callbacks.GradientNormClipping(5.0)`).

    Reference:
        Sutskever, Vinyals & Le (2014), "Sequence to Sequence Learning with
        Neural Networks", NeurIPS. https://arxiv.org/abs/1409.3215

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
        **kwargs: standard `keras.Model` arguments (`name`).

    Example:

    >>> from keras_memnet.tokenizers import build_vocabularies
    >>> pairs = [("1 2 3", "3 2 1"), ("4 5", "5 4")] * 8
    >>> source_vocab, target_vocab = build_vocabularies(pairs)
    >>> model = Seq2SeqTranslator(source_vocab, target_vocab,
    ...                           embedding_dim=8, units=16, num_layers=1)
    >>> model.compile(optimizer="adam")
    >>> x, y = model.encode_pairs(pairs)
    >>> history = model.fit(x, y, epochs=1, verbose=0)
    >>> len(model.translate(["1 2 3"], sampler="beam", num_beams=2))
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
        """Encodes `(batch, source_length)` ids into per-layer `(h, c)`."""
        return self.encoder_decoder.encode(
            self.source_embedding(source_ids),
            ops.not_equal(source_ids, 0),
            training=False,
        )

    def decode_step_ids(self, token_ids, states):
        """One decoder step: `(batch,)` previous ids -> `(logits, states)`."""
        outputs, states = self.encoder_decoder.decode_step(
            self.target_embedding(token_ids), states
        )
        return self.output_projection(outputs), states

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
    ):
        """Translates source sentences.

        Decoding runs as one compiled loop per batch (see
        `keras_memnet.generation.seq2seq_beam_search`): `"greedy"` takes
        the most likely word at each step; `"beam"` keeps `num_beams`
        hypotheses, repeats the encoder state once per beam, stops each
        beam at the end token and ranks by summed log-probability divided
        by `length ** length_penalty`. `num_beams=1` gives the greedy
        result.

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

        Returns:
            A list with one translation per input: the target tokens up
            to (not including) the end token, joined with spaces.
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
        source_ids = self.encode_sources(texts)
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
            outputs.extend(tokens[: len(batch)])
        results = []
        for row in outputs:
            words = []
            for token_id in row.tolist():
                if token_id in (self.end_id, 0):
                    break
                words.append(self.target_vocabulary.id_to_token(token_id))
            results.append(words if return_tokens else " ".join(words))
        return results

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
            }
        )
        return config

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        for key in ("source_vocabulary", "target_vocabulary"):
            config[key] = _as_vocabulary(config[key], key)
        return cls(**config)


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
