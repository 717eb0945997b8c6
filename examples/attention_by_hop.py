"""How far back each hop of a memory-network language model reads.

Reads a text with `MemN2NLM.memory_attention` and prints, for each hop,
the share of its attention on the most recent tokens and on those further
back, its mean attended distance (1 is the token just before the
prediction) and the distance it weighs most, averaged over every
prediction whose memory is full (no padding). By default: the shipped
`memn2n_text8_12m` preset on the held-out text8 slice that ships with the
tests (text8 bytes [11M, 11.1M), never trained on). The README's paragraph
on what the hops read quotes its output.

Usage:

    python examples/attention_by_hop.py
    python examples/attention_by_hop.py --model lm.keras --data my_text.txt
"""

import argparse
import gzip
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
HELDOUT_FILE = ROOT / "tests" / "data" / "text8_heldout_11m_100k.txt.gz"


def read_text(path):
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as file:
        return file.read()


def attention_by_distance(weights):
    """Mean weight of each hop at each distance: `(hops, memory_size)`,
    column `d - 1` for the token `d` places before the prediction."""
    # Slot memory_size - 1 is the most recent token: reverse the slots.
    return weights.mean(axis=0)[:, ::-1]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    source = parser.add_mutually_exclusive_group()
    source.add_argument("--model", help="a .keras file")
    source.add_argument(
        "--preset",
        default="memn2n_text8_12m",
        help="a shipped preset name or directory (default: memn2n_text8_12m)",
    )
    parser.add_argument(
        "--data",
        default=str(HELDOUT_FILE),
        help="a text file, plain or .gz (default: the held-out text8 slice "
        "in tests/data)",
    )
    parser.add_argument(
        "--recent",
        type=int,
        default=5,
        help="how many of the most recent tokens count as recent (default: 5)",
    )
    args = parser.parse_args(argv)

    if args.model is not None:
        from keras_memnet.saving import load_model

        model, name = load_model(args.model), args.model
    else:
        from keras_memnet.presets import load_preset

        model, name = load_preset(args.preset), args.preset
    attention = model.memory_attention(read_text(args.data))
    memory = model.memory_size
    # Only predictions with a full memory: padding would pull every hop
    # towards the recent tokens.
    weights = attention["weights"][memory - 1 :]
    if not len(weights):
        raise SystemExit(
            f"{args.data} is shorter than the memory ({memory} tokens)."
        )
    by_distance = attention_by_distance(weights)
    distances = np.arange(1, memory + 1)
    recent = min(args.recent, memory)
    shown = Path(args.data).resolve()
    if shown.is_relative_to(ROOT):
        shown = shown.relative_to(ROOT)
    print(
        f"{name}: {len(weights):,} predictions of {shown} with a full "
        f"memory of {memory} tokens; mean attention per hop"
    )
    header = (
        f"{'':<6} {'last 1':>7} {f'last {recent}':>8} "
        f"{f'{recent + 1}-{memory}':>8} {'mean distance':>14} "
        f"{'most weighed':>13}"
    )
    print(header)
    for hop, row in enumerate(by_distance, 1):
        mean_distance = float((row * distances).sum())
        print(
            f"hop {hop:<2} {row[0]:>7.1%} {row[:recent].sum():>8.1%} "
            f"{row[recent:].sum():>8.1%} {mean_distance:>14.1f} "
            f"{int(np.argmax(row)) + 1:>13}"
        )


if __name__ == "__main__":
    main()
