"""Writing a preset's `model.weights.h5`: model weights only, optionally in
half precision."""

import h5py
import ml_dtypes
import numpy as np

WEIGHTS_DTYPES = ("float32", "float16", "bfloat16")
# Top-level groups of a `save_weights` file that are not the model's
# weights: a compiled model also saves its optimizer's slots there.
SKIPPED_GROUPS = ("optimizer",)


def copy_weights_file(source_path, target_path, dtype=None):
    """Copies a Keras `.weights.h5` file, leaving out the optimizer state.

    With `dtype`, every floating-point weight is stored in that dtype:
    `"float16"` or `"bfloat16"` halve the file (a weight with values
    beyond the dtype's range keeps its own dtype; integer weights, such as
    those of an int8-quantized layer, are copied unchanged). bfloat16
    weights are stored as Keras stores them (2-byte opaque values with a
    `dtype` attribute), so `model.load_weights` reads them back, and Keras casts
    each weight to its variable's dtype when loading, on every backend.

    Args:
        source_path: str, a file written by `model.save_weights`.
        target_path: str, the file to write.
        dtype: `None` (keep each weight's dtype), `"float32"`, `"float16"`
            or `"bfloat16"`.

    Example:

    ```python
    from keras_memnet.models import MemN2NLM
    from keras_memnet.presets.weights_file import copy_weights_file

    model = MemN2NLM(
        vocabulary_size=100, hops=1, memory_size=4, embedding_dim=16
    )
    model.build((None, 4))
    model.save_weights("/tmp/full.weights.h5")
    copy_weights_file(
        "/tmp/full.weights.h5", "/tmp/half.weights.h5", dtype="float16"
    )
    model.load_weights("/tmp/half.weights.h5")
    ```
    """
    with (
        h5py.File(source_path, "r") as source,
        h5py.File(target_path, "w") as target,
    ):
        _copy_attributes(source, target)
        for name, item in source.items():
            if name in SKIPPED_GROUPS:
                continue
            _copy_item(item, target, name, dtype)


def _copy_item(item, target_group, name, dtype):
    if isinstance(item, h5py.Group):
        group = target_group.create_group(name)
        _copy_attributes(item, group)
        for child_name, child in item.items():
            _copy_item(child, group, child_name, dtype)
        return
    if not isinstance(item, h5py.Dataset):
        raise ValueError(
            f"Unexpected {type(item).__name__} {item.name!r} in a Keras "
            "weights file: only groups and datasets are copied."
        )
    stored_as_bfloat16 = item.attrs.get("dtype") == "bfloat16"
    value = item[()]
    if stored_as_bfloat16:
        value = np.asarray(value).view(ml_dtypes.bfloat16)
    is_float = stored_as_bfloat16 or np.issubdtype(
        np.asarray(value).dtype, np.floating
    )
    if dtype is not None and is_float:
        with np.errstate(over="ignore", invalid="ignore"):
            converted = np.asarray(value).astype(_numpy_dtype(dtype))
        # A weight that the smaller dtype cannot hold (such as the
        # quantization scale of an all-zero row, 127 / epsilon) keeps its
        # own dtype rather than turning into infinity.
        if np.array_equal(
            np.isfinite(converted), np.isfinite(np.asarray(value))
        ):
            value = converted
    dataset = target_group.create_dataset(name, data=value)
    attributes = {k: v for k, v in item.attrs.items() if k != "dtype"}
    if np.asarray(value).dtype == ml_dtypes.bfloat16:
        # How Keras marks bfloat16, which HDF5 has no type for.
        attributes["dtype"] = "bfloat16"
    for key, attribute in attributes.items():
        dataset.attrs[key] = attribute


def _copy_attributes(source, target):
    for key, value in source.attrs.items():
        target.attrs[key] = value


def _numpy_dtype(dtype):
    return ml_dtypes.bfloat16 if dtype == "bfloat16" else np.dtype(dtype)
