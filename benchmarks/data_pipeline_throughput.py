"""Windowing pipeline throughput vs. MemN2NLM training speed, in one run.

Measures, at the paper's text8 configuration (7 hops, 500 dimensions,
memory 100, batch 128; Sukhbaatar et al., "End-To-End Memory Networks",
NeurIPS 2015):

1. the time to load and tokenise the text8 prefix;
2. the peak extra memory of one full sequential windowing pass over the
   training split at memory 100 (Linux: peak RSS reset via
   /proc/self/clear_refs), next to the size of the token-id array;
3. the pipeline's windows per second (random-window epochs, as for `fit`);
4. the model's training steps per second on a constant in-memory batch (so
   the input is not measured twice), with a 44,000-word vocabulary;

and prints the ratio of (3) to the windows per second that (4) consumes.
The issue asks for a ratio of at least 10.

Usage:
    python benchmarks/data_pipeline_throughput.py [--train-steps 20]
"""

import argparse
import os
import time
from pathlib import Path

import numpy as np

DEFAULT_DATA = (
    Path(__file__).resolve().parents[2]
    / "shared"
    / "data"
    / "text8-head12m.txt.gz"
)


def _memory_kib(field):
    """Reads a field (VmRSS, VmHWM) of /proc/self/status in KiB, or None."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss():
    try:
        with open("/proc/self/clear_refs", "w") as clear_refs:
            clear_refs.write("5")
        return True
    except OSError:
        return False


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        default=str(DEFAULT_DATA),
        help="text8 or a prefix of it (default: the shared "
        "12 MB prefix; the bundled sample if it is missing)",
    )
    parser.add_argument("--memory-size", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--hops", type=int, default=7)
    parser.add_argument("--embedding-dim", type=int, default=500)
    parser.add_argument("--vocabulary-size", type=int, default=44_000)
    parser.add_argument("--pipeline-batches", type=int, default=3000)
    parser.add_argument("--train-steps", type=int, default=20)
    args = parser.parse_args()

    import keras
    import tensorflow as tf

    from keras_memnet.datasets import text8
    from keras_memnet.datasets import text8_sample
    from keras_memnet.models import MemN2NLM

    print(
        f"Keras {keras.__version__}, backend {keras.backend.backend()}, "
        f"{os.cpu_count()} CPUs visible"
    )
    M, B = args.memory_size, args.batch_size

    # 1. Load and tokenise.
    start = time.perf_counter()
    if Path(args.data).is_file():
        corpus = text8(args.data, split="standard")
    else:
        print(f"{args.data} not found; using the bundled 1 MB sample.")
        corpus = text8_sample(split="standard")
    load_seconds = time.perf_counter() - start
    tokens = corpus.train
    print(f"Loaded {corpus}: {load_seconds:.2f} s")

    # 2. Peak memory of a full sequential pass at memory 100.
    token_bytes = tokens.nbytes
    rss_before = _memory_kib("VmRSS")
    can_reset = _reset_peak_rss()
    start = time.perf_counter()
    windows_seen = 0
    for _, target in corpus.windows("train", M, B, shuffle=False):
        windows_seen += int(target.shape[0])
    pass_seconds = time.perf_counter() - start
    assert windows_seen == corpus.num_windows("train", M)
    peak = _memory_kib("VmHWM")
    print(
        f"Full sequential pass: {windows_seen:,} windows of {M} ids in "
        f"{pass_seconds:.2f} s ({windows_seen / pass_seconds:,.0f} "
        "windows/s)"
    )
    print(
        f"Token-id array: {token_bytes / 2**20:.1f} MiB; "
        f"a materialised ({windows_seen:,}, {M}) int32 array would be "
        f"{windows_seen * M * 4 / 2**20:,.0f} MiB"
    )
    if can_reset and rss_before is not None and peak is not None:
        extra = (peak - rss_before) / 1024
        print(
            f"Peak RSS during the pass: {peak / 1024:.0f} MiB, "
            f"{extra:.0f} MiB above the {rss_before / 1024:.0f} MiB before "
            f"it ({extra * 2**20 / token_bytes:.1f}x the token array)"
        )
    else:
        print("Peak RSS: not measurable here (needs Linux /proc).")

    # 3. Random-window epochs, as `fit` sees them.
    dataset = corpus.windows(
        "train",
        M,
        B,
        shuffle=True,
        seed=0,
        num_windows=B * (args.pipeline_batches + 50),
    )
    iterator = iter(dataset)
    for _ in range(50):  # warm-up: tracing, prefetch autotuning
        next(iterator)
    start = time.perf_counter()
    for _ in range(args.pipeline_batches):
        next(iterator)
    pipeline_seconds = time.perf_counter() - start
    pipeline_rate = args.pipeline_batches * B / pipeline_seconds
    print(
        f"Pipeline: {args.pipeline_batches} random batches in "
        f"{pipeline_seconds:.2f} s = {pipeline_rate:,.0f} windows/s"
    )

    # 4. Training steps at the paper's configuration.
    model = MemN2NLM(
        args.vocabulary_size,
        hops=args.hops,
        memory_size=M,
        embedding_dim=args.embedding_dim,
    )
    model.compile(
        optimizer=keras.optimizers.SGD(learning_rate=0.01),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        # The bare step: no metric (MemN2NLM would add Perplexity).
        weighted_metrics=None,
    )
    rng = np.random.default_rng(0)
    context = rng.integers(1, args.vocabulary_size, (B, M), dtype=np.int32)
    target = rng.integers(1, args.vocabulary_size, (B,), dtype=np.int32)
    batches = tf.data.Dataset.from_tensors((context, target)).repeat()

    class EpochTimer(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            self.start = time.perf_counter()

        def on_epoch_end(self, epoch, logs=None):
            self.seconds = time.perf_counter() - self.start

    timer = EpochTimer()
    # Epoch 1 compiles; epoch 2 is timed.
    model.fit(batches, epochs=1, steps_per_epoch=3, verbose=0)
    model.fit(
        batches,
        epochs=1,
        steps_per_epoch=args.train_steps,
        verbose=0,
        callbacks=[timer],
    )
    steps_per_second = args.train_steps / timer.seconds
    consumed = steps_per_second * B
    print(
        f"Training: {model.count_params():,} parameters, "
        f"{args.train_steps} steps in {timer.seconds:.2f} s = "
        f"{steps_per_second:.2f} steps/s = {consumed:,.0f} windows/s"
    )
    ratio = pipeline_rate / consumed
    print(
        f"RATIO pipeline/training = {ratio:,.1f}x "
        f"({'meets' if ratio >= 10 else 'MISSES'} the 10x target)"
    )


if __name__ == "__main__":
    main()
