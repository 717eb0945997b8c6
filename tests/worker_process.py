"""Running a test's worker script in a fresh Python process."""

import subprocess
import sys

# Once in a few dozen runs TensorFlow's runtime has died of a signal
# (a segmentation fault, or an abort on heap corruption) under
# MirroredStrategy on logical CPUs, never on JAX and never with a Python
# error. A run killed by a signal is tried again, up to this many times
# in all; a run that fails in any other way is not.
ATTEMPTS = 3


def run_worker_process(script, args, env, timeout):
    """Runs `python script *args`; returns the `CompletedProcess`.

    Asserts that it exited with 0, showing the end of its stderr if not.
    """
    for _ in range(ATTEMPTS):
        result = subprocess.run(
            [sys.executable, str(script), *map(str, args)],
            env=env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
        if result.returncode >= 0:
            break
    assert result.returncode == 0, result.stderr[-3000:]
    return result
