"""Compiled `generate` against a naive loop of `model.predict` calls.

Decodes a batch of 32 prompts by 100 new tokens greedily with a `MemN2NLM`
of the size of the paper's Penn Treebank model (Sukhbaatar et al., "End-To-
End Memory Networks", NeurIPS 2015: 6 hops, 150 dimensions, memory 100,
10,000 words), twice:

1. `model.generate(...)`: the whole decoding loop is one compiled function
   (a keras-hub sampler inside `predict_on_batch`);
2. a naive Python loop that calls `model.predict` once per new token and
   takes the argmax.

Both produce the same tokens (checked). It prints the one-time compile cost
of each, their steady-state generated tokens per second (median of
`--repeats` timed runs after a warm-up) and the ratio. The issue asks for at
least 20x.

Usage:
    python benchmarks/generation_throughput.py [--repeats 3] [--backend-info]
"""

import argparse
import os
import time

import keras
import numpy as np

from keras_memnet.models import MemN2NLM


def naive_greedy(model, prompts, max_length):
    """One `model.predict` call per new token."""
    window = prompts.copy()
    new_tokens = []
    for _ in range(max_length):
        logits = model.predict(window, verbose=0)
        # As `generate`: the padding id 0 is never produced.
        next_ids = logits[:, 1:].argmax(-1).astype("int32") + 1
        new_tokens.append(next_ids)
        window = np.concatenate([window[:, 1:], next_ids[:, None]], axis=1)
    return np.stack(new_tokens, axis=1)


def timed(function, repeats):
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return result, float(np.median(times)), times


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=100)
    parser.add_argument("--vocabulary-size", type=int, default=10_000)
    parser.add_argument("--hops", type=int, default=6)
    parser.add_argument("--memory-size", type=int, default=100)
    parser.add_argument("--embedding-dim", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--naive-repeats", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    keras.utils.set_random_seed(args.seed)
    model = MemN2NLM(
        args.vocabulary_size,
        hops=args.hops,
        memory_size=args.memory_size,
        embedding_dim=args.embedding_dim,
    )
    model.build((None, args.memory_size))
    # Trained-looking logits are not needed for speed, but ties in an
    # untrained model's argmax would make the comparison fragile: widen the
    # weights so that the logits are well separated.
    for weight in model.weights:
        weight.assign(keras.ops.convert_to_numpy(weight) * 6.0)
    prompts = (
        np.random.default_rng(args.seed)
        .integers(1, args.vocabulary_size, (args.batch_size, args.memory_size))
        .astype("int32")
    )
    new_tokens = args.batch_size * args.max_length
    print(
        f"Backend {keras.backend.backend()}; MemN2NLM {args.hops} hops, "
        f"{args.embedding_dim} dims, memory {args.memory_size}, vocabulary "
        f"{args.vocabulary_size:,} ({model.count_params():,} parameters); "
        f"{args.batch_size} prompts x {args.max_length} new tokens; "
        f"{os.cpu_count()} CPUs, load average "
        f"{', '.join(f'{x:.2f}' for x in os.getloadavg())}."
    )

    start = time.perf_counter()
    model.generate(prompts, args.max_length)
    compile_seconds = time.perf_counter() - start
    compiled, compiled_seconds, compiled_times = timed(
        lambda: model.generate(prompts, args.max_length), args.repeats
    )

    start = time.perf_counter()
    model.predict(prompts, verbose=0)
    naive_compile_seconds = time.perf_counter() - start
    naive, naive_seconds, naive_times = timed(
        lambda: naive_greedy(model, prompts, args.max_length),
        args.naive_repeats,
    )

    if not np.array_equal(compiled, naive):
        mismatched = np.argwhere(compiled != naive)
        raise AssertionError(
            f"generate and the predict loop disagree at {len(mismatched)} of "
            f"{compiled.size} tokens, first at (row, step) "
            f"{tuple(mismatched[0])}."
        )
    compiled_rate = new_tokens / compiled_seconds
    naive_rate = new_tokens / naive_seconds
    print("Greedy tokens of both methods are identical.")
    print(
        f"compiled generate: first call (trace + compile + run) "
        f"{compile_seconds:.2f} s; steady state {compiled_seconds:.3f} s "
        f"(runs {', '.join(f'{t:.3f}' for t in compiled_times)}) = "
        f"{compiled_rate:,.0f} tokens/s"
    )
    print(
        f"naive predict loop: first predict (trace) "
        f"{naive_compile_seconds:.2f} s; steady state {naive_seconds:.2f} s "
        f"(runs {', '.join(f'{t:.2f}' for t in naive_times)}) = "
        f"{naive_rate:,.0f} tokens/s"
    )
    print(f"speed-up: {compiled_rate / naive_rate:.1f}x (target >= 20x)")
    print(
        f"load average after: {', '.join(f'{x:.2f}' for x in os.getloadavg())}"
    )


if __name__ == "__main__":
    main()
