"""What the tests of the exported signatures share: hypothesis settings (issue #17) and a
serving process that cannot import this project."""

import json
import os
import subprocess
import sys

from hypothesis import HealthCheck, settings

SECONDS_PER_CALL = 60.0  # generous: two loaded cores shared by several test runs
# Few examples, derandomized: the default test run stays fast and every CI run tries the same.
SETTINGS = settings(max_examples=12, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


# A fresh interpreter in isolated mode that cannot import seqapps or apps: what a serving
# process that has only TensorFlow (and the op libraries it imports) sees.
NO_PROJECT = "import sys, json; sys.modules['seqapps'] = None; sys.modules['apps'] = None\n"


def serving_process(code, *argv, cwd):
    """Runs NO_PROJECT + code with argv in a fresh isolated interpreter, from cwd (outside the
    repository), without PYTHONPATH; returns the CompletedProcess (text, both streams)."""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    env["TF_CPP_MIN_LOG_LEVEL"] = "3"
    return subprocess.run([sys.executable, "-I", "-c", NO_PROJECT + code, *map(str, argv)],
                          capture_output=True, text=True, cwd=cwd, env=env)


def served_answer(proc):
    """The JSON a serving_process printed last, after checking it ran and loaded quietly: an
    export is traced forward-only, so it carries no custom-gradient function and TF logs no
    absl warning about one on load."""
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "WARNING:absl" not in proc.stderr and "custom gradient" not in proc.stderr, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])
