r"""Perplexity cost of the adaptive softmax: full and adaptive, same training.

Trains `MemN2NLM` twice on the 12 MB text8 split of the reproduction
issue, once with the full softmax and once with `output="adaptive"`
(Grave et al., 2017, "Efficient softmax approximation for GPUs"), with the
same seed, the same random training windows and the same number of them,
and the paper's recipe (Sukhbaatar et al., 2015: SGD, gradient-norm
clipping, learning rate divided by 1.5 on a validation plateau;
`keras_memnet.recipes.MemN2NLMRecipe`). It reports validation and test
perplexity of both and the relative gap, the training time of each and the
training tokens/s.

Split (byte offsets of `text8-head12m.txt.gz`): train [0, 10M), validation
[10M, 11M), test [11M, end), words seen fewer than 5 times in training map
to `<unk>` (19,502 ids). Ids are frequency-sorted, as the adaptive softmax
needs. The default cutoffs are `[2000, 10000]`.

Perplexity is `exp` of the mean negative log-likelihood per test token,
from `evaluate`; both models output normalised distributions, so the two
are comparable. `--valid-tokens` limits the per-epoch validation (for the
annealing) to the start of the validation split; the final figures use all
of it.

Usage:
    python benchmarks/adaptive_softmax_quality.py --epochs 4 \
        --windows-per-epoch 200000
    python benchmarks/adaptive_softmax_quality.py \
        --dtype-policy mixed_bfloat16 --outputs adaptive
"""

import argparse
import json
import math
import os
import time
from pathlib import Path

import keras
import numpy as np

from keras_memnet.datasets import TEXT8_12M_SPLIT
from keras_memnet.datasets import text8
from keras_memnet.models import MemN2NLM
from keras_memnet.recipes import MemN2NLMRecipe

DEFAULT_DATA = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "text8-head12m.txt.gz"
)


def load_average():
    return "/".join(f"{x:.1f}" for x in os.getloadavg())


class LossTracker(keras.callbacks.Callback):
    """Counts non-finite training losses and times the epochs."""

    def on_train_begin(self, logs=None):
        self.non_finite = 0
        self.steps = 0
        self.epoch_seconds = []

    def on_epoch_begin(self, epoch, logs=None):
        self.started = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        if not math.isfinite(float(logs["loss"])):
            self.non_finite += 1

    def on_epoch_end(self, epoch, logs=None):
        self.epoch_seconds.append(time.perf_counter() - self.started)


def train_and_evaluate(corpus, output, args):
    keras.mixed_precision.set_global_policy(args.dtype_policy)
    keras.utils.set_random_seed(args.seed)
    model = MemN2NLM(
        corpus.vocabulary.size,
        hops=args.hops,
        memory_size=args.memory_size,
        embedding_dim=args.embedding_dim,
        dropout=args.dropout,
        output=output,
        adaptive_cutoffs=args.cutoffs if output == "adaptive" else None,
    )
    # The window form: this benchmark trains on `Corpus.windows`.
    recipe = MemN2NLMRecipe.paper(
        batch_size=args.batch_size, sequence_length=None
    )
    # No training metrics: a perplexity metric would need the full
    # distribution at every step, which the adaptive loss avoids. The loss
    # is the mean NLL, so exp(loss) is the perplexity.
    model.compile(
        optimizer=recipe.optimizer(),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
    )
    # Fixed-size batches: the adaptive loss sizes its buffers from the
    # batch size when the step is traced.
    train = corpus.windows(
        "train",
        args.memory_size,
        args.batch_size,
        shuffle=True,
        num_windows=args.windows_per_epoch,
        seed=args.seed,
        drop_remainder=True,
    )
    valid_monitor = corpus.windows(
        "valid", args.memory_size, args.batch_size, shuffle=False
    )
    if args.valid_tokens:
        valid_monitor = valid_monitor.take(
            math.ceil(args.valid_tokens / args.batch_size)
        )
    tracker = LossTracker()
    started = time.perf_counter()
    history = model.fit(
        train,
        validation_data=valid_monitor,
        epochs=args.epochs,
        verbose=args.verbose,
        callbacks=recipe.callbacks() + [tracker],
    )
    train_seconds = time.perf_counter() - started
    results = {}
    for split_name in ("valid", "test"):
        loss = model.evaluate(
            corpus.windows(
                split_name, args.memory_size, args.batch_size, shuffle=False
            ),
            verbose=0,
        )
        results[f"{split_name}_perplexity"] = float(np.exp(loss))
    keras.mixed_precision.set_global_policy("float32")
    steps_per_epoch = args.windows_per_epoch // args.batch_size
    train_tokens = args.epochs * steps_per_epoch * args.batch_size
    return dict(
        output=output,
        dtype_policy=args.dtype_policy,
        parameters=model.count_params(),
        train_tokens=train_tokens,
        train_seconds=train_seconds,
        # Per epoch, validation excluded.
        train_tokens_per_s=steps_per_epoch
        * args.batch_size
        / float(np.median(tracker.epoch_seconds)),
        steps=tracker.steps,
        non_finite_losses=tracker.non_finite,
        train_loss=[float(x) for x in history.history["loss"]],
        val_perplexity_per_epoch=[
            float(np.exp(x)) for x in history.history["val_loss"]
        ],
        load_after=load_average(),
        **results,
    )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--outputs", default="softmax,adaptive")
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--windows-per-epoch", type=int, default=200_000)
    parser.add_argument("--valid-tokens", type=int, default=50_000)
    parser.add_argument("--hops", type=int, default=6)
    parser.add_argument("--memory-size", type=int, default=100)
    parser.add_argument("--embedding-dim", type=int, default=150)
    parser.add_argument("--dropout", type=float, default=0.0)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument(
        "--cutoffs",
        default="2000,10000",
        help="comma-separated adaptive-softmax cutoffs",
    )
    parser.add_argument(
        "--dtype-policy",
        default="float32",
        choices=["float32", "mixed_bfloat16"],
    )
    parser.add_argument("--min-count", type=int, default=5)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--verbose", type=int, default=2)
    parser.add_argument("--json", help="also write the figures here")
    args = parser.parse_args()
    args.cutoffs = [int(c) for c in args.cutoffs.split(",")]

    corpus = text8(args.data, split=TEXT8_12M_SPLIT, min_count=args.min_count)
    print(
        f"text8 12 MB split: {corpus.train.size:,} / {corpus.valid.size:,} / "
        f"{corpus.test.size:,} tokens, {corpus.vocabulary.size:,} ids; "
        f"backend {keras.config.backend()}, {args.dtype_policy}; "
        f"{args.epochs} epochs x {args.windows_per_epoch:,} windows; "
        f"load average {load_average()}",
        flush=True,
    )
    runs = []
    for output in args.outputs.split(","):
        run = train_and_evaluate(corpus, output, args)
        runs.append(run)
        print(json.dumps(run), flush=True)

    print(
        "\n| output | dtype | params | train tokens | train time | "
        "train tokens/s | valid ppl | test ppl | non-finite losses |"
    )
    print("|---|---|---|---|---|---|---|---|---|")
    for run in runs:
        print(
            f"| {run['output']} | {run['dtype_policy']} | "
            f"{run['parameters'] / 1e6:.2f} M | {run['train_tokens']:,} | "
            f"{run['train_seconds'] / 60:.1f} min | "
            f"{run['train_tokens_per_s']:,.0f} | "
            f"{run['valid_perplexity']:.1f} | {run['test_perplexity']:.1f} | "
            f"{run['non_finite_losses']} of {run['steps']} steps |"
        )
    by_output = {run["output"]: run for run in runs}
    if {"softmax", "adaptive"} <= by_output.keys():
        full, adaptive = by_output["softmax"], by_output["adaptive"]
        gap = adaptive["test_perplexity"] / full["test_perplexity"] - 1
        speed = adaptive["train_tokens_per_s"] / full["train_tokens_per_s"]
        print(
            f"\nadaptive vs full: test perplexity {gap:+.1%}, training "
            f"tokens/s {speed:.2f}x"
            f" (target: within 3%)"
        )
    print(f"load average at end {load_average()}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(dict(args=vars(args), runs=runs), f, indent=1)


if __name__ == "__main__":
    main()
