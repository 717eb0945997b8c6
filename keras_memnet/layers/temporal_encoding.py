import keras

from keras_memnet.utils.arguments import check_int


@keras.saving.register_keras_serializable(package="keras_memnet")
class TemporalEncoding(keras.layers.Layer):
    """Adds a learned vector to each memory slot.

    This is the temporal encoding `T_A` / `T_C` of End-To-End Memory Networks
    (Sukhbaatar et al., 2015, section 4.1): memory slot `i` holds
    `m_i = A x_i + T_A(i)`, so that the model can tell the order of the
    memories even though attention itself is order-free. Slot 0 is the oldest
    memory.

    The layer accepts and propagates a Keras mask, so it can sit between an
    `Embedding(mask_zero=True)` and a `MemoryHop`.

    Args:
        memory_size: int. Number of memory slots; the second axis of the input
            must have exactly this length.
        embeddings_initializer: initializer of the `(memory_size, dim)` table.
            Defaults to `RandomNormal(stddev=0.05)`, the paper's setting.
        embeddings_regularizer: optional regularizer of the table.
        **kwargs: other keyword arguments of `keras.layers.Layer`.

    Input shape: `(batch, memory_size, dim)`.
    Output shape: the same.

    Example:

    ```python
    import numpy as np
    from keras_memnet.layers import TemporalEncoding

    memories = np.zeros((2, 10, 16), dtype="float32")
    encoded = TemporalEncoding(memory_size=10)(memories)
    encoded.shape  # (2, 10, 16)
    ```
    """

    def __init__(
        self,
        memory_size,
        embeddings_initializer=None,
        embeddings_regularizer=None,
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.memory_size = check_int("memory_size", memory_size, minimum=1)
        self.embeddings_initializer = keras.initializers.get(
            embeddings_initializer
            or keras.initializers.RandomNormal(mean=0.0, stddev=0.05)
        )
        self.embeddings_regularizer = keras.regularizers.get(
            embeddings_regularizer
        )
        self.supports_masking = True

    def build(self, input_shape):
        if len(input_shape) != 3:
            raise ValueError(
                "`TemporalEncoding` expects inputs of shape "
                "(batch, memory_size, dim). "
                f"Received: input_shape={tuple(input_shape)}"
            )
        if input_shape[1] is not None and input_shape[1] != self.memory_size:
            raise ValueError(
                f"The memory axis of the input has length {input_shape[1]}, "
                f"but the layer was created with memory_size="
                f"{self.memory_size}. They must match."
            )
        self.embeddings = self.add_weight(
            name="embeddings",
            shape=(self.memory_size, input_shape[-1]),
            initializer=self.embeddings_initializer,
            regularizer=self.embeddings_regularizer,
        )

    def call(self, inputs):
        return inputs + keras.ops.cast(self.embeddings, inputs.dtype)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        config = super().get_config()
        config.update(
            {
                "memory_size": self.memory_size,
                "embeddings_initializer": keras.initializers.serialize(
                    self.embeddings_initializer
                ),
                "embeddings_regularizer": keras.regularizers.serialize(
                    self.embeddings_regularizer
                ),
            }
        )
        return config
