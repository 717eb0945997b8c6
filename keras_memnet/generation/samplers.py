"""Sampler names for `generate`, mapped onto keras-hub samplers."""

import keras_hub

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
    if not isinstance(temperature, (int, float)) or not temperature > 0:
        raise ValueError(
            "`temperature` must be a number > 0. "
            f"Received: temperature={temperature!r}"
        )
    if sampler == "greedy":
        return keras_hub.samplers.GreedySampler(temperature=temperature)
    if sampler == "random":
        return keras_hub.samplers.RandomSampler(
            seed=seed, temperature=temperature
        )
    if sampler == "top_k":
        if not isinstance(top_k, int) or top_k < 1:
            raise ValueError(
                f"`top_k` must be an integer >= 1. Received: top_k={top_k!r}"
            )
        return keras_hub.samplers.TopKSampler(
            k=top_k, seed=seed, temperature=temperature
        )
    if sampler == "top_p":
        if not isinstance(top_p, (int, float)) or not 0 < top_p <= 1:
            raise ValueError(
                f"`top_p` must be in (0, 1]. Received: top_p={top_p!r}"
            )
        return keras_hub.samplers.TopPSampler(
            p=top_p, seed=seed, temperature=temperature
        )
    if not isinstance(num_beams, int) or num_beams < 1:
        raise ValueError(
            "`num_beams` must be an integer >= 1. "
            f"Received: num_beams={num_beams!r}"
        )
    return keras_hub.samplers.BeamSampler(
        num_beams=num_beams, temperature=temperature
    )
