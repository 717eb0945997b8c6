"""Where the tests find data that does not ship with the package.

The real corpora (the 12 MB text8 prefix, the English-French pairs) live
outside the repository, in `../shared/data/` beside a development checkout,
or wherever `KERAS_MEMNET_TEST_DATA` points. A user's clone has neither, so
tests that need such a file skip with a reason that names it; every other
test builds its own small files.

The suite runs on every Keras backend (`KERAS_BACKEND=tensorflow`, `jax`,
`torch`; `.ci/run` runs all three). Tests marked `tensorflow_only` need
TensorFlow as the backend (SavedModel export, `tf.GradientTape`,
`tf.distribute`) and are skipped on the others, with a reason. The
package's `tf.data` pipelines feed every backend, so their tests run
everywhere.
"""

import gzip
import importlib.resources
import os
from pathlib import Path

import keras
import pytest

DATA_DIR_VARIABLE = "KERAS_MEMNET_TEST_DATA"
DEFAULT_DATA_DIR = Path(__file__).resolve().parents[2] / "shared" / "data"


def pytest_collection_modifyitems(config, items):
    """Skips the `tensorflow_only` tests on the other backends."""
    backend = keras.config.backend()
    if backend == "tensorflow":
        return
    skip = pytest.mark.skip(
        reason=f"tensorflow_only: needs the TensorFlow backend (SavedModel, "
        f"tf.GradientTape or tf.distribute); KERAS_BACKEND is {backend!r}"
    )
    for item in items:
        if "tensorflow_only" in item.keywords:
            item.add_marker(skip)


def external_data_dir():
    """The folder of the external test corpora (it may not exist)."""
    return Path(os.environ.get(DATA_DIR_VARIABLE) or DEFAULT_DATA_DIR)


def external_data_file(name):
    """Path of an external corpus, or a skip that says how to get it."""
    path = external_data_dir() / name
    if not path.is_file():
        pytest.skip(
            f"needs the real corpus {path}, which does not ship with the "
            f"package: put it there, or set {DATA_DIR_VARIABLE} to the "
            f"folder that holds {name} (see ../shared/data/README.md in "
            "the development checkout)."
        )
    return path


@pytest.fixture(scope="session")
def text8_prefix_path():
    """The first 11,999,999 bytes of text8, gzipped (external)."""
    return external_data_file("text8-head12m.txt.gz")


@pytest.fixture(scope="session")
def text8_prefix_bytes(text8_prefix_path):
    return gzip.decompress(text8_prefix_path.read_bytes())


@pytest.fixture(scope="session")
def text8_head_bytes():
    """The first 1,024,000 bytes of text8, from the package's own sample.

    Tests of parsing, splits and bad input need only a text8-shaped file,
    so they use this and run everywhere.
    """
    resource = importlib.resources.files("keras_memnet.datasets").joinpath(
        "data", "text8_head1024000.txt.gz"
    )
    return gzip.decompress(resource.read_bytes())


@pytest.fixture(scope="session")
def fra_eng_path():
    """18,065 English-French Tatoeba pairs (external)."""
    return external_data_file("fra-eng.txt.gz")
