"""One place to copy Keras initializers."""

import keras


def clone_initializer(initializer, seed_offset=0):
    """Returns a fresh copy of a Keras initializer, for one weight.

    Keras random initializers return the same values on every call, both
    when unseeded and when seeded with an int, so one instance shared by
    several weights would give equally shaped weights identical values. The
    copy is rebuilt from the config: an unseeded initializer draws a new
    default seed, and an int seed is shifted by `seed_offset`, which keeps
    seeded models reproducible while their weights still differ.

    This is `keras_hub`'s (private) `clone_initializer`, plus the seed
    offset.

    Args:
        initializer: a `keras.initializers.Initializer`, or anything
            `keras.initializers.get` accepts (a name or a config dict).
        seed_offset: int. Added to an int seed; give each weight built from
            one seeded initializer its own offset. Defaults to `0`.

    Example:

    >>> import keras
    >>> base = keras.initializers.RandomNormal(seed=1)
    >>> first = clone_initializer(base, seed_offset=0)
    >>> second = clone_initializer(base, seed_offset=1)
    >>> first.seed, second.seed
    (1, 2)
    """
    initializer = keras.initializers.get(initializer)
    config = initializer.get_config()
    seed = config.get("seed")
    if seed_offset and isinstance(seed, int) and not isinstance(seed, bool):
        config["seed"] = seed + seed_offset
    return initializer.__class__.from_config(config)
