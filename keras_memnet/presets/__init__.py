"""Presets: models saved in keras-hub's layout, shipped or your own.

- `save_to_preset(model, preset_dir)` writes a preset directory.
- `load_preset(preset)` loads one from a shipped name, a directory or an
  archive URL with its sha256.
- `list_presets()` gives the shipped presets with their metadata.
- `PresetMixin` adds `from_preset` and `save_to_preset` to model classes.

The shipped presets are the directories beside this file.
"""

from keras_memnet.presets.preset_io import load_preset
from keras_memnet.presets.preset_io import save_to_preset
from keras_memnet.presets.preset_location import list_presets
from keras_memnet.presets.preset_mixin import PresetMixin
