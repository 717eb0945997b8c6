"""Splits a study512k model's test perplexity by words seen in training.

Under the study's protocol the vocabulary holds every word type of both
text8 chunks, so many test words never occur in the training chunk. This
prints what share of the test tokens they are, how much probability mass the
model gives them, and the perplexity on the other tokens.

Usage:

    keras-memnet train --output memn2n_lm.keras
    python examples/unseen_word_analysis.py --model memn2n_lm.keras
"""

import argparse

import numpy as np

from keras_memnet.datasets import text8_sample
from keras_memnet.saving import load_model


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", required=True)
    parser.add_argument(
        "--chunk",
        type=int,
        default=4096,
        help="windows scored at once (bounds memory)",
    )
    args = parser.parse_args(argv)

    corpus = text8_sample(split="study512k")
    model = load_model(args.model)
    memory = model.memory_size
    seen = np.zeros(corpus.vocabulary.size, dtype=bool)
    seen[np.concatenate([corpus.train, corpus.valid])] = True
    test = corpus.test
    targets = test[memory:]
    nll, unseen_mass = [], []
    for start in range(0, len(targets), args.chunk):
        stop = min(start + args.chunk, len(targets))
        contexts = np.stack([test[i : i + memory] for i in range(start, stop)])
        logits = model.predict(contexts, batch_size=512, verbose=0)
        logits = logits - logits.max(-1, keepdims=True)
        log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
        nll.append(-log_probs[np.arange(stop - start), targets[start:stop]])
        unseen_mass.append(np.exp(log_probs[:, ~seen]).sum(-1))
    nll, unseen_mass = np.concatenate(nll), np.concatenate(unseen_mass)
    unseen = ~seen[targets]
    print(f"test perplexity                 {np.exp(nll.mean()):10.1f}")
    print(
        f"test tokens unseen in training  {unseen.mean():10.1%} "
        f"({len(set(targets[unseen].tolist())):,} types)"
    )
    print(f"model's mass on unseen types    {unseen_mass.mean():10.1%}")
    print(f"mean NLL of unseen tokens       {nll[unseen].mean():10.2f} nats")
    print(
        f"perplexity on seen tokens       {np.exp(nll[~unseen].mean()):10.1f}"
    )


if __name__ == "__main__":
    main()
