"""seqapps.export: what makes an export portable, checked without a GPU.

On a GPU our LSTM/GRU layers run Keras' cuDNN kernels, whose ops exist only in GPU builds: an
export that traced them would fail on CPU-only serving. The export helper traces with cuDNN
forbidden. A spy stands in for the GPU path here: a plain call consults it, the export never does.
"""

import keras
import numpy as np
import pytest
import tensorflow as tf

from seqapps import layers
from seqapps.export import export_saved_model

TOKENS = np.array([[3, 4, 5, 0], [6, 7, 0, 0]], dtype="int32")


@pytest.mark.parametrize("layer_cls", [layers.LSTM, layers.GRU], ids=["lstm", "gru"])
def test_export_never_traces_the_cudnn_path(layer_cls, tmp_path, monkeypatch):
    consulted = []

    def cudnn_spy(self, *args, **kwargs):
        consulted.append(True)
        return None  # "cuDNN cannot run here": the layer falls back to the fused path

    monkeypatch.setattr(type(layer_cls(2).cell), "cudnn_recurrence", cudnn_spy)
    keras.utils.set_random_seed(0)
    model = keras.Sequential([
        keras.Input((None,), dtype="int32"),
        keras.layers.Embedding(10, 4, mask_zero=True),
        layer_cls(4),
        keras.layers.Dense(2),
    ])
    expected = model(TOKENS).numpy()
    assert consulted, "a plain call should consult the cuDNN path (it would run on a GPU)"

    consulted.clear()
    serve = tf.function(lambda tokens: model(tokens, training=False))
    out = export_saved_model(
        tmp_path / "export",
        {"serve": (serve, [tf.TensorSpec([None, None], tf.int32)])},
        track=[model],
    )
    assert consulted == []
    assert b"Cudnn" not in (out / "saved_model.pb").read_bytes()
    restored = tf.saved_model.load(str(out))
    np.testing.assert_allclose(restored.serve(tf.constant(TOKENS)), expected, atol=1e-5)


# --- issue #17: quiet exports, a clear error for a file path -----------------------------

_LOAD_AND_SERVE = """
import json, sys
import numpy as np
import tensorflow as tf
restored = tf.saved_model.load(sys.argv[1])
tokens = tf.constant(json.loads(sys.argv[2]), tf.int32)
print(json.dumps(np.asarray(restored.serve(tokens)).tolist()))
"""


def _all_fused_layers_model():
    keras.utils.set_random_seed(0)
    inp = keras.Input((None,), dtype="int32")
    h = keras.layers.Embedding(10, 4, mask_zero=True)(inp)
    h = layers.LSTM(5, return_sequences=True)(h)
    h = layers.GRU(5, return_sequences=True)(h)
    h = keras.layers.Bidirectional(layers.SimpleRNN(3, return_sequences=True))(h)
    h = keras.layers.Bidirectional(layers.LSTM(3))(h)
    return keras.Model(inp, keras.layers.Dense(2)(h))


def test_export_loads_without_warnings_in_a_fresh_process(tmp_path):
    """No custom-gradient function in the SavedModel: loading prints no warning, and the
    loaded graph answers what the in-process model answers."""
    import json
    import subprocess
    import sys

    model = _all_fused_layers_model()
    expected = model(TOKENS).numpy()
    serve = tf.function(lambda tokens: model(tokens, training=False))
    out = export_saved_model(
        tmp_path / "export",
        {"serve": (serve, [tf.TensorSpec([None, None], tf.int32)])},
        track=[model],
    )
    assert b"internal_grad_fn" not in (out / "saved_model.pb").read_bytes()
    done = subprocess.run(
        [sys.executable, "-c", _LOAD_AND_SERVE, str(out), json.dumps(TOKENS.tolist())],
        capture_output=True, text=True, timeout=300,
        env={**__import__("os").environ, "TF_CPP_MIN_LOG_LEVEL": "2"},
    )
    assert done.returncode == 0, done.stderr
    assert "WARNING:absl" not in done.stderr, done.stderr
    assert "custom gradient" not in done.stderr, done.stderr
    np.testing.assert_allclose(json.loads(done.stdout.strip().splitlines()[-1]), expected,
                               atol=1e-5)


def test_export_to_a_file_path_is_a_clear_error_before_tracing(tmp_path):
    path = tmp_path / "model.txt"
    path.write_text("not a folder\n")
    traced = []

    def fn(tokens):
        traced.append(True)
        return tokens

    for target in (path, path / "sub"):
        with pytest.raises(ValueError, match="is a file, not a folder") as err:
            export_saved_model(target, {"serve": (fn, [tf.TensorSpec([None], tf.int32)])})
        assert str(path) in str(err.value)
    assert traced == []
    assert path.read_text() == "not a folder\n"
