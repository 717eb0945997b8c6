import math

import keras
from keras import ops

from keras_memnet.metrics.perplexity import Perplexity


@keras.saving.register_keras_serializable(package="keras_memnet")
class BitsPerCharacter(Perplexity):
    """Streaming bits per character (or per token).

    Over a whole evaluation the result is `total NLL / total tokens / ln 2`,
    the cross-entropy in bits that character-level language models report
    (Graves, 2013, "Generating Sequences With Recurrent Neural Networks",
    arXiv:1308.0850; text8 is measured this way). It is `log2` of the
    `Perplexity` of the same predictions and keeps the same accumulators,
    so batches of any size may be mixed and `sample_weight` and
    `mask_token_id` work as in `Perplexity`.

    Args:
        from_logits: bool. Whether `y_pred` holds logits (`True`) or
            probabilities. Defaults to `False`.
        mask_token_id: int or `None`. Targets equal to this id are not
            counted.
        dtype: float dtype of the accumulators. Defaults to `"float32"`.
        name: name of the metric. Defaults to `"bits_per_character"`.

    Example:

    ```python
    import numpy as np
    from keras_memnet.metrics import BitsPerCharacter

    metric = BitsPerCharacter(from_logits=True)
    metric.update_state(np.array([1, 2]), np.zeros((2, 4)))
    float(metric.result())  # 2.0: uniform over 4 symbols
    ```
    """

    def __init__(
        self,
        from_logits=False,
        mask_token_id=None,
        dtype="float32",
        name="bits_per_character",
        **kwargs,
    ):
        super().__init__(
            from_logits=from_logits,
            mask_token_id=mask_token_id,
            dtype=dtype,
            name=name,
            **kwargs,
        )

    def result(self):
        count = ops.convert_to_tensor(self._number_of_samples)
        return ops.where(
            ops.equal(count, 0),
            0.0,
            self._aggregate_crossentropy
            / ops.maximum(count, 1e-12)
            / math.log(2.0),
        )
