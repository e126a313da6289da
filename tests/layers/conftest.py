"""Shared fixtures for the seqapps.layers tests (quiet TF logs, fresh Keras state)."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import pytest  # noqa: E402


@pytest.fixture(autouse=True)
def _fresh_keras_state():
    keras.backend.clear_session(free_memory=False)  # gc.collect() per test is too slow
    keras.utils.set_random_seed(1234)
    yield
