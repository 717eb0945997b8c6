import contextlib

import keras
import keras_hub
from keras import ops


@keras.saving.register_keras_serializable(package="keras_memnet")
class Perplexity(keras_hub.metrics.Perplexity):
    """Streaming, token-weighted perplexity.

    Over a whole evaluation the result is `exp(total NLL / total tokens)`,
    the corpus perplexity that language-model papers report (Sukhbaatar et
    al., 2015, section 5), not a mean of per-batch perplexities. Batches of
    any size may be mixed.

    This is keras-hub's `Perplexity` with one change: a `sample_weight` that
    broadcasts over `y_true` (for example one weight per sequence for
    `(batch, seq_len)` targets) is counted once per token it covers, so the
    token count stays right. Targets may be `(batch,)` for next-token models
    or `(batch, seq_len)` for sequence models.

    Args:
        from_logits: bool. Whether `y_pred` holds logits (`True`) or
            probabilities. Defaults to `False`.
        mask_token_id: int or `None`. Targets equal to this id are not
            counted (use `0`, the padding id of every keras-memnet
            vocabulary, for padded sequences).
        dtype: float dtype of the accumulators. Defaults to `"float32"`.
        name: name of the metric. Defaults to `"perplexity"`.

    Example:

    ```python
    import numpy as np
    from keras_memnet.metrics import Perplexity

    metric = Perplexity(from_logits=True)
    metric.update_state(np.array([1, 2]), np.zeros((2, 4)))
    float(metric.result())  # 4.0: uniform over 4 tokens
    ```
    """

    # Set by `reading`: the per-target NLL of the `y_pred` being scored.
    _given_nll = None

    @classmethod
    @contextlib.contextmanager
    def reading(cls, nll):
        """Within this context, `update_state` of a `from_logits` metric
        without `mask_token_id` takes `nll`, the per-target negative
        log-likelihood of `y_pred` in the order of the flattened `y_true`,
        instead of computing it from `y_pred` (which then goes unused, so a
        compiled step need not compute it: `MemN2NLM`'s adaptive softmax).
        """
        previous, cls._given_nll = cls._given_nll, nll
        try:
            yield
        finally:
            cls._given_nll = previous

    def update_state(self, y_true, y_pred, sample_weight=None):
        if sample_weight is not None:
            sample_weight = ops.cast(sample_weight, self.dtype)
            # Weights align with the leading axes of `y_true`, as in Keras.
            while len(sample_weight.shape) < len(y_true.shape):
                sample_weight = ops.expand_dims(sample_weight, -1)
            sample_weight = ops.broadcast_to(sample_weight, ops.shape(y_true))
        nll = Perplexity._given_nll
        if (
            nll is None
            or not self.from_logits
            or self.mask_token_id is not None
        ):
            super().update_state(y_true, y_pred, sample_weight=sample_weight)
            return
        nll = ops.reshape(ops.cast(nll, self.dtype), (-1,))
        if sample_weight is None:
            weights = ops.ones_like(nll)
        else:
            weights = ops.reshape(sample_weight, (-1,))
        self._aggregate_crossentropy.assign_add(ops.sum(nll * weights))
        self._number_of_samples.assign_add(ops.sum(weights))
