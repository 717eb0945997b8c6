"""Training runs that SIGKILL themselves, for resume tests.

python fault_injection_worker.py CHECKPOINT_DIR OUTPUT.npz [EPOCH BATCH]

Trains a small `train_memn2n_lm` run with `checkpoint_dir=CHECKPOINT_DIR,
resume=True` and writes the final weights and the learning rates of the
history to OUTPUT.npz. With EPOCH and BATCH (1-based) it kills itself with
SIGKILL after that batch, as a crash would, unless CHECKPOINT_DIR/../killed
exists (the restart).

python fault_injection_worker.py script MARKER_DIR KILLS SCRIPT [ARGS...]

Runs the Python script SCRIPT with ARGS as `__main__`, every `fit` in it
given a `KillAt` callback. KILLS is `EPOCH:BATCH[,EPOCH:BATCH...]` (or
`-` for none): each run kills itself at the first of those points whose
marker file (MARKER_DIR/killed_EPOCH_BATCH) does not exist yet, so running
the same command again resumes and meets the next point.
"""

import functools
import os
import runpy
import signal
import sys

import keras
import numpy as np

from keras_memnet.datasets import Corpus
from keras_memnet.recipes import MemN2NLMRecipe
from keras_memnet.recipes import train_memn2n_lm
from keras_memnet.tokenizers import WordVocabulary

EPOCHS = 6
DROPOUT = 0.3


class KillAt(keras.callbacks.Callback):
    def __init__(self, marker, epoch, batch):
        super().__init__()
        self.marker, self.epoch, self.batch = marker, epoch, batch
        self.current = None

    def on_epoch_begin(self, epoch, logs=None):
        self.current = epoch + 1

    def on_train_batch_end(self, batch, logs=None):
        if (self.current, batch + 1) == (self.epoch, self.batch):
            open(self.marker, "w").close()
            os.kill(os.getpid(), signal.SIGKILL)


def run_script(marker_dir, kills, script, *args):
    points = (
        []
        if kills == "-"
        else [
            tuple(int(part) for part in point.split(":"))
            for point in kills.split(",")
        ]
    )
    pending = [
        (epoch, batch)
        for epoch, batch in points
        if not os.path.exists(
            os.path.join(marker_dir, f"killed_{epoch}_{batch}")
        )
    ]
    if pending:
        epoch, batch = pending[0]
        marker = os.path.join(marker_dir, f"killed_{epoch}_{batch}")
        fit = keras.Model.fit

        @functools.wraps(fit)
        def fit_that_dies(self, *fit_args, callbacks=None, **kwargs):
            callbacks = list(callbacks or []) + [KillAt(marker, epoch, batch)]
            return fit(self, *fit_args, callbacks=callbacks, **kwargs)

        # Subclasses' `fit` (MemN2NLM's) end in this one.
        keras.Model.fit = fit_that_dies
    sys.argv = [script, *args]
    runpy.run_path(script, run_name="__main__")


def tiny_corpus():
    rng = np.random.default_rng(0)
    words = [f"w{i}" for i in range(20)]
    text = " ".join(rng.choice(words, size=700))
    vocabulary = WordVocabulary.from_text(text)
    ids = vocabulary.encode(text)
    return Corpus(ids[:500], ids[500:600], ids[600:], vocabulary)


def main(checkpoint_dir, output, kill_epoch=None, kill_batch=None):
    callbacks = []
    marker = os.path.join(checkpoint_dir, "..", "killed")
    if kill_epoch is not None and not os.path.exists(marker):
        callbacks.append(KillAt(marker, int(kill_epoch), int(kill_batch)))
    # A rate high enough for the validation cost to stop improving within
    # a few epochs, so that the annealing fires.
    recipe = MemN2NLMRecipe.paper(
        batch_size=8, sequence_length=8, learning_rate=8.0
    )
    run = train_memn2n_lm(
        tiny_corpus(),
        hops=2,
        memory_size=6,
        embedding_dim=12,
        dropout=DROPOUT,
        recipe=recipe,
        epochs=EPOCHS,
        patience=EPOCHS,
        seed=3,
        callbacks=callbacks,
        evaluate=("valid",),
        verbose=0,
        checkpoint_dir=checkpoint_dir,
        resume=True,
    )
    np.savez(
        output,
        learning_rate=np.asarray(run["history"]["learning_rate"]),
        *run["model"].get_weights(),
    )


if __name__ == "__main__":
    if sys.argv[1] == "script":
        run_script(*sys.argv[2:])
    else:
        main(*sys.argv[1:])
