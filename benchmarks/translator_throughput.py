"""Training and decoding speed of Seq2SeqTranslator, attention on and off.

At the shapes of `examples/translate_fra_eng.py` on `fra-eng-76k` (2 LSTM
layers of 256 cells, 256-dimensional embeddings, batch 128, weights drawn
from uniform(-0.08, 0.08), the vocabularies of the package's fixed
training split with `min_count` 2: 5,570 English and 8,697 French words),
it measures in one run:

- **training** target tokens per second (the non-padding labels of a
  batch: the French words and the end token) of a train step
  (`train_on_batch`; Adam at 2e-3 with the gradient's global norm clipped
  at 1, the example's Adam recipe), for `attention_hops=1` (the default,
  Luong-style attention through `MemoryHop`) and `attention_hops=0` (the
  paper's attention-free model), each compiled with XLA
  (`jit_compile=True`) and without (TensorFlow graph). On JAX only XLA is
  timed, on torch only eager;
- **decoding** sentences per second of `translate`, greedy and beam search
  (5 beams), attention on and off, on a random sample of the held-out
  English sentences.

Batches are real training pairs of `../shared/data/fra-eng-76k.txt.gz` (or
`--data`), loaded and split as the example does
(`keras_memnet.datasets.sentence_pairs`); without the file, a synthetic
corpus with vocabularies of the same sizes and sentences of similar
lengths. The output says which.

The timed batches are `--batches` random batches, all padded to one shape
(their longest source and target), so that XLA compiles once per variant.
The example's `tf.data` pipeline pads each batch to its own longest pair
instead; the script counts how many distinct padded shapes one epoch of
that pipeline holds, since XLA compiles every new shape again (the `first
step` column is the cost of one compilation).

Decoding uses the trained variants' weights with the end token's logit
pushed down, so that every sentence decodes exactly `L` tokens, `L` being
the longest reference among the decoded sentences plus its end token
(about where a trained model's batch of translations stops); an untrained
model would otherwise stop at random points and make the two settings
decode different amounts of work.

The machine may be shared: after `--warmup` untimed steps, variants are
timed in `--rounds` interleaved rounds (one train step of every variant
per round; for decoding, one call of every setting per round), figures
are medians over rounds and every ratio is the median of per-round
ratios, so that a change of load hits both sides of a ratio. The load
average is printed beside the timings.

Usage:
    python benchmarks/translator_throughput.py
    python benchmarks/translator_throughput.py --rounds 4 --decode-repeats 2
    KERAS_BACKEND=jax python benchmarks/translator_throughput.py
"""

import argparse
import json
import os
import time
from pathlib import Path

from train_throughput import compile_mode
from train_throughput import load_average
from train_throughput import train_step

DEFAULT_DATA = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "fra-eng-76k.txt.gz"
)
# The example's settings (examples/translate_fra_eng.py, Adam recipe).
MODEL = dict(embedding_dim=256, units=256, num_layers=2, reverse_source=True)
INIT_SCALE = 0.08
LEARNING_RATE = 2e-3
CLIP_NORM = 1.0
MIN_COUNT = 2
# The vocabulary sizes of fra-eng-76k's training split with min_count 2
# (and the split's size), for the synthetic corpus.
SOURCE_VOCABULARY_SIZE = 5570
TARGET_VOCABULARY_SIZE = 8697
SYNTHETIC_TRAIN_PAIRS = 75_038
NUM_BEAMS = 5


# Data


def real_corpus(path):
    """The example's training and test pairs and vocabularies."""
    from keras_memnet.datasets import sentence_pairs as sp

    pairs = sp.load_sentence_pairs(path)
    train, test = sp.split_sentence_pairs(pairs, test_size=1000, seed=0)
    source_vocab, target_vocab = sp.build_vocabularies(
        train, min_count=MIN_COUNT
    )
    sources, references = sp.group_references(test)
    return dict(
        train=train,
        sources=sources,
        references=references,
        source_vocab=source_vocab,
        target_vocab=target_vocab,
        description=(
            f"fra-eng-76k ({path}): {len(train):,} training pairs, "
            f"vocabularies {source_vocab.size:,} English and "
            f"{target_vocab.size:,} French words (min_count {MIN_COUNT})"
        ),
    )


def synthetic_corpus(seed=0):
    """Zipf-distributed words, vocabularies of fra-eng-76k's sizes.

    Source sentences of 2 to 10 words (Tatoeba's English: 4.6 words and a
    punctuation mark on average), targets one or two words longer.
    """
    import numpy as np

    from keras_memnet.tokenizers import END_TOKEN
    from keras_memnet.tokenizers import START_TOKEN
    from keras_memnet.tokenizers import WordVocabulary

    # `WordVocabulary` adds <pad> and <unk>; the target one also holds the
    # start and end tokens.
    source_words = [f"e{i}" for i in range(SOURCE_VOCABULARY_SIZE - 2)]
    target_words = [f"f{i}" for i in range(TARGET_VOCABULARY_SIZE - 4)]
    source_vocab = WordVocabulary(source_words)
    target_vocab = WordVocabulary([START_TOKEN, END_TOKEN] + target_words)
    rng = np.random.default_rng(seed)

    def sentences(words, lengths):
        ranks = np.arange(1, len(words) + 1)
        p = 1.0 / ranks
        ids = rng.choice(len(words), size=int(lengths.sum()), p=p / p.sum())
        ends = np.cumsum(lengths)
        return [
            " ".join(words[i] for i in ids[end - n : end])
            for n, end in zip(lengths, ends)
        ]

    count = SYNTHETIC_TRAIN_PAIRS + 600
    source_lengths = rng.integers(3, 12, count)
    target_lengths = source_lengths + rng.integers(0, 3, count)
    pairs = list(
        zip(
            sentences(source_words, source_lengths),
            sentences(target_words, target_lengths),
        )
    )
    train, test = pairs[:-600], pairs[-600:]
    return dict(
        train=train,
        sources=[s for s, _ in test],
        references=[[t] for _, t in test],
        source_vocab=source_vocab,
        target_vocab=target_vocab,
        description=(
            f"synthetic corpus (no {DEFAULT_DATA.name}): {len(train):,} "
            f"Zipf-distributed pairs, vocabularies {source_vocab.size:,} "
            f"and {target_vocab.size:,} words (fra-eng-76k's sizes)"
        ),
    )


def encoded_lengths(corpus):
    """Source and decoder-input lengths of every training pair."""
    import numpy as np

    from keras_memnet.tokenizers import encode_sentence_pairs

    source_ids, decoder_input_ids, _ = encode_sentence_pairs(
        corpus["train"], corpus["source_vocab"], corpus["target_vocab"]
    )
    return (
        np.array([len(s) for s in source_ids]),
        np.array([len(s) for s in decoder_input_ids]),
    )


def epoch_shapes(lengths, batch_size, seed=0):
    """Distinct padded `(source, target)` shapes in one shuffled epoch of
    `sentence_pair_dataset` (each batch padded to its longest pair)."""
    import numpy as np

    source_lengths, target_lengths = lengths
    order = np.random.default_rng(seed).permutation(len(source_lengths))
    shapes = set()
    for begin in range(0, len(order), batch_size):
        batch = order[begin : begin + batch_size]
        shapes.add(
            (int(source_lengths[batch].max()), int(target_lengths[batch].max()))
        )
    return shapes


def timed_batches(model, corpus, batch_size, count, seed=0):
    """`count` random training batches, padded to one common shape."""
    import numpy as np

    rng = np.random.default_rng(seed)
    chosen = rng.choice(
        len(corpus["train"]), (count, batch_size), replace=False
    )
    encoded = [
        model.encode_pairs([corpus["train"][i] for i in rows])
        for rows in chosen
    ]
    source_length = max(x["source_ids"].shape[1] for x, _ in encoded)
    target_length = max(y.shape[1] for _, y in encoded)

    def pad(array, length):
        return np.pad(array, ((0, 0), (0, length - array.shape[1])))

    return [
        (
            {
                "source_ids": pad(x["source_ids"], source_length),
                "decoder_input_ids": pad(x["decoder_input_ids"], target_length),
            },
            pad(y, target_length),
        )
        for x, y in encoded
    ]


# Models


def build_model(corpus, attention_hops, jit_compile, seed=0):
    import keras

    from keras_memnet.models import Seq2SeqTranslator

    keras.utils.set_random_seed(seed)
    model = Seq2SeqTranslator(
        corpus["source_vocab"],
        corpus["target_vocab"],
        initializer=keras.initializers.RandomUniform(-INIT_SCALE, INIT_SCALE),
        attention_hops=attention_hops,
        **MODEL,
    )
    # `global_clipnorm` clips as `GradientNormClipping(1.0)` does in the
    # example (inside the optimizer's update), without its logging.
    model.compile(
        optimizer=keras.optimizers.Adam(
            LEARNING_RATE, global_clipnorm=CLIP_NORM
        ),
        jit_compile=jit_compile,
    )
    return model


def training_variants(backend):
    """`(name, attention_hops, jit_compile)`, attention on first."""
    modes = {"tensorflow": (True, False), "jax": (True,)}.get(backend, (False,))
    return [
        (f"hops{hops}-{'xla' if jit else 'nojit'}", hops, jit)
        for hops in (1, 0)
        for jit in modes
    ]


def time_training(corpus, args):
    import keras
    import numpy as np

    variants = training_variants(keras.config.backend())
    models = {
        name: build_model(corpus, hops, jit) for name, hops, jit in variants
    }
    batches = timed_batches(
        next(iter(models.values())), corpus, args.batch_size, args.batches
    )
    tokens = [int(np.count_nonzero(y)) for _, y in batches]
    first_step, losses, failed = {}, {}, {}
    # The first step traces and compiles; a variant whose compilation
    # fails is reported and left out rather than ending the run.
    for name, model in list(models.items()):
        try:
            first_step[name], loss = train_step(model, *batches[0])
        except Exception as error:  # noqa: BLE001
            failed[name] = f"{type(error).__name__}: {str(error)[:300]}"
            del models[name]
            continue
        losses[name] = [loss]
    variants = [v for v in variants if v[0] in models]
    seconds = {name: [] for name in models}
    loads = []
    for step in range(1, args.warmup + args.rounds):
        x, y = batches[step % len(batches)]
        for name, model in models.items():
            elapsed, loss = train_step(model, x, y)
            losses[name].append(loss)
            if step >= args.warmup:
                seconds[name].append(elapsed)
        if step >= args.warmup:
            loads.append(os.getloadavg()[0])
    round_tokens = [
        tokens[step % len(batches)]
        for step in range(args.warmup, args.warmup + args.rounds)
    ]
    rates = {
        name: [n / s for n, s in zip(round_tokens, seconds[name])]
        for name in models
    }
    results = {}
    for name, hops, jit in variants:
        results[name] = dict(
            attention_hops=hops,
            compile=compile_mode(models[name]),
            parameters=models[name].count_params(),
            first_step_s=first_step[name],
            step_s=float(np.median(seconds[name])),
            tokens_per_s=float(np.median(rates[name])),
            tokens_per_s_rounds=rates[name],
            finite_losses=bool(np.all(np.isfinite(losses[name]))),
        )
    shape = tuple(batches[0][1].shape)
    return dict(
        results=results,
        rates=rates,
        models=models,
        failed=failed,
        batch_shape=(batches[0][0]["source_ids"].shape[1], shape[1]),
        tokens_per_step=float(np.median(tokens)),
        load_during=loads,
    )


def median_ratio(a, b):
    import numpy as np

    return float(np.median([x / y for x, y in zip(a, b)]))


def time_decoding(corpus, models, args):
    """Sentences per second of `translate`, greedy and beam, hops 1 and 0.

    Uses one trained model per attention setting (its first compile mode),
    with the end token suppressed so that every sentence decodes the same
    number of tokens.
    """
    import numpy as np
    from keras import ops

    from keras_memnet.tokenizers import tokenize_sentence

    # A random sample: the corpus is sorted shortest first, so its first
    # test sentences would be its shortest.
    picked = np.random.default_rng(0).permutation(len(corpus["sources"]))
    picked = picked[: args.decode_sentences]
    sources = [corpus["sources"][i] for i in picked]
    references = [corpus["references"][i] for i in picked]
    length = 1 + max(
        len(tokenize_sentence(r)) for refs in references for r in refs
    )
    chosen = {}
    for name, model in models.items():
        chosen.setdefault(model.attention_hops, model)
    for model in chosen.values():
        bias = ops.convert_to_numpy(model.output_projection.bias).copy()
        bias[model.end_id] = -1e4
        model.output_projection.bias.assign(bias)
    settings = [
        (hops, sampler) for hops in chosen for sampler in ("greedy", "beam")
    ]

    def decode(hops, sampler):
        return chosen[hops].translate(
            sources,
            sampler=sampler,
            num_beams=NUM_BEAMS,
            max_length=length,
            batch_size=args.decode_batch_size,
            allow_unknown_sources=True,
            return_tokens=True,
        )

    first_call, seconds, lengths = {}, {key: [] for key in settings}, {}
    for key in settings:
        start = time.perf_counter()
        outputs = decode(*key)
        first_call[key] = time.perf_counter() - start
        lengths[key] = float(np.mean([len(o) for o in outputs]))
    loads = []
    for _ in range(args.decode_repeats):
        for key in settings:
            start = time.perf_counter()
            decode(*key)
            seconds[key].append(time.perf_counter() - start)
        loads.append(os.getloadavg()[0])
    rates = {key: [len(sources) / s for s in seconds[key]] for key in settings}
    return dict(
        sentences=len(sources),
        length=length,
        first_call=first_call,
        seconds={k: float(np.median(v)) for k, v in seconds.items()},
        rates=rates,
        mean_output_words=lengths,
        load_during=loads,
    )


# Report


def print_training(report, shapes, args):
    import numpy as np

    results, rates = report["results"], report["rates"]
    print(
        f"\nTraining: batch {args.batch_size}, {args.batches} batches padded "
        f"to (source, target) = {report['batch_shape']}, median "
        f"{report['tokens_per_step']:.0f} target tokens a step; "
        f"{args.warmup} warm-up steps, {args.rounds} interleaved rounds; "
        f"load average during "
        f"{'/'.join(f'{x:.1f}' for x in report['load_during'])}"
    )
    header = (
        f"{'variant':<12} {'attention':>9} {'compile':>7} "
        f"{'params':>10} {'first step s':>12} {'step s':>7} "
        f"{'tokens/s':>9} {'vs hops0':>8} {'vs graph':>8}"
    )
    print(header)
    print("-" * len(header))
    for name, result in results.items():
        hops, mode = result["attention_hops"], name.split("-")[1]
        other_hops = f"hops{1 - hops}-{mode}" if hops in (0, 1) else None
        other_mode = f"hops{hops}-nojit"
        vs_hops = (
            f"{median_ratio(rates[name], rates[other_hops]):.2f}x"
            if hops == 1 and other_hops in rates
            else ""
        )
        vs_graph = (
            f"{median_ratio(rates[name], rates[other_mode]):.2f}x"
            if mode == "xla" and other_mode in rates
            else ""
        )
        print(
            f"{name:<12} {hops:>9} {result['compile']:>7} "
            f"{result['parameters']:>10,} {result['first_step_s']:>12.1f} "
            f"{result['step_s']:>7.3f} {result['tokens_per_s']:>9,.0f} "
            f"{vs_hops:>8} {vs_graph:>8}"
        )
    print(
        "vs hops0: attention's tokens/s over the attention-free model's, "
        "same compile mode; vs graph: XLA over no XLA, same model (medians "
        "of per-round ratios)."
    )
    if not all(r["finite_losses"] for r in results.values()):
        print("WARNING: a variant had a non-finite loss.")
    for name, error in report["failed"].items():
        print(f"FAILED {name} (left out): {error}")
    source_lengths = sorted({s for s, _ in shapes})
    target_lengths = sorted({t for _, t in shapes})
    print(
        f"The example's pipeline pads each batch to its own longest pair: "
        f"one epoch (batch {args.batch_size}) holds {len(shapes)} distinct "
        f"padded shapes (source {source_lengths[0]}-{source_lengths[-1]}, "
        f"target {target_lengths[0]}-{target_lengths[-1]} tokens)."
    )
    compile_seconds = [
        result["first_step_s"]
        for name, result in results.items()
        if name.endswith("-xla")
    ]
    if compile_seconds:
        print(
            f"XLA compiles each new shape again: about "
            f"{np.median(compile_seconds):.0f} s each (the XLA variants' "
            f"first step), {len(shapes) * np.median(compile_seconds) / 60:.0f}"
            f" minutes for one epoch's shapes unless batches are bucketed."
        )


def print_decoding(report, args):
    rates = report["rates"]
    print(
        f"\nDecoding: {report['sentences']} held-out sentences (a random "
        f"sample), batch "
        f"{args.decode_batch_size}, every sentence decoded to "
        f"{report['length']} tokens (end token suppressed), beam "
        f"{NUM_BEAMS}; {args.decode_repeats} interleaved rounds; load "
        f"average during "
        f"{'/'.join(f'{x:.1f}' for x in report['load_during'])}"
    )
    print(
        f"words: mean output words a sentence ({report['length']} when "
        "no sentence stops early)"
    )
    header = (
        f"{'attention':>9} {'sampler':>7} {'words':>5} "
        f"{'first call s':>12} {'s a call':>8} {'sentences/s':>11} "
        f"{'vs hops0':>8} {'beam/greedy':>11}"
    )
    print(header)
    print("-" * len(header))
    for (hops, sampler), seconds in report["seconds"].items():
        other = (1 - hops, sampler)
        vs_hops = (
            f"{median_ratio(rates[(hops, sampler)], rates[other]):.2f}x"
            if hops == 1 and other in rates
            else ""
        )
        greedy = rates[(hops, "greedy")]
        vs_greedy = (
            f"{median_ratio(rates[(hops, sampler)], greedy):.2f}x"
            if sampler == "beam"
            else ""
        )
        print(
            f"{hops:>9} {sampler:>7} "
            f"{report['mean_output_words'][(hops, sampler)]:>5.1f} "
            f"{report['first_call'][(hops, sampler)]:>12.1f} "
            f"{seconds:>8.3f} "
            f"{report['sentences'] / seconds:>11,.0f} {vs_hops:>8} "
            f"{vs_greedy:>11}"
        )


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument(
        "--batches",
        type=int,
        default=4,
        help="distinct timed batches (one padded shape)",
    )
    parser.add_argument(
        "--warmup", type=int, default=2, help="untimed steps per variant"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=8,
        help="timed rounds of one step of every variant",
    )
    parser.add_argument("--decode-sentences", type=int, default=128)
    parser.add_argument("--decode-batch-size", type=int, default=64)
    parser.add_argument("--decode-repeats", type=int, default=3)
    parser.add_argument("--json", help="also write the raw figures here")
    args = parser.parse_args()
    if min(args.batches, args.warmup, args.rounds, args.decode_repeats) < 1:
        parser.error(
            "--batches, --warmup, --rounds and --decode-repeats must be >= 1"
        )

    start = time.perf_counter()
    import keras

    print(
        f"Seq2SeqTranslator throughput; backend {keras.config.backend()}; "
        f"{os.cpu_count()} CPUs; load average at start {load_average()}"
    )
    if Path(args.data).is_file():
        corpus = real_corpus(args.data)
    else:
        corpus = synthetic_corpus()
    print(f"data: {corpus['description']}")
    print(
        f"model: {MODEL['num_layers']} layers x {MODEL['units']} units, "
        f"embedding {MODEL['embedding_dim']}, reversed source, "
        f"uniform(-{INIT_SCALE}, {INIT_SCALE}) weights; Adam "
        f"{LEARNING_RATE:g}, global norm clipped at {CLIP_NORM:g}"
    )
    shapes = epoch_shapes(encoded_lengths(corpus), args.batch_size)
    training = time_training(corpus, args)
    print_training(training, shapes, args)
    decoding = time_decoding(corpus, training["models"], args)
    print_decoding(decoding, args)
    print(
        f"\nload average at end {load_average()}; wall time "
        f"{time.perf_counter() - start:.0f} s"
    )
    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                dict(
                    data=corpus["description"],
                    training={
                        k: v
                        for k, v in training.items()
                        if k not in ("models", "rates")
                    },
                    epoch_shapes=len(shapes),
                    decoding={
                        "sentences": decoding["sentences"],
                        "length": decoding["length"],
                        "seconds": {
                            f"hops{h}-{s}": v
                            for (h, s), v in decoding["seconds"].items()
                        },
                        "first_call": {
                            f"hops{h}-{s}": v
                            for (h, s), v in decoding["first_call"].items()
                        },
                    },
                ),
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
