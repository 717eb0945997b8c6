import keras

from keras_memnet.callbacks.gradient_norm_clipping import GradientNormClipping
from keras_memnet.callbacks.nan_guard import NaNGuard
from keras_memnet.callbacks.plateau_annealing import PlateauAnnealing
from keras_memnet.utils.arguments import check_float
from keras_memnet.utils.arguments import check_int
from keras_memnet.utils.arguments import check_one_of

# Targets per row of the sequence form: the default recipe's and the
# paper's; see the class docstring.
DEFAULT_SEQUENCE_LENGTH = 16
PAPER_SEQUENCE_LENGTH = 4


@keras.saving.register_keras_serializable(package="keras_memnet")
class MemN2NLMRecipe:
    """Training recipes for `MemN2NLM`: the default, and the paper's.

    **The default** (`MemN2NLMRecipe()`) is chosen for the best validation
    perplexity in a fixed wall-clock budget on a 2-core CPU
    (`docs/RESULTS.md`, "Choosing the default recipe"): Adam at learning
    rate 0.002 on Keras's mean loss, the global gradient norm clipped at
    1.0, the rate halved whenever the validation loss does not improve, and
    rows of 16 targets in the sequence form (`Corpus.sequences`). It is the
    recipe the shipped presets were trained with (there with longer rows,
    on a GPU). On the earlier study's split, in the same 3 minutes, it
    reaches a test perplexity of 1,228 where the paper's SGD reached 1,672
    (both with 6 hops; 1,057 with the main job's 2 hops, 32 rows a step
    and `UnseenTokenMixture`).

    **The paper's recipe** (`MemN2NLMRecipe.paper()`, or
    `optimizer="sgd"`): Sukhbaatar et al., 2015 (section 5) and the
    authors' code train with plain SGD at learning rate 0.01, clip the
    global gradient norm at 50, divide the rate by 1.5 whenever the
    validation cost does not improve and stop below 1e-5, with batches of
    128. Their cost is the negative log-likelihood **summed** over the
    batch. Keras minimises the **mean** over the batch, whose gradient is
    `1 / batch_size` times smaller. The same updates therefore need:

    ```
    learning_rate = 0.01 * batch_size   (1.28 at batch 128)
    max_norm      = 50 / batch_size     (0.39 at batch 128)
    min_lr        = 1e-5 * batch_size   (the stopping floor, likewise)
    ```

    (Clipping the summed gradient at 50 is clipping the mean gradient at
    50 / batch_size, and a step of 0.01 times the summed gradient is a step
    of 0.01 * batch_size times the mean gradient.) Using 0.01 with a mean
    loss makes steps 128 times too small, which is the likely reason an
    earlier TensorFlow study of this model trained so badly.

    In the **sequence form** (`sequence_length=T`) a batch of `batch_size`
    rows holds `batch_size * T` targets, and Keras averages the loss over
    all of them. The paper's step applied to the summed loss of that batch
    is, on Keras's mean,

    ```
    learning_rate = 0.01 * batch_size * T   (5.12 at 128 rows of 4)
    max_norm      = 50 / (batch_size * T)   (0.098)
    ```

    Per target this is the window recipe's step: without clipping, one
    sequence step equals the sum of the `T` window-batch steps it holds,
    taken from the same weights (the gradient is linear in the targets;
    `tests/test_recipe.py` checks it). And, as in the paper, no step is
    longer than `0.01 * 50 = 0.5`. The paper's gradients are clipped on
    nearly every step, so SGD moves by about that much per step whatever
    the batch holds; `paper()` therefore keeps rows of 4 targets (512 a
    step, 4 times the paper's batch), where that step trains as it should;
    with longer rows it overshoots (`T = 25`: the first epoch diverges;
    `T = 16`: a scale of 0.25 beat 0.5 on validation). `sequence_lr_scale`
    multiplies the SGD rate for such rows.

    For `"adagrad"` its usual learning rate (0.05) is used unless given,
    with the paper's clipping converted as above and its annealing.

    Args:
        batch_size: int >= 1, rows (windows or sequences) per batch.
            Defaults to `128`.
        sequence_length: int >= 1 or `None`. Targets per row in the
            sequence form (`Corpus.sequences`); `None` is the window form
            (`Corpus.windows`). Defaults to `DEFAULT_SEQUENCE_LENGTH` (16).
        sequence_lr_scale: float > 0, multiplies the per-target matched
            SGD rate of the sequence form. Defaults to `1.0`.
        summed_learning_rate: the paper's rate, for the summed loss (SGD).
            Defaults to `0.01`.
        summed_max_norm: the paper's clip, for the summed loss (SGD and
            Adagrad). Defaults to `50.0`.
        anneal_factor: number > 1, divisor of the rate on a plateau, or
            `None`: 2 for Adam, the paper's 1.5 otherwise.
        summed_min_learning_rate: the paper's stopping floor; the floor
            keeps its ratio to the starting rate (1e-3) for every optimizer.
            Defaults to `1e-5`.
        optimizer: `"adam"` (default), `"sgd"` (the paper's) or
            `"adagrad"`.
        learning_rate: optional Keras (mean-loss) learning rate that overrides
            the default one (Adam: 0.002; SGD: the paper's, converted).
        weight_decay: optional decoupled weight decay of the optimizer (not
            in the paper; a regulariser for small corpora).
        monitor: quantity watched by the annealing. Defaults to `"val_loss"`.
        max_norm: optional global gradient-norm clip on the mean loss that
            overrides the default one (Adam: 1.0; SGD and Adagrad: the
            paper's, converted).

    Example:

    ```python
    import keras
    from keras_memnet.models import MemN2NLM
    from keras_memnet.metrics import Perplexity
    from keras_memnet.recipes import MemN2NLMRecipe

    recipe = MemN2NLMRecipe()  # Adam, rows of 16 targets
    recipe.learning_rate, recipe.max_norm  # (0.002, 1.0)
    paper = MemN2NLMRecipe.paper(sequence_length=None)  # window form
    paper.learning_rate, paper.max_norm  # (1.28, 0.390625)
    model = MemN2NLM(vocabulary_size=1000, memory_size=20)
    model.compile(
        optimizer=recipe.optimizer(),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=[Perplexity(from_logits=True)],
    )
    # model.fit(train, validation_data=valid, epochs=100,
    #           callbacks=recipe.callbacks())
    ```
    """

    OPTIMIZERS = ("adam", "sgd", "adagrad")
    DEFAULT_ADAPTIVE_LEARNING_RATES = {"adagrad": 0.05, "adam": 2e-3}
    ADAM_MAX_NORM = 1.0
    ADAM_ANNEAL_FACTOR = 2.0
    PAPER_ANNEAL_FACTOR = 1.5
    DEFAULT_SEQUENCE_LENGTH = DEFAULT_SEQUENCE_LENGTH
    PAPER_SEQUENCE_LENGTH = PAPER_SEQUENCE_LENGTH
    DEFAULT_SEQUENCE_LR_SCALE = 1.0

    def __init__(
        self,
        batch_size=128,
        sequence_length=DEFAULT_SEQUENCE_LENGTH,
        sequence_lr_scale=None,
        summed_learning_rate=0.01,
        summed_max_norm=50.0,
        anneal_factor=None,
        summed_min_learning_rate=1e-5,
        optimizer="adam",
        learning_rate=None,
        weight_decay=None,
        monitor="val_loss",
        max_norm=None,
    ):
        batch_size = check_int("batch_size", batch_size, minimum=1)
        sequence_length = check_int(
            "sequence_length", sequence_length, minimum=1, allow_none=True
        )
        if sequence_lr_scale is None:
            sequence_lr_scale = self.DEFAULT_SEQUENCE_LR_SCALE
        check_one_of("optimizer", optimizer, self.OPTIMIZERS)
        if anneal_factor is None:
            anneal_factor = (
                self.ADAM_ANNEAL_FACTOR
                if optimizer == "adam"
                else self.PAPER_ANNEAL_FACTOR
            )
        for name, value in (
            ("summed_learning_rate", summed_learning_rate),
            ("summed_max_norm", summed_max_norm),
            ("summed_min_learning_rate", summed_min_learning_rate),
            ("sequence_lr_scale", sequence_lr_scale),
        ):
            check_float(name, value, minimum=0, min_inclusive=False)
        check_float(
            "anneal_factor", anneal_factor, minimum=1, min_inclusive=False
        )
        for name, value in (
            ("learning_rate", learning_rate),
            ("max_norm", max_norm),
        ):
            check_float(
                name, value, minimum=0, min_inclusive=False, allow_none=True
            )
        check_float("weight_decay", weight_decay, minimum=0, allow_none=True)
        self.weight_decay = weight_decay
        self.batch_size = batch_size
        self.sequence_length = sequence_length
        self.sequence_lr_scale = float(sequence_lr_scale)
        self.summed_learning_rate = summed_learning_rate
        self.summed_max_norm = summed_max_norm
        self.anneal_factor = anneal_factor
        self.summed_min_learning_rate = summed_min_learning_rate
        self.optimizer_name = optimizer
        self.monitor = monitor
        targets_per_step = batch_size * (sequence_length or 1)
        if max_norm is not None:
            self.max_norm = float(max_norm)
        elif optimizer == "adam":
            self.max_norm = self.ADAM_MAX_NORM
        else:
            self.max_norm = summed_max_norm / targets_per_step
        if learning_rate is not None:
            self.learning_rate = float(learning_rate)
        elif optimizer == "sgd":
            self.learning_rate = summed_learning_rate * targets_per_step
            if sequence_length is not None:
                self.learning_rate *= sequence_lr_scale
        else:
            self.learning_rate = self.DEFAULT_ADAPTIVE_LEARNING_RATES[optimizer]
        # The floor keeps its ratio to the starting rate.
        self.min_learning_rate = self.learning_rate * (
            summed_min_learning_rate / summed_learning_rate
        )

    @classmethod
    def paper(
        cls,
        batch_size=128,
        sequence_length=PAPER_SEQUENCE_LENGTH,
        optimizer="sgd",
        **kwargs,
    ):
        """The paper's recipe: SGD on the summed loss, converted for Keras.

        Sukhbaatar et al., 2015, section 5: SGD at 0.01 on the loss summed
        over the batch, the global gradient norm clipped at 50, the rate
        divided by 1.5 on a validation plateau and a floor of 1e-5; see the
        class docstring for the conversion to Keras's mean loss. Rows of
        `PAPER_SEQUENCE_LENGTH` (4) targets, where that step trains as it
        should; `sequence_length=None` gives the paper's random windows.

        Args:
            batch_size: int >= 1, rows per batch. Defaults to `128`.
            sequence_length: int >= 1 or `None` (the window form).
                Defaults to `4`.
            optimizer: `"sgd"` (default). `"adagrad"` (at 0.05) or
                `"adam"` (at 0.001) keep the paper's clipping and
                annealing, as the earlier study's rows did.
            **kwargs: other arguments of `MemN2NLMRecipe`.

        Example:

        ```python
        from keras_memnet.recipes import MemN2NLMRecipe

        recipe = MemN2NLMRecipe.paper()
        recipe.learning_rate, recipe.max_norm  # (5.12, 0.09765625)
        ```
        """
        targets_per_step = batch_size * (sequence_length or 1)
        kwargs.setdefault("anneal_factor", cls.PAPER_ANNEAL_FACTOR)
        kwargs.setdefault(
            "max_norm",
            kwargs.get("summed_max_norm", 50.0) / targets_per_step,
        )
        if optimizer == "adam":
            kwargs.setdefault("learning_rate", 1e-3)
        return cls(
            batch_size=batch_size,
            sequence_length=sequence_length,
            optimizer=optimizer,
            **kwargs,
        )

    def optimizer(self):
        """A new Keras optimizer with the recipe's learning rate."""
        optimizer_class = {
            "sgd": keras.optimizers.SGD,
            "adagrad": keras.optimizers.Adagrad,
            "adam": keras.optimizers.Adam,
        }[self.optimizer_name]
        return optimizer_class(
            learning_rate=self.learning_rate, weight_decay=self.weight_decay
        )

    def callbacks(self, verbose=0):
        """New clipping, NaN-guard and annealing callbacks for `fit`.

        In this order: `GradientNormClipping` logs the norm that `NaNGuard`
        checks, and `NaNGuard` puts back the last good weights before
        `PlateauAnnealing` looks at the epoch.
        """
        return [
            GradientNormClipping(self.max_norm),
            NaNGuard(),
            PlateauAnnealing(
                factor=self.anneal_factor,
                min_lr=self.min_learning_rate,
                monitor=self.monitor,
                verbose=verbose,
            ),
        ]

    def get_config(self):
        return {
            "batch_size": self.batch_size,
            "sequence_length": self.sequence_length,
            "sequence_lr_scale": self.sequence_lr_scale,
            "summed_learning_rate": self.summed_learning_rate,
            "summed_max_norm": self.summed_max_norm,
            "anneal_factor": self.anneal_factor,
            "summed_min_learning_rate": self.summed_min_learning_rate,
            "optimizer": self.optimizer_name,
            "learning_rate": self.learning_rate,
            "weight_decay": self.weight_decay,
            "monitor": self.monitor,
            "max_norm": self.max_norm,
        }

    @classmethod
    def from_config(cls, config):
        return cls(**config)

    def __repr__(self):
        return (
            f"MemN2NLMRecipe(optimizer={self.optimizer_name!r}, "
            f"batch_size={self.batch_size}, "
            f"sequence_length={self.sequence_length}, "
            f"learning_rate={self.learning_rate:g}, "
            f"max_norm={self.max_norm:g}, min_lr={self.min_learning_rate:g})"
        )
