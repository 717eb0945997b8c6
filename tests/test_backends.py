import os
import subprocess
import sys
from pathlib import Path

import pytest

CHECK = Path(__file__).with_name("backend_check.py")


@pytest.mark.parametrize("backend", ["jax", "torch"])
def test_layers_model_callbacks_and_generation_on_backend(backend):
    pytest.importorskip(backend)
    env = dict(os.environ, KERAS_BACKEND=backend)
    result = subprocess.run(
        [sys.executable, str(CHECK)], env=env, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert f"backend check passed: {backend}" in result.stdout
