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
