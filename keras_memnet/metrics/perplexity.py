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

    def update_state(self, y_true, y_pred, sample_weight=None):
        if sample_weight is not None:
            sample_weight = ops.cast(sample_weight, self.dtype)
            # Weights align with the leading axes of `y_true`, as in Keras.
            while len(sample_weight.shape) < len(y_true.shape):
                sample_weight = ops.expand_dims(sample_weight, -1)
            sample_weight = ops.broadcast_to(sample_weight, ops.shape(y_true))
        super().update_state(y_true, y_pred, sample_weight=sample_weight)
