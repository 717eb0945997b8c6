"""Cost of `MemN2NLM`'s id and target checks on the training step.

`MemN2NLM.fit` checks the ids and targets of a `tf.data.Dataset` in its
pipeline (a min and a max per batch), and those of a `keras.utils.PyDataset`
or a Python generator in Python as each batch comes. This times epochs of
the same data through `MemN2NLM.fit` with the check and with it replaced
by nothing, alternating, and prints the median time per step of each, and
the time the check alone takes per batch (the end-to-end difference is
within the noise of a shared machine; the check alone is not).

    python benchmarks/id_check_cost.py [--steps 200] [--repeats 5] \
        [--source tf.data|pydataset]
"""

import argparse
import time

import keras
import numpy as np
import tensorflow as tf

from keras_memnet.models import MemN2NLM
from keras_memnet.utils import model_inputs


class Batches(keras.utils.PyDataset):
    def __init__(self, ids, targets, batch_size):
        super().__init__()
        self.ids, self.targets, self.batch_size = ids, targets, batch_size

    def __len__(self):
        return len(self.ids) // self.batch_size

    def __getitem__(self, index):
        rows = slice(index * self.batch_size, (index + 1) * self.batch_size)
        return self.ids[rows], self.targets[rows]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--vocabulary-size", type=int, default=10000)
    parser.add_argument("--memory-size", type=int, default=100)
    parser.add_argument("--embedding-dim", type=int, default=150)
    parser.add_argument("--hops", type=int, default=6)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--sequence-length", type=int, default=4)
    parser.add_argument(
        "--source", choices=["tf.data", "pydataset"], default="tf.data"
    )
    args = parser.parse_args()

    keras.utils.set_random_seed(1)
    rng = np.random.default_rng(1)
    length = args.memory_size + args.sequence_length - 1
    rows = args.steps * args.batch_size
    ids = rng.integers(1, args.vocabulary_size, (rows, length), np.int32)
    targets = rng.integers(
        1, args.vocabulary_size, (rows, args.sequence_length), np.int32
    )
    dataset = (
        tf.data.Dataset.from_tensor_slices((ids, targets))
        .batch(args.batch_size)
        .cache()
        .prefetch(tf.data.AUTOTUNE)
    )
    model = MemN2NLM(
        args.vocabulary_size,
        hops=args.hops,
        memory_size=args.memory_size,
        embedding_dim=args.embedding_dim,
    )
    model.compile(optimizer="sgd")
    checker = (
        "with_id_checks"
        if args.source == "tf.data"
        else "with_python_id_checks"
    )
    with_checks = getattr(model_inputs, checker)
    if args.source == "pydataset":
        dataset = Batches(ids, targets, args.batch_size)

    def fit(checks):
        setattr(
            model_inputs,
            checker,
            with_checks if checks else lambda data, *args: data,
        )
        model.fit(dataset, verbose=0)

    fits = {"checked": True, "unchecked": False}
    for checks in fits.values():
        fit(checks)  # Traces and warms up.
    seconds = {name: [] for name in fits}
    for _ in range(args.repeats):
        for name, checks in fits.items():
            started = time.perf_counter()
            fit(checks)
            seconds[name].append((time.perf_counter() - started) / args.steps)
    checked = np.median(seconds["checked"])
    unchecked = np.median(seconds["unchecked"])
    print(f"checked:   {1e3 * checked:.2f} ms/step")
    print(f"unchecked: {1e3 * unchecked:.2f} ms/step")
    print(f"cost:      {100 * (checked / unchecked - 1):+.2f}%")
    if args.source != "tf.data":
        # The check alone: reading every batch with and without it.
        checked_data = with_checks(dataset, args.vocabulary_size, "x")
        timings = []
        for data in (checked_data, dataset, checked_data, dataset):
            started = time.perf_counter()
            for index in range(len(data)):
                data[index]
            timings.append((time.perf_counter() - started) / len(data))
        check_only = min(timings[0::2]) - min(timings[1::2])
        print(
            f"check alone: {1e3 * check_only:.3f} ms/batch "
            f"({100 * check_only / unchecked:.2f}% of a step)"
        )
        return
    # The check alone, on one core's worth of the pipeline.
    checked_data = with_checks(dataset, args.vocabulary_size, "x")
    for _ in checked_data:
        pass
    started = time.perf_counter()
    for _ in checked_data:
        pass
    check_only = (time.perf_counter() - started) / args.steps
    started = time.perf_counter()
    for _ in dataset:
        pass
    plain = (time.perf_counter() - started) / args.steps
    print(
        f"check alone: {1e3 * (check_only - plain):.3f} ms/batch "
        f"({100 * (check_only - plain) / unchecked:.2f}% of a step)"
    )


if __name__ == "__main__":
    main()
