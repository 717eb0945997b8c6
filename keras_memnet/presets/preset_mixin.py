"""`from_preset` and `save_to_preset` as model methods, as in keras-hub."""

from keras_memnet.presets.preset_io import load_preset
from keras_memnet.presets.preset_io import save_to_preset


class PresetMixin:
    """Adds `from_preset` and `save_to_preset` to a keras-memnet model.

    Put it before `keras.Model` among the bases:
    `class MemN2NLM(PresetMixin, keras.Model)`.

    Example:

    ```python
    from keras_memnet.models import MemN2NLM

    model = MemN2NLM.from_preset("memn2n_ptb_paper")
    model.save_to_preset("/tmp/my_ptb_preset", overwrite=True)
    model = MemN2NLM.from_preset("/tmp/my_ptb_preset")
    ```
    """

    @classmethod
    def from_preset(
        cls,
        preset,
        load_weights=True,
        dtype=None,
        file_hash=None,
        cache_dir=None,
    ):
        """Loads a model of this class (or a subclass) from a preset.

        Args:
            preset: str or path. A shipped preset name
                (`keras_memnet.presets.list_presets()`), a local preset
                directory, or the `http(s)://` or `file://` URL of a
                `.tar.gz` or `.zip` archive of one (with `file_hash`).
            load_weights: bool. `False` leaves the weights random.
            dtype: `None` or a dtype policy name, e.g. `"bfloat16"`.
            file_hash: str, the sha256 of a URL preset's archive.
            cache_dir: str or `None`, where a URL preset is downloaded.

        Returns:
            The model. `ValueError` if the preset holds another class.
        """
        return load_preset(
            preset,
            cls=cls,
            load_weights=load_weights,
            dtype=dtype,
            file_hash=file_hash,
            cache_dir=cache_dir,
        )

    def save_to_preset(
        self,
        preset_dir,
        overwrite=False,
        weights_dtype=None,
        metadata=None,
        include_weights=True,
    ):
        """Saves the model as a preset directory.

        See `keras_memnet.presets.save_to_preset` for the layout.

        Args:
            preset_dir: str or path, a new or empty directory (or an
                existing preset with `overwrite=True`).
            overwrite: bool. Replace an existing preset.
            weights_dtype: `None`, `"float32"`, `"float16"` or
                `"bfloat16"`, the dtype of the stored weights.
            metadata: dict or `None`, facts for `metadata.json`.
            include_weights: bool. `False` saves the configuration only.
        """
        save_to_preset(
            self,
            preset_dir,
            overwrite=overwrite,
            weights_dtype=weights_dtype,
            metadata=metadata,
            include_weights=include_weights,
        )
