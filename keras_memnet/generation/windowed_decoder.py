"""A compiled decoding loop for models that read a fixed window of tokens."""

import keras
import numpy as np
from keras import ops


class WindowedDecoder(keras.Model):
    """Runs a keras-hub sampler over a next-token model with a fixed window.

    A memory-network language model predicts the next token from the last
    `memory_size` tokens. Decoding writes tokens into a buffer laid out as

    ```
    [0] * memory_size + prompt (left-padded with 0) + [0] * max_length
    ```

    and at step `t` feeds the window `buffer[:, t - memory_size : t]` to the
    model, which never yields the padding id 0. The loop is a keras-hub
    sampler (an `ops.while_loop`) inside this model's `call`, so
    `predict_on_batch` compiles the whole decoding loop with `tf.function`
    or `jax.jit`; no Python loop of `predict` calls. Id 0 is padding, which
    the wrapped model masks.

    Args:
        language_model: a built `keras.Model` from `(batch, memory_size)` ids
            to next-token logits `(batch, vocabulary_size)`.
        sampler: a `keras_hub.samplers.Sampler`.
        memory_size: int, the window length the model reads.
    """

    def __init__(self, language_model, sampler, memory_size, **kwargs):
        super().__init__(**kwargs)
        self.language_model = language_model
        self.sampler = sampler
        self.memory_size = memory_size
        # Tracked here so that, on JAX, the seed state enters the compiled
        # function as an input instead of a constant frozen at trace time.
        self.seed_generator = getattr(sampler, "seed_generator", None)
        self.built = True

    def call(self, inputs):
        token_ids = inputs["token_ids"]
        start = inputs["start"][0]
        memory_size = self.memory_size

        def next_token_logits(prompt, cache, index):
            window = ops.slice(
                prompt,
                (0, index - memory_size),
                (ops.shape(prompt)[0], memory_size),
            )
            logits = ops.cast(
                self.language_model(window, training=False), "float32"
            )
            # Padding is not a token: never generate id 0.
            is_padding = ops.arange(ops.shape(logits)[-1]) == 0
            logits = ops.where(is_padding, -1e9, logits)
            return logits, None, cache

        return self.sampler(
            next=next_token_logits,
            prompt=token_ids,
            index=start,
            model=self.language_model,
        )

    def generate(self, prompt_ids, max_length, seed=None):
        """Continues left-padded prompts by `max_length` tokens.

        Args:
            prompt_ids: int array `(batch, prompt_length)`, left-padded with 0.
            max_length: int >= 1, number of new tokens.
            seed: int or `None`. Resets a random sampler's seed so that the
                same seed gives the same tokens.

        Returns:
            An int32 NumPy array `(batch, max_length)` of new tokens.
        """
        prompt_ids = np.asarray(prompt_ids, dtype="int32")
        batch_size, prompt_length = prompt_ids.shape
        start = self.memory_size + prompt_length
        buffer = np.zeros((batch_size, start + max_length), dtype="int32")
        buffer[:, self.memory_size : start] = prompt_ids
        if self.seed_generator is not None:
            if seed is None:
                seed = np.random.randint(0, 2**31 - 1)
            self.seed_generator.state.assign(
                np.array([seed, 0], dtype=self.seed_generator.state.dtype)
            )
        outputs = self.predict_on_batch(
            {
                "token_ids": buffer,
                "start": np.full((batch_size,), start, dtype="int32"),
            }
        )
        return np.asarray(outputs)[:, start:]
