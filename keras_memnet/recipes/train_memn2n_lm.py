import math
import os
import time

import keras
import numpy as np

from keras_memnet.callbacks.nan_guard import NaNGuard
from keras_memnet.callbacks.nan_guard import NonFiniteTrainingError
from keras_memnet.callbacks.training_checkpoint import TrainingCheckpoint
from keras_memnet.callbacks.training_checkpoint import read_resume_epoch
from keras_memnet.distribution import distribution_scope
from keras_memnet.distribution import model_axis_size
from keras_memnet.distribution import pad_batches
from keras_memnet.distribution import process_count
from keras_memnet.metrics.perplexity import Perplexity
from keras_memnet.models.memn2n_lm import MemN2NLM
from keras_memnet.recipes.memn2n_lm_recipe import MemN2NLMRecipe
from keras_memnet.utils.arguments import check_bool

SPLITS = ("train", "valid", "test")


def train_memn2n_lm(
    corpus,
    hops=6,
    memory_size=100,
    embedding_dim=150,
    dropout=0.0,
    recipe=None,
    epochs=10,
    patience=2,
    seed=1,
    callbacks=(),
    train_windows=None,
    evaluate=SPLITS,
    verbose=1,
    checkpoint_dir=None,
    resume=False,
    distribute=None,
    unseen_mixture="auto",
    **model_kwargs,
):
    """Trains a `MemN2NLM` on a corpus with the paper's recipe.

    The steps of Sukhbaatar et al., 2015, section 5, in Keras: the recipe's
    optimizer, gradient clipping and plateau annealing (`MemN2NLMRecipe`),
    and early stopping on the validation split with the best weights
    restored, so that the test split is never used to choose anything. Then
    the perplexity of every split.

    With a recipe in the sequence form (`recipe.sequence_length`, the
    default) every training token is a target once per epoch, in chunks of
    `sequence_length` targets in a fresh random order
    (`Corpus.sequences`), and evaluation reads the splits the same way;
    the perplexities equal those of the window form. With
    `sequence_length=None` the recipe trains on random windows
    (`Corpus.windows`), as the paper describes it.

    Args:
        corpus: a `keras_memnet.datasets.Corpus` with a non-empty validation
            split.
        hops, memory_size, embedding_dim, dropout: as in `MemN2NLM`.
        recipe: a `MemN2NLMRecipe`; defaults to the paper's at batch 128.
        epochs: int, the most epochs to train.
        patience: int, epochs without validation improvement before early
            stopping.
        seed: int, seeds Keras, the initialisation and the windows.
        callbacks: more Keras callbacks.
        train_windows: int or `None`, random training windows per epoch in
            the window form; `None` draws as many as the training split has
            positions. Only for `recipe.sequence_length=None`.
        evaluate: the splits whose perplexity is measured at the end.
        verbose: Keras verbosity for `fit`.
        checkpoint_dir: str or `None`, a directory for the checkpoint of
            every epoch. It must hold no checkpoint unless `resume`.
        resume: bool, continue from the checkpoint in `checkpoint_dir` if
            there is one (else start afresh). Needs `checkpoint_dir`.
        distribute: `None` (default, one device), `"data-parallel"`:
            train on every device with the backend's engine (JAX:
            `keras.distribution.DataParallel`, across processes too;
            TensorFlow: `tf.distribute.MirroredStrategy`; PyTorch: an
            error), `"model-parallel"` (JAX: `keras.distribution.
            ModelParallel` with `MemN2NLM.get_layout_map`, which splits the
            vocabulary-sized weights between the devices; the vocabulary
            size must divide by their number), or such an engine itself;
            see `keras_memnet.distribution`.
            `recipe.batch_size` is then the global batch and must divide
            by the number of replicas; each step equals the step of one
            device at that batch, clipping included. The partial last
            training batch of an epoch is dropped; evaluation scores every
            target (on JAX its last batch is padded with weight-0 rows,
            see `keras_memnet.distribution.pad_batches`).
        unseen_mixture: `"auto"` (default), `True` or `False`. With
            `True` the model gives the vocabulary ids that never occur in
            the training split a share of the probability estimated on the
            validation split, and after training is interpolated with the
            training unigram, weighted on the validation split
            (`keras_memnet.layers.UnseenTokenMixture`,
            `MemN2NLM.adapt_unseen_mixture`); `"auto"` does so when some
            word ids (not `<pad>` or `<unk>`) never occur in training (a
            closed vocabulary built from more than the training text, as
            the `study512k` split's is), and not otherwise.
        **model_kwargs: other `MemN2NLM` arguments.

    Raises:
        NonFiniteTrainingError: training met a NaN or an infinity.

    Returns:
        A dict with `model` (best weights), `history` (the `fit` history
        dict), `perplexity` (`{"train": ..., "valid": ..., "test": ...}` for
        the splits in `evaluate`) and
        `seconds` (training and evaluation time).

    Example:

    ```python
    from keras_memnet.datasets import text8_sample
    from keras_memnet.recipes import train_memn2n_lm

    corpus = text8_sample(split="study512k")
    run = train_memn2n_lm(
        corpus, hops=1, memory_size=30, embedding_dim=16, epochs=1, verbose=0
    )
    run["perplexity"]["test"]
    ```
    """
    if corpus.valid.size == 0:
        raise ValueError(
            "The corpus has no validation split; annealing and early stopping "
            "need one. Carve one from training (e.g. `valid_fraction=0.05`)."
        )
    recipe = recipe or MemN2NLMRecipe()
    initial_epoch = check_checkpoint_dir(checkpoint_dir, resume)
    if train_windows is not None and recipe.sequence_length is not None:
        raise ValueError(
            "`train_windows` applies only to the window form; this recipe "
            f"trains sequences of {recipe.sequence_length} targets. Use "
            "MemN2NLMRecipe(sequence_length=None) for random windows."
        )
    with distribution_scope(distribute, model=MemN2NLM) as replicas:
        if recipe.batch_size % replicas:
            raise ValueError(
                f"The batch of {recipe.batch_size} rows does not split "
                f"evenly across {replicas} replicas. Use a multiple of "
                f"{replicas}: the batch size is the global batch."
            )
        shards = model_axis_size()
        if corpus.vocabulary.size % shards:
            raise ValueError(
                f"The vocabulary of {corpus.vocabulary.size} ids does not "
                f"split evenly across the {shards} devices that share the "
                "model. Make its size a multiple of theirs (in Python, "
                "`WordVocabulary.from_text(..., max_size=...)`), use a "
                "number of devices that divides it, or train data-parallel."
            )
        if unseen_mixture == "auto":
            unseen_mixture = bool(unseen_training_ids(corpus).size)
        check_bool("unseen_mixture", unseen_mixture)
        keras.utils.set_random_seed(seed)
        started = time.time()
        model = MemN2NLM(
            corpus.vocabulary.size,
            hops=hops,
            memory_size=memory_size,
            embedding_dim=embedding_dim,
            dropout=dropout,
            vocabulary=corpus.vocabulary,
            unseen_mixture=unseen_mixture,
            **model_kwargs,
        )
        # Built before `fit`, so that a checkpoint can be loaded into it.
        model.build((None, memory_size))
        if model.unseen_mixture is not None:
            model.unseen_mixture.adapt(corpus.train, corpus.valid)
        model.compile(
            optimizer=recipe.optimizer(),
            loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
            weighted_metrics=[Perplexity(from_logits=True)],
        )

        # Batches are split between devices or processes: they must be full.
        split = replicas > 1 or process_count() > 1

        def batches(split_name, shuffle):
            dataset = split_batches(split_name, shuffle)
            if split and not shuffle and keras.config.backend() == "jax":
                # JAX refuses a batch that does not divide across devices;
                # evaluation must still score every target. Padded to full
                # batches, whose static size Keras needs to split them
                # between processes (rebatch only states that size).
                dataset = pad_batches(dataset, recipe.batch_size).rebatch(
                    recipe.batch_size, drop_remainder=True
                )
            return dataset

        def split_batches(split_name, shuffle):
            # Several replicas: a partial last training batch is dropped (a
            # fresh random order every epoch, so no row is left out for
            # good); it would be refused (JAX) or split unevenly (TF).
            drop_remainder = shuffle and split
            if recipe.sequence_length is None:
                return corpus.windows(
                    split_name,
                    memory_size=memory_size,
                    batch_size=recipe.batch_size,
                    shuffle=shuffle,
                    num_windows=train_windows if shuffle else None,
                    seed=seed,
                    drop_remainder=drop_remainder,
                    initial_epoch=initial_epoch if shuffle else 0,
                )
            return corpus.sequences(
                split_name,
                memory_size=memory_size,
                sequence_length=recipe.sequence_length,
                batch_size=recipe.batch_size,
                shuffle=shuffle,
                seed=seed,
                drop_remainder=drop_remainder,
                initial_epoch=initial_epoch if shuffle else 0,
            )

        recipe_callbacks = recipe.callbacks(verbose=verbose)
        guards = [c for c in recipe_callbacks if isinstance(c, NaNGuard)]
        fit_callbacks = (
            recipe_callbacks
            + [
                keras.callbacks.EarlyStopping(
                    monitor="val_loss",
                    patience=patience,
                    restore_best_weights=True,
                    verbose=verbose,
                )
            ]
            + list(callbacks)
        )
        checkpoint = None
        if checkpoint_dir is not None:
            # Last, so that it restores the others after they reset.
            checkpoint = TrainingCheckpoint(checkpoint_dir, fit_callbacks)
            fit_callbacks.append(checkpoint)
        history = model.fit(
            batches("train", shuffle=True),
            validation_data=batches("valid", shuffle=False),
            epochs=epochs,
            callbacks=fit_callbacks,
            # The datasets shuffle themselves, reproducibly from `seed`.
            shuffle=False,
            verbose=verbose,
        )
        history = checkpoint.history if checkpoint else history.history
        for guard in guards:
            if guard.failure is not None:
                raise NonFiniteTrainingError(guard.failure, model, history)
        if model.unseen_mixture is not None:
            model.adapt_unseen_mixture(corpus.train, corpus.valid)
        perplexity = {
            split_name: float(
                model.evaluate(
                    batches(split_name, shuffle=False),
                    return_dict=True,
                    verbose=0,
                )["perplexity"]
            )
            for split_name in evaluate
        }
        for split_name, value in perplexity.items():
            if not math.isfinite(value):
                raise NonFiniteTrainingError(
                    f"The trained model's {split_name} perplexity is {value}.",
                    model,
                    history,
                )
        return {
            "model": model,
            "history": history,
            "perplexity": perplexity,
            "seconds": time.time() - started,
        }


def unseen_training_ids(corpus):
    """The word (or character) ids absent from `corpus.train`: every id
    but the padding and `<unk>`, which need not occur in training."""
    counts = np.bincount(corpus.train, minlength=corpus.vocabulary.size)
    specials = [corpus.vocabulary.pad_id, corpus.vocabulary.unk_id]
    counts[[i for i in specials if i is not None]] = 1
    return np.flatnonzero(counts == 0)


def check_checkpoint_dir(checkpoint_dir, resume):
    """Returns the epoch a run starts with, creating `checkpoint_dir`.

    Refuses a directory that already holds a checkpoint unless `resume`, so
    that a new run never mixes with an old one, and one that is not
    writable.
    """
    check_bool("resume", resume)
    if checkpoint_dir is None:
        if resume:
            raise ValueError("`resume=True` needs a `checkpoint_dir`.")
        return 0
    checkpoint_dir = os.fspath(checkpoint_dir)
    if os.path.exists(checkpoint_dir) and not os.path.isdir(checkpoint_dir):
        raise ValueError(
            f"`checkpoint_dir`={checkpoint_dir!r} is a file, not a directory."
        )
    os.makedirs(checkpoint_dir, exist_ok=True)
    if not os.access(checkpoint_dir, os.W_OK):
        raise ValueError(
            f"`checkpoint_dir`={checkpoint_dir!r} is not writable."
        )
    epoch = read_resume_epoch(checkpoint_dir)
    has_checkpoint = any(os.scandir(checkpoint_dir))
    if has_checkpoint and not resume:
        raise ValueError(
            f"`checkpoint_dir`={checkpoint_dir!r} already holds a "
            "checkpoint. Pass `resume=True` to continue it, or choose an "
            "empty directory."
        )
    return epoch if resume else 0
