"""Train the shipped text8 presets: `memn2n_text8_12m` and `char_memn2n_text8`.

The language model of Sukhbaatar et al., "End-To-End Memory Networks"
(NeurIPS 2015, arXiv:1503.08895, section 5) on the 12 MB text8 prefix:
`--level word` (default; `MemN2NLM`, 6 hops, 150 dimensions, memory 100,
layer-wise tying) or `--level char` (`CharMemN2N`, `--short-context` rows).
It trains in the sequence form on NumPy arrays (`Corpus.sequence_arrays`),
so it runs on any Keras backend, TensorFlow not needed: this is how the
shipped presets were trained (on a GPU, `KERAS_BACKEND=jax`; see their
`metadata.json`).

Split (character offsets of the prefix), as in `text8_benchmark.py`: train
[0, 10M), validation [10M, 11M), test [11M, end); words seen fewer than 5
times in training become `<unk>` (`--level char`: text8's 27
characters). Training stops at `--minutes` or when the learning rate has
been halved below `--min-lr`; the learning rate is halved
whenever validation perplexity does not improve, and the weights with the
best validation perplexity are kept. Test perplexity is measured once, on
those weights.

Outputs under `--output-dir`: `results.json` (the settings, validation
perplexity after every epoch, tokens per second, test perplexity) and the
best weights as `weights-N.npz` files keyed by variable path (split into
files of at most 15 MB). With `--save-preset DIR`, also the preset
(`keras_memnet.presets.save_to_preset`, float16 weights by default).
`--init-weights DIR` starts from such weights instead of training from
scratch (with `--minutes 0`: only evaluates and packages them).

Usage:

    KERAS_BACKEND=jax python examples/train_text8_preset.py \\
        --data ../shared/data/text8-head12m.txt.gz --minutes 6 \\
        --output-dir runs/preset_word
    python examples/train_text8_preset.py --data ... --minutes 0 \\
        --init-weights runs/preset_word --save-preset presets/memn2n_text8_12m
"""

import argparse
import glob
import gzip
import json
import math
import os
import shlex
import sys
import time

import keras
import numpy as np

from keras_memnet.callbacks import GradientNormClipping
from keras_memnet.datasets import TEXT8_12M_SPLIT
from keras_memnet.datasets import text8
from keras_memnet.metrics import Perplexity
from keras_memnet.models import CharMemN2N
from keras_memnet.models import MemN2NLM
from keras_memnet.recipes import MemN2NLMRecipe

# `--fast`: a smoke test of the script on slices of the same split.
FAST_SPLIT = {
    "train": (0, 200_000),
    "valid": (10_000_000, 10_050_000),
    "test": (11_000_000, 11_050_000),
}
PART_BYTES = 15_000_000
# Bytes of the prefix, inside the test range, scored by the preset tests
# (tests/data holds them, so that the tests need no ../shared).
HELDOUT_SLICE = (11_000_000, 11_100_000)
HELDOUT_FILE = "tests/data/text8_heldout_11m_100k.txt.gz"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--data", required=True, help="the text8 prefix (text8-head12m.txt.gz)"
    )
    parser.add_argument("--level", choices=("word", "char"), default="word")
    parser.add_argument("--minutes", type=float, default=6.0)
    parser.add_argument("--hops", type=int, default=6)
    parser.add_argument("--memory-size", type=int, default=100)
    parser.add_argument("--embedding-dim", type=int, default=150)
    parser.add_argument(
        "--short-context",
        action="store_true",
        help="pad the first memory_size - 1 inputs of every "
        "training row (see make_sequences); CharMemN2N "
        "needs it to learn",
    )
    parser.add_argument(
        "--output",
        choices=("softmax", "adaptive"),
        default="softmax",
        help="the word-level output head (MemN2NLM's `output`); "
        "not for --level char",
    )
    parser.add_argument("--dropout", type=float, default=0.3)
    parser.add_argument("--sequence-length", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument(
        "--optimizer",
        choices=("adam", "sgd"),
        default="adam",
        help="the recipe's optimizer (MemN2NLMRecipe; default: adam)",
    )
    parser.add_argument(
        "--lr",
        type=float,
        default=None,
        help="learning rate on the mean loss (default: the recipe's, 0.002 "
        "for adam)",
    )
    parser.add_argument(
        "--clip-norm",
        type=float,
        default=None,
        help="global gradient-norm clip on the mean loss (default: the "
        "recipe's, 1.0 for adam)",
    )
    parser.add_argument("--min-lr", type=float, default=1e-5)
    parser.add_argument("--max-epochs", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--output-dir", required=True)
    parser.add_argument("--init-weights", default=None)
    parser.add_argument("--save-preset", default=None)
    parser.add_argument("--weights-dtype", default="float16")
    parser.add_argument(
        "--training-command",
        default=None,
        help="with --init-weights: the command that trained "
        "them, recorded in the preset's metadata",
    )
    parser.add_argument(
        "--training-results",
        default=None,
        help="with --init-weights: the results.json of the "
        "run that trained them, recorded in the metadata",
    )
    parser.add_argument(
        "--fast",
        action="store_true",
        help="tiny slices of the split, one epoch",
    )
    args = parser.parse_args(argv)
    if args.level == "char" and args.output != "softmax":
        parser.error("--output applies only to --level word")
    if args.fast:
        args.max_epochs = 1
    return args


def build_model(args, vocabulary):
    if args.level == "char":
        return CharMemN2N(
            hops=args.hops,
            memory_size=args.memory_size,
            embedding_dim=args.embedding_dim,
            dropout=args.dropout,
            vocabulary=vocabulary,
        )
    return MemN2NLM(
        vocabulary.size,
        hops=args.hops,
        memory_size=args.memory_size,
        embedding_dim=args.embedding_dim,
        dropout=args.dropout,
        vocabulary=vocabulary,
        output=args.output,
    )


def make_recipe(args):
    """The package's recipe (`MemN2NLMRecipe`): optimizer, clip, annealing.

    `--optimizer sgd` is the paper's (`MemN2NLMRecipe.paper()`).
    """
    make = MemN2NLMRecipe.paper if args.optimizer == "sgd" else MemN2NLMRecipe
    return make(
        batch_size=args.batch_size,
        sequence_length=args.sequence_length,
        learning_rate=args.lr,
        max_norm=args.clip_norm,
    )


def perplexity(model, arrays, batch_size):
    inputs, targets, weights = arrays
    # The weighted metric leaves out the padding of the last row.
    return float(
        model.evaluate(
            inputs,
            targets,
            sample_weight=weights,
            batch_size=batch_size,
            verbose=0,
            return_dict=True,
        )["perplexity"]
    )


def save_weights(model, directory):
    """Writes the weights as npz files of at most PART_BYTES, by path."""
    for old in glob.glob(os.path.join(directory, "weights-*.npz")):
        os.remove(old)
    part, size, index = {}, 0, 0
    for variable in model.weights:
        value = keras.ops.convert_to_numpy(variable)
        if part and size + value.nbytes > PART_BYTES:
            np.savez(os.path.join(directory, f"weights-{index}.npz"), **part)
            part, size, index = {}, 0, index + 1
        part[variable.path] = value
        size += value.nbytes
    np.savez(os.path.join(directory, f"weights-{index}.npz"), **part)


def load_weights(model, directory):
    """Assigns npz weights by variable path; every variable must be found.

    A path matches on its last two parts (layer and variable), which stay
    the same when a layer moves into a sub-model.
    """
    values = {}
    for path in sorted(glob.glob(os.path.join(directory, "weights-*.npz"))):
        with np.load(path) as part:
            values.update({_short_path(key): part[key] for key in part.files})
    paths = [_short_path(v.path) for v in model.weights]
    missing = [path for path in paths if path not in values]
    if missing or len(set(paths)) != len(paths):
        raise ValueError(
            f"The weights in {directory!r} do not match the model: it needs "
            f"{paths}; they hold {sorted(values)}."
        )
    for variable, path in zip(model.weights, paths):
        variable.assign(values[path])


def _short_path(path):
    return "/".join(path.split("/")[-2:])


def round_to_dtype(model, dtype):
    """Rounds every weight through `dtype`, as a preset stored in it is."""
    for variable in model.weights:
        value = keras.ops.convert_to_numpy(variable)
        variable.assign(value.astype(dtype).astype(value.dtype))


def heldout_slice(path):
    """`HELDOUT_SLICE` of the text8 prefix: the preset test's held-out text."""
    start, end = HELDOUT_SLICE
    with (
        gzip.open(path, "rb")
        if path.endswith(".gz")
        else open(path, "rb") as file
    ):
        return file.read()[start:end].decode("ascii")


def save_preset(model, valid, test, args, results):
    """Saves the preset with its figures measured on the stored weights.

    `valid` and `test` are the splits' `sequence_arrays`.
    """
    from keras_memnet.presets import save_to_preset

    figures = {
        "valid_perplexity_float32": results["valid_perplexity"],
        "test_perplexity_float32": results["test_perplexity"],
    }
    if args.weights_dtype != "float32":
        round_to_dtype(model, args.weights_dtype)
    figures["valid_perplexity"] = perplexity(model, valid, args.batch_size)
    figures["test_perplexity"] = perplexity(model, test, args.batch_size)
    figures["test_bits_per_token"] = math.log2(figures["test_perplexity"])
    figures["weights_dtype_cost_percent"] = 100 * (
        figures["test_perplexity"] / figures["test_perplexity_float32"] - 1
    )
    slice_figures = model.evaluate_text(heldout_slice(args.data))
    figures["heldout_slice"] = {
        "bytes": list(HELDOUT_SLICE),
        "file": HELDOUT_FILE,
        **slice_figures,
    }
    level = "characters" if args.level == "char" else "words"
    metadata = {
        "description": (
            f"End-To-End Memory Network language model over {level} "
            f"(Sukhbaatar et al., 2015): {args.hops} hops, memory "
            f"{args.memory_size}, {args.embedding_dim} dimensions, "
            "layer-wise tying, "
            + ("adaptive softmax output, " if args.output == "adaptive" else "")
            + "trained in the sequence form."
        ),
        "data": (
            "text8 (Mahoney, 2006: the first 100 MB of cleaned English "
            "Wikipedia), its first 11,999,999 bytes; train bytes [0, 10M), "
            "validation [10M, 11M), test [11M, end)"
            + (
                ""
                if args.level == "char"
                else "; words seen fewer than 5 times in training are <unk>"
            )
        ),
        "license": (
            "The training text is from English Wikipedia, licensed CC "
            "BY-SA 3.0 and GFDL (text8: http://mattmahoney.net/dc/"
            "textdata.html); the weights are shipped under the same terms "
            "with this attribution."
        ),
        "training_command": args.training_command,
        "packaging_command": "python " + shlex.join(sys.argv),
        "seed": args.seed,
        "training": {
            key: results["training_results"].get(key)
            for key in ("settings", "backend", "epochs", "train_tokens")
        }
        if results.get("training_results")
        else None,
        "figures": figures,
    }
    save_to_preset(
        model,
        args.save_preset,
        overwrite=True,
        weights_dtype=args.weights_dtype,
        metadata=metadata,
    )
    print(json.dumps(figures, indent=1))


def main(argv=None):
    args = parse_args(argv)
    os.makedirs(args.output_dir, exist_ok=True)
    keras.utils.set_random_seed(args.seed)
    split = FAST_SPLIT if args.fast else TEXT8_12M_SPLIT
    if args.level == "char":
        corpus = text8(args.data, split=split, level="char")
    else:
        corpus = text8(args.data, split=split, min_count=5)
    memory, length = args.memory_size, args.sequence_length
    train = corpus.sequence_arrays(
        "train", memory, length, short_context=args.short_context
    )
    valid = corpus.sequence_arrays("valid", memory, length)
    test = corpus.sequence_arrays("test", memory, length)
    model = build_model(args, corpus.vocabulary)
    recipe = make_recipe(args)
    model.compile(
        optimizer=recipe.optimizer(),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        weighted_metrics=[Perplexity(from_logits=True)],
    )
    model.build((None, memory + length - 1))
    if args.init_weights:
        load_weights(model, args.init_weights)
    results = {
        "settings": vars(args),
        "recipe": recipe.get_config(),
        "backend": keras.config.backend(),
        "vocabulary_size": corpus.vocabulary.size,
        "parameters": model.count_params(),
        "train_tokens": int(train[2].sum()),
        "epochs": [],
    }
    if args.training_results:
        with open(args.training_results) as file:
            results["training_results"] = json.load(file)
    results_path = os.path.join(args.output_dir, "results.json")
    best = perplexity(model, valid, args.batch_size)
    print(f"start: valid perplexity {best:.1f}", flush=True)
    lr = recipe.learning_rate
    start = time.monotonic()
    budget = args.minutes * 60
    for epoch in range(args.max_epochs if budget > 0 else 0):
        epoch_start = time.monotonic()
        model.fit(
            train[0],
            train[1],
            sample_weight=train[2],
            batch_size=args.batch_size,
            epochs=1,
            shuffle=True,
            verbose=0,
            callbacks=[GradientNormClipping(recipe.max_norm)],
        )
        seconds = time.monotonic() - epoch_start
        valid_ppl = perplexity(model, valid, args.batch_size)
        improved = valid_ppl < best
        if improved:
            best = valid_ppl
            save_weights(model, args.output_dir)
        else:
            lr /= recipe.anneal_factor
            model.optimizer.learning_rate.assign(lr)
        elapsed = time.monotonic() - start
        results["epochs"].append(
            {
                "epoch": epoch + 1,
                "valid_perplexity": valid_ppl,
                "seconds": elapsed,
                "train_tokens_per_second": results["train_tokens"] / seconds,
                "learning_rate": lr,
            }
        )
        print(
            f"epoch {epoch + 1}: valid {valid_ppl:.2f} (best {best:.2f}) "
            f"{results['train_tokens'] / seconds:,.0f} tokens/s "
            f"lr {lr:.2g} at {elapsed:.0f} s",
            flush=True,
        )
        with open(results_path, "w") as file:
            json.dump(results, file, indent=1)
        # Stop before an epoch that would overrun the budget.
        if elapsed + seconds * 1.5 > budget or lr < args.min_lr:
            break
    if glob.glob(os.path.join(args.output_dir, "weights-*.npz")):
        load_weights(model, args.output_dir)
    elif budget <= 0 and not args.init_weights:
        sys.exit("Nothing trained: give --minutes > 0 or --init-weights.")
    results["valid_perplexity"] = perplexity(model, valid, args.batch_size)
    results["test_perplexity"] = perplexity(model, test, args.batch_size)
    results["test_bits_per_token"] = math.log2(results["test_perplexity"])
    print(
        f"best weights: valid {results['valid_perplexity']:.3f}, "
        f"test {results['test_perplexity']:.3f} "
        f"({results['test_bits_per_token']:.3f} bits per token)",
        flush=True,
    )
    with open(results_path, "w") as file:
        json.dump(results, file, indent=1)
    if args.save_preset:
        save_preset(model, valid, test, args, results)


if __name__ == "__main__":
    main()
