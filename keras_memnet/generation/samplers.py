"""Sampler names for `generate`, mapped onto keras-hub samplers."""

import keras_hub

from keras_memnet.utils.arguments import check_float
from keras_memnet.utils.arguments import check_int

SAMPLER_NAMES = ("greedy", "random", "top_k", "top_p", "beam")


def get_sampler(
    sampler="greedy",
    temperature=1.0,
    top_k=10,
    top_p=0.9,
    num_beams=5,
    seed=None,
):
    """Returns a keras-hub sampler for a name, or the sampler given.

    Args:
        sampler: one of `"greedy"` (the most likely token, the study's "ML"),
            `"random"` (a draw from the full distribution, the study's "RC"),
            `"top_k"`, `"top_p"`, `"beam"`, or a `keras_hub.samplers.Sampler`
            instance, returned unchanged.
        temperature: float > 0. Logits are divided by it before the softmax.
        top_k: int >= 1, for `"top_k"`.
        top_p: float in (0, 1], for `"top_p"`.
        num_beams: int >= 1, for `"beam"`.
        seed: int or `None`, for the random samplers.

    Example:

    ```python
    from keras_memnet.generation.samplers import get_sampler

    sampler = get_sampler("top_k", top_k=5, seed=1)
    ```
    """
    if isinstance(sampler, keras_hub.samplers.Sampler):
        return sampler
    if sampler not in SAMPLER_NAMES:
        raise ValueError(
            f"Unknown `sampler` {sampler!r}. Use one of {SAMPLER_NAMES} or a "
            "`keras_hub.samplers.Sampler` instance."
        )
    temperature = check_float(
        "temperature", temperature, minimum=0, min_inclusive=False
    )
    if sampler == "greedy":
        return keras_hub.samplers.GreedySampler(temperature=temperature)
    if sampler == "random":
        return keras_hub.samplers.RandomSampler(
            seed=seed, temperature=temperature
        )
    if sampler == "top_k":
        return keras_hub.samplers.TopKSampler(
            k=check_int("top_k", top_k, minimum=1),
            seed=seed,
            temperature=temperature,
        )
    if sampler == "top_p":
        return keras_hub.samplers.TopPSampler(
            p=check_float(
                "top_p", top_p, minimum=0, maximum=1, min_inclusive=False
            ),
            seed=seed,
            temperature=temperature,
        )
    return keras_hub.samplers.BeamSampler(
        num_beams=check_int("num_beams", num_beams, minimum=1),
        temperature=temperature,
    )
