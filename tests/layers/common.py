"""Helpers shared by the layer tests: the layer kinds, weight randomisation, comparisons."""

import keras
import numpy as np

from seqapps import layers as ours

from . import numpy_reference as npref

# name -> (our layer class, Keras layer class, extra constructor kwargs, numpy kind)
KINDS = {
    "simple_rnn": (ours.SimpleRNN, keras.layers.SimpleRNN, {}, "simple_rnn"),
    "lstm": (ours.LSTM, keras.layers.LSTM, {}, "lstm"),
    "gru": (ours.GRU, keras.layers.GRU, {"reset_after": True}, "gru"),
    "gru_reset_before": (ours.GRU, keras.layers.GRU, {"reset_after": False}, "gru"),
}
KIND_NAMES = list(KINDS)
IMPLS = ["fused", "reference"]

CELLS = {
    "simple_rnn": (ours.SimpleRNNCell, keras.layers.SimpleRNNCell, {}),
    "lstm": (ours.LSTMCell, keras.layers.LSTMCell, {}),
    "gru": (ours.GRUCell, keras.layers.GRUCell, {"reset_after": True}),
    "gru_reset_before": (ours.GRUCell, keras.layers.GRUCell, {"reset_after": False}),
}

ATOL = 1e-5
RTOL = 1e-5


def num_states(kind):
    return 2 if kind == "lstm" else 1


def reset_after(kind):
    return KINDS[kind][2].get("reset_after", True)


def random_weights(layer, rng, scale=0.5):
    """Overwrites every weight of `layer` with N(0, scale^2) values (biases non-zero)."""
    new = [rng.normal(0.0, scale, size=w.shape).astype(w.dtype) for w in layer.get_weights()]
    layer.set_weights(new)
    return new


def make_ours(kind, units, implementation="fused", **kwargs):
    cls, _, extra, _ = KINDS[kind]
    return cls(units, implementation=implementation, **{**extra, **kwargs})


def make_keras(kind, units, **kwargs):
    _, cls, extra, _ = KINDS[kind]
    return cls(units, **{**extra, **kwargs})


def numpy_run(kind, x, weights, **kwargs):
    extra = {"reset_after": reset_after(kind)} if KINDS[kind][3] == "gru" else {}
    return npref.run_sequence(KINDS[kind][3], x, weights, **extra, **kwargs)


def assert_close(actual, expected, atol=ATOL, rtol=RTOL, msg=""):
    np.testing.assert_allclose(
        np.asarray(actual), np.asarray(expected), atol=atol, rtol=rtol, err_msg=msg
    )


def as_list(out):
    return list(out) if isinstance(out, (list, tuple)) else [out]


def padded_mask(lengths, steps, pre=False):
    """[B, T] boolean mask for rows of the given real lengths (post- or pre-padding)."""
    idx = np.arange(steps)[None, :]
    lengths = np.asarray(lengths)[:, None]
    return (idx >= steps - lengths) if pre else (idx < lengths)
