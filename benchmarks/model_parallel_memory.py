"""What `distribute="model-parallel"` buys: memory per device.

`MemN2NLM.get_layout_map` splits the memory embeddings and the softmax
output projection by vocabulary id across the devices of a JAX
`keras.distribution.ModelParallel` mesh (`keras_memnet.distribution.
model_parallel_engine`); data parallelism (`keras.distribution.
DataParallel`) copies every weight to every device. For the paper's text8
model (7 hops, 500 dimensions, memory 100, V = 44,000, batch 128, the
recipe's sequence form of 4 targets a row), on `--devices` virtual CPU
devices, it prints for each engine in one run:

- the bytes of weights, and of optimizer state, each device holds (the
  first device's shards; the recipe's SGD keeps no state, `--optimizer
  adam` two slots a weight);
- XLA's memory analysis of the compiled loss and gradient
  (`jax.value_and_grad` over `model.stateless_call`, the gradient laid
  out like the weights, as Keras's train step lays out its outputs) on
  one device: its arguments (weights and batch), outputs (the gradient)
  and temporaries (activations, logits among them), and their sum;
- the median time of a `train_on_batch` step, and every ratio
  model-parallel / data-parallel.

Both engines train the same global batch: data parallelism gives each
device `1/n` of it, the model-parallel mesh (`("batch", "model")` of
shape `(1, n)`) gives every device all of it, with `1/n` of each
vocabulary-sized weight and of the logits.

Virtual CPU devices share this machine's cores, so the time says nothing
of real accelerators; the memory figures are what each device would hold.

Usage:
    python benchmarks/model_parallel_memory.py
    python benchmarks/model_parallel_memory.py --devices 4 --steps 3
"""

import argparse
import os
import statistics
import sys
import time

from train_throughput import load_average


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--devices", type=int, default=2)
    parser.add_argument("--vocabulary-size", type=int, default=44_000)
    parser.add_argument("--hops", type=int, default=7)
    parser.add_argument("--embedding-dim", type=int, default=500)
    parser.add_argument("--memory-size", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--sequence-length", type=int, default=4)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd")
    return parser.parse_args()


def main():
    args = parse_args()
    # The device count is fixed when JAX starts.
    os.environ["KERAS_BACKEND"] = "jax"
    os.environ["XLA_FLAGS"] = (
        f"--xla_force_host_platform_device_count={args.devices}"
    )
    import jax
    import keras
    import numpy as np

    from keras_memnet.distribution import data_parallel_engine
    from keras_memnet.distribution import model_parallel_engine
    from keras_memnet.models import MemN2NLM

    rng = np.random.default_rng(0)
    width = args.memory_size + args.sequence_length - 1
    inputs = rng.integers(
        1, args.vocabulary_size, (args.batch_size, width), dtype="int32"
    )
    targets = rng.integers(
        1,
        args.vocabulary_size,
        (args.batch_size, args.sequence_length),
        dtype="int32",
    )
    engines = {
        "data-parallel": data_parallel_engine(),
        "model-parallel": model_parallel_engine(MemN2NLM),
    }
    print(
        f"MemN2NLM: {args.hops} hops, {args.embedding_dim} dims, memory "
        f"{args.memory_size}, V = {args.vocabulary_size:,}, batch "
        f"{args.batch_size} x {args.sequence_length} targets; "
        f"{args.devices} virtual CPU devices; {args.optimizer}; jax "
        f"{jax.__version__}, keras "
        f"{keras.__version__}"
    )
    rows = {}
    for name, engine in engines.items():
        with engine.scope():
            keras.utils.set_random_seed(0)
            model = MemN2NLM(
                args.vocabulary_size,
                hops=args.hops,
                memory_size=args.memory_size,
                embedding_dim=args.embedding_dim,
            )
            model.build((None, args.memory_size))
            optimizer = (
                keras.optimizers.SGD(0.01)
                if args.optimizer == "sgd"
                else keras.optimizers.Adam(1e-3)
            )
            model.compile(optimizer=optimizer)
            model.optimizer.build(model.trainable_variables)
            rows[name] = measure(model, inputs, targets, args.steps)
    print(f"load average {load_average()}")
    header = (
        "engine",
        "weights/device MiB",
        "optimizer state/device MiB",
        "step args MiB",
        "step outputs MiB",
        "step temps MiB",
        "step total MiB",
        "step s (median)",
    )
    print("| " + " | ".join(header) + " |")
    print("|" + " --- |" * len(header))
    for name, row in rows.items():
        cells = [name] + [f"{row[k] / 2**20:,.1f}" for k in MEMORY_KEYS]
        cells.append(f"{row['seconds']:.3f}")
        print("| " + " | ".join(cells) + " |")
    dp, mp = rows["data-parallel"], rows["model-parallel"]
    ratios = ", ".join(
        f"{key} {mp[key] / dp[key]:.3f}"
        for key in MEMORY_KEYS + ("seconds",)
        if dp[key]
    )
    print(f"model-parallel / data-parallel: {ratios}")


MEMORY_KEYS = (
    "weights",
    "optimizer",
    "arguments",
    "outputs",
    "temporaries",
    "total",
)


def measure(model, inputs, targets, steps):
    import jax
    import keras

    def device_bytes(variables):
        return sum(v.value.addressable_shards[0].data.nbytes for v in variables)

    # The iteration counter and learning rate are scalars.
    slots = [v for v in model.optimizer.variables if len(v.shape)]
    trainable = [v.value for v in model.trainable_variables]
    non_trainable = [v.value for v in model.non_trainable_variables]
    data_layout = keras.distribution.distribution().get_data_layout(
        inputs.shape
    )
    target_layout = keras.distribution.distribution().get_data_layout(
        targets.shape
    )
    x = jax.device_put(inputs, data_layout.backend_layout)
    y = jax.device_put(targets, target_layout.backend_layout)
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True)

    def loss(trainable, x, y):
        logits, _ = model.stateless_call(trainable, non_trainable, x)
        return loss_fn(y, logits)

    gradient_shardings = [v.value.sharding for v in model.trainable_variables]
    compiled = (
        jax.jit(
            jax.value_and_grad(loss), out_shardings=(None, gradient_shardings)
        )
        .lower(trainable, x, y)
        .compile()
    )
    stats = compiled.memory_analysis()
    row = {
        "weights": device_bytes(model.weights),
        "optimizer": device_bytes(slots),
        "arguments": stats.argument_size_in_bytes,
        "outputs": stats.output_size_in_bytes,
        "temporaries": stats.temp_size_in_bytes,
    }
    row["total"] = row["arguments"] + row["outputs"] + row["temporaries"]
    model.train_on_batch(inputs, targets)  # Compiles.
    seconds = []
    for _ in range(steps):
        start = time.perf_counter()
        model.train_on_batch(inputs, targets)
        seconds.append(time.perf_counter() - start)
    row["seconds"] = statistics.median(seconds)
    return row


if __name__ == "__main__":
    sys.exit(main())
