import keras
from keras import ops

from keras_memnet.utils.arguments import check_bool
from keras_memnet.utils.arguments import check_float
from keras_memnet.utils.arguments import check_int
from keras_memnet.utils.initializers import clone_initializer


@keras.saving.register_keras_serializable(package="keras_memnet")
class Seq2SeqLSTM(keras.layers.Layer):
    """Deep LSTM encoder-decoder (Sutskever, Vinyals & Le, 2014).

    A stack of `num_layers` LSTMs reads the source sequence; the final
    `(h, c)` state of each encoder layer becomes the initial state of the
    matching layer of a second stack of `num_layers` LSTMs, which reads the
    target sequence (teacher forcing) and returns its top-layer outputs.
    Projecting these outputs onto a vocabulary is left to the caller, so the
    layer can sit inside any model.

    With `reverse_source=True` the source is read in reverse order, which
    the paper found makes optimisation much easier because the first target
    words then sit close to the source words they depend on. Only each
    row's valid prefix is reversed, so right padding stays on the right
    and the masked encoder still ends on the first source word.

    Called on `[source_embeddings, target_embeddings]`, shapes
    `(batch, source_length, features)` and `(batch, target_length,
    features)`; returns `(batch, target_length, units)`. Padding must be on
    the right. Masks come from the inputs' Keras masks (for example
    `keras.layers.Embedding(..., mask_zero=True)`) or from
    `mask=[source_mask, target_mask]`; the output carries the target mask.

    For generation the layer also exposes `encode(...)`, which returns the
    per-layer `(h, c)` states, `decode(...)` for a whole target sequence
    and `decode_step(...)` for one target position.

    Reference:
        Sutskever, Vinyals & Le (2014), "Sequence to Sequence Learning with
        Neural Networks", NeurIPS. https://arxiv.org/abs/1409.3215

    Args:
        units: int, at least 1. Cells per LSTM layer (the paper: 1000).
        num_layers: int, at least 1. LSTM layers in the encoder and in the
            decoder each (the paper: 4).
        reverse_source: bool. Read each source row's valid prefix backwards.
        dropout: float in [0, 1). Dropout on the input of every LSTM layer
            and on the decoder output (non-recurrent connections only). The
            paper used none.
        kernel_initializer: initializer for the LSTM input kernels. The
            paper's is `keras.initializers.RandomUniform(-0.08, 0.08)`.
        recurrent_initializer: initializer for the recurrent kernels.
        bias_initializer: initializer for the biases.
        unit_forget_bias: bool. Add 1 to the forget-gate bias at
            initialisation.
        seed: int or None. Seed for the dropout layers.
        **kwargs: standard `keras.layers.Layer` arguments (`name`, `dtype`).

    Example:

    >>> import numpy as np
    >>> layer = Seq2SeqLSTM(units=8, num_layers=2)
    >>> source = np.random.rand(3, 5, 4).astype("float32")
    >>> target = np.random.rand(3, 6, 4).astype("float32")
    >>> tuple(layer([source, target]).shape)
    (3, 6, 8)
    >>> states = layer.encode(source)
    >>> output, states = layer.decode_step(target[:, 0, :], states)
    >>> tuple(output.shape), len(states)
    ((3, 8), 2)
    """

    def __init__(
        self,
        units,
        num_layers=4,
        reverse_source=True,
        dropout=0.0,
        kernel_initializer="glorot_uniform",
        recurrent_initializer="orthogonal",
        bias_initializer="zeros",
        unit_forget_bias=True,
        seed=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.units = check_int("units", units, minimum=1)
        self.num_layers = check_int("num_layers", num_layers, minimum=1)
        self.reverse_source = check_bool("reverse_source", reverse_source)
        self.dropout = check_float(
            "dropout", dropout, minimum=0, maximum=1, max_inclusive=False
        )
        self.kernel_initializer = keras.initializers.get(kernel_initializer)
        self.recurrent_initializer = keras.initializers.get(
            recurrent_initializer
        )
        self.bias_initializer = keras.initializers.get(bias_initializer)
        self.unit_forget_bias = bool(unit_forget_bias)
        self.seed = check_int("seed", seed, allow_none=True)
        self.supports_masking = True

    def _make_lstm(self, name, seed_offset):
        return keras.layers.LSTM(
            self.units,
            return_sequences=True,
            return_state=True,
            kernel_initializer=clone_initializer(
                self.kernel_initializer, seed_offset
            ),
            recurrent_initializer=clone_initializer(
                self.recurrent_initializer, seed_offset
            ),
            bias_initializer=clone_initializer(
                self.bias_initializer, seed_offset
            ),
            unit_forget_bias=self.unit_forget_bias,
            dtype=self.dtype_policy,
            name=name,
        )

    def build(self, input_shape):
        source_shape, target_shape = self._split_shapes(input_shape)
        self.encoder_layers = []
        self.decoder_layers = []
        self.dropout_layers = []
        for index in range(self.num_layers):
            self.encoder_layers.append(
                self._make_lstm(f"encoder_lstm_{index}", 2 * index)
            )
            self.decoder_layers.append(
                self._make_lstm(f"decoder_lstm_{index}", 2 * index + 1)
            )
        if self.dropout > 0:
            # One dropout per LSTM input, plus one on the decoder output.
            for index in range(self.num_layers + 1):
                self.dropout_layers.append(
                    keras.layers.Dropout(
                        self.dropout,
                        seed=None if self.seed is None else self.seed + index,
                        # Without the policy, dropout would compute in (and
                        # return) float32 under mixed precision.
                        dtype=self.dtype_policy,
                        name=f"dropout_{index}",
                    )
                )
        source_features = source_shape[-1]
        target_features = target_shape[-1]
        for index in range(self.num_layers):
            encoder_features = source_features if index == 0 else self.units
            decoder_features = target_features if index == 0 else self.units
            self.encoder_layers[index].build(
                (source_shape[0], source_shape[1], encoder_features)
            )
            self.decoder_layers[index].build(
                (target_shape[0], target_shape[1], decoder_features)
            )
        for dropout_layer in self.dropout_layers:
            dropout_layer.build(None)
        self.built = True

    def _split_shapes(self, input_shape):
        if (
            not isinstance(input_shape, (list, tuple))
            or len(input_shape) != 2
            or not all(isinstance(s, (list, tuple)) for s in input_shape)
        ):
            raise ValueError(
                "Seq2SeqLSTM expects `inputs=[source_embeddings, "
                "target_embeddings]`, two 3-D tensors. "
                f"Received input shape: {input_shape}"
            )
        source_shape, target_shape = (tuple(s) for s in input_shape)
        if len(source_shape) != 3 or len(target_shape) != 3:
            raise ValueError(
                "Seq2SeqLSTM expects 3-D source and target embeddings "
                "(batch, length, features). Received shapes: "
                f"source={source_shape}, target={target_shape}"
            )
        self._check_batch_sizes(source_shape[0], target_shape[0])
        return source_shape, target_shape

    @staticmethod
    def _check_batch_sizes(source_batch, target_batch):
        if (
            source_batch is not None
            and target_batch is not None
            and isinstance(source_batch, int)
            and isinstance(target_batch, int)
            and source_batch != target_batch
        ):
            raise ValueError(
                "Source and target batch sizes must match. Received: "
                f"source batch size={source_batch}, "
                f"target batch size={target_batch}"
            )

    @staticmethod
    def reverse_valid_prefix(sequences, mask=None):
        """Reverses each row's valid (unmasked) prefix along axis 1.

        `mask` is `(batch, length)`, true on a valid prefix followed by
        padding. Padding positions keep their place, so the result is
        still right-padded. Without a mask the whole rows are reversed.
        """
        if mask is None:
            return ops.flip(sequences, axis=1)
        length = ops.shape(sequences)[1]
        row_lengths = ops.sum(ops.cast(mask, "int32"), axis=1, keepdims=True)
        positions = ops.expand_dims(ops.arange(length, dtype="int32"), 0)
        gather_positions = ops.where(
            positions < row_lengths, row_lengths - 1 - positions, positions
        )
        if len(sequences.shape) == 3:
            gather_positions = ops.broadcast_to(
                ops.expand_dims(gather_positions, -1), ops.shape(sequences)
            )
        return ops.take_along_axis(sequences, gather_positions, axis=1)

    def _dropout(self, index, inputs, training):
        if not self.dropout_layers:
            return inputs
        return self.dropout_layers[index](inputs, training=training)

    def encode(
        self,
        source_embeddings,
        source_mask=None,
        training=None,
        return_sequences=False,
    ):
        """Reads the source; returns a list of `(h, c)`, one per layer.

        Args:
            source_embeddings: `(batch, source_length, features)`.
            source_mask: optional `(batch, source_length)` boolean mask,
                true on each row's valid prefix. Defaults to the input's
                Keras mask, if any.
            training: bool, whether dropout is active.
            return_sequences: bool. Also return the top encoder layer's
                output at every source position (for attention), as
                `(sequence, states)`. The sequence is in the source's
                written order even with `reverse_source=True` (position
                `i` is the state after reading source word `i`); its
                padding positions hold no meaningful values.
        """
        if source_mask is None:
            source_mask = getattr(source_embeddings, "_keras_mask", None)
        if self.reverse_source:
            source_embeddings = self.reverse_valid_prefix(
                source_embeddings, source_mask
            )
        states = []
        sequence = source_embeddings
        for index, lstm in enumerate(self.encoder_layers):
            sequence = self._dropout(index, sequence, training)
            sequence, state_h, state_c = lstm(
                sequence, mask=source_mask, training=training
            )
            states.append((state_h, state_c))
        if not return_sequences:
            return states
        if self.reverse_source:
            # Reversing the valid prefix again restores the written order.
            sequence = self.reverse_valid_prefix(sequence, source_mask)
        return sequence, states

    def decode(
        self, target_embeddings, states, target_mask=None, training=None
    ):
        """Runs the decoder over a whole target sequence (teacher forcing).

        Args:
            target_embeddings: `(batch, target_length, features)`.
            states: list of `(h, c)` per layer, as returned by `encode`.
            target_mask: optional `(batch, target_length)` boolean mask.
            training: bool, whether dropout is active.

        Returns:
            `(outputs, states)`: top-layer outputs `(batch, target_length,
            units)` and the final `(h, c)` of each layer.
        """
        self._check_states(states)
        if target_mask is None:
            target_mask = getattr(target_embeddings, "_keras_mask", None)
        sequence = target_embeddings
        new_states = []
        for index, lstm in enumerate(self.decoder_layers):
            sequence = self._dropout(index, sequence, training)
            state_h, state_c = states[index]
            sequence, state_h, state_c = lstm(
                sequence,
                initial_state=[state_h, state_c],
                mask=target_mask,
                training=training,
            )
            new_states.append((state_h, state_c))
        sequence = self._dropout(self.num_layers, sequence, training)
        return sequence, new_states

    def decode_step(self, target_embedding, states):
        """Advances the decoder by one position (for generation).

        Args:
            target_embedding: `(batch, features)`, the embedding of the
                previous target token.
            states: list of `(h, c)` per layer.

        Returns:
            `(output, states)`: top-layer output `(batch, units)` and the
            updated list of `(h, c)`.
        """
        outputs, new_states = self.decode(
            ops.expand_dims(target_embedding, 1), states, training=False
        )
        return outputs[:, 0, :], new_states

    def _check_states(self, states):
        if not isinstance(states, (list, tuple)) or len(states) != (
            self.num_layers
        ):
            raise ValueError(
                f"`states` must be a list of {self.num_layers} (h, c) pairs, "
                "one per layer, as returned by `encode`. Received: "
                f"{type(states).__name__} of length "
                f"{len(states) if hasattr(states, '__len__') else 'n/a'}"
            )

    def call(self, inputs, mask=None, training=None):
        if not isinstance(inputs, (list, tuple)) or len(inputs) != 2:
            raise ValueError(
                "Seq2SeqLSTM expects `inputs=[source_embeddings, "
                f"target_embeddings]`. Received: {type(inputs).__name__}"
            )
        source_embeddings, target_embeddings = inputs
        self._check_batch_sizes(
            source_embeddings.shape[0], target_embeddings.shape[0]
        )
        source_mask, target_mask = mask if mask is not None else (None, None)
        states = self.encode(source_embeddings, source_mask, training)
        outputs, _ = self.decode(
            target_embeddings, states, target_mask, training
        )
        return outputs

    def compute_mask(self, inputs, mask=None):
        if mask is None:
            return None
        return mask[1]

    def compute_output_shape(self, input_shape):
        _, target_shape = self._split_shapes(input_shape)
        return (target_shape[0], target_shape[1], self.units)

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "units": self.units,
                "num_layers": self.num_layers,
                "reverse_source": self.reverse_source,
                "dropout": self.dropout,
                "kernel_initializer": keras.initializers.serialize(
                    self.kernel_initializer
                ),
                "recurrent_initializer": keras.initializers.serialize(
                    self.recurrent_initializer
                ),
                "bias_initializer": keras.initializers.serialize(
                    self.bias_initializer
                ),
                "unit_forget_bias": self.unit_forget_bias,
                "seed": self.seed,
            }
        )
        return config
