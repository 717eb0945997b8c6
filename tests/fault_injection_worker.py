"""A small `train_memn2n_lm` run that can SIGKILL itself, for resume tests.

python fault_injection_worker.py CHECKPOINT_DIR OUTPUT.npz [EPOCH BATCH]

Trains with `checkpoint_dir=CHECKPOINT_DIR, resume=True` and writes the
final weights and the learning rates of the history to OUTPUT.npz. With
EPOCH and BATCH (1-based) it kills itself with SIGKILL after that batch,
as a crash would, unless CHECKPOINT_DIR/killed exists (the restart).
"""

import os
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
    recipe = MemN2NLMRecipe(batch_size=8, sequence_length=8, learning_rate=8.0)
    run = train_memn2n_lm(
        tiny_corpus(), hops=2, memory_size=6, embedding_dim=12, dropout=DROPOUT,
        recipe=recipe, epochs=EPOCHS, patience=EPOCHS, seed=3,
        callbacks=callbacks, evaluate=("valid",), verbose=0,
        checkpoint_dir=checkpoint_dir, resume=True,
    )
    np.savez(
        output,
        learning_rate=np.asarray(run["history"]["learning_rate"]),
        *run["model"].get_weights(),
    )


if __name__ == "__main__":
    main(*sys.argv[1:])
