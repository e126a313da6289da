"""stateful=True: state carried across calls, reset_state(), parity with Keras' stateful layers."""

import keras
import numpy as np
import pytest

from .common import IMPLS, KIND_NAMES, assert_close, make_keras, make_ours, random_weights

B, T, D, H = 3, 6, 2, 4


def _stateful_pair(kind, impl, rng, **kw):
    o = make_ours(kind, H, impl, stateful=True, return_sequences=True, **kw)
    k = make_keras(kind, H, stateful=True, return_sequences=True, **kw)
    k.build((B, None, D))
    o.build((B, None, D))
    random_weights(k, rng)
    o.set_weights(k.get_weights())
    return o, k


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", KIND_NAMES)
def test_halves_equal_whole_and_reset(kind, impl):
    rng = np.random.default_rng(0)
    o, k = _stateful_pair(kind, impl, rng)
    whole_layer = make_ours(kind, H, impl, return_sequences=True, return_state=True)
    whole_layer.build((B, None, D))
    whole_layer.set_weights(o.get_weights())
    x = rng.normal(size=(B, T, D)).astype("float32")
    whole, *final_states = whole_layer(x)

    first, second = o(x[:, : T // 2]), o(x[:, T // 2 :])
    assert_close(np.concatenate([first, second], axis=1), whole)
    for var, want in zip(o.states, final_states):
        assert_close(var.numpy(), want)

    # Keras' stateful layer goes through the same two calls.
    assert_close(first, k(x[:, : T // 2]))
    assert_close(second, k(x[:, T // 2 :]))
    for a, b in zip(o.states, k.states):
        assert_close(a.numpy(), b.numpy())

    o.reset_state()
    for var in o.states:
        assert np.all(var.numpy() == 0.0)
    assert_close(o(x[:, : T // 2]), first)
    o.reset_states()  # Keras' compatibility alias
    assert_close(o(x[:, : T // 2]), first)


@pytest.mark.parametrize("kind", ["lstm", "gru_reset_before"])
def test_stateful_model_predict_on_batch(kind):
    """The state variables are updated from inside a compiled predict function too."""
    rng = np.random.default_rng(1)

    def build(layer):
        return keras.Sequential([keras.Input(batch_shape=(B, None, D)), layer])

    o, k = _stateful_pair(kind, "fused", rng)
    mo, mk = build(o), build(k)
    x = rng.normal(size=(B, T, D)).astype("float32")
    for chunk in (x[:, :2], x[:, 2:5], x[:, 5:]):
        assert_close(mo.predict_on_batch(chunk), mk.predict_on_batch(chunk))
    for a, b in zip(o.states, k.states):
        assert_close(a.numpy(), b.numpy())
    o.reset_state()
    k.reset_state()
    assert_close(mo.predict_on_batch(x[:, :2]), mk.predict_on_batch(x[:, :2]))


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_stateful_with_mask_carries_state(kind):
    rng = np.random.default_rng(2)
    o, k = _stateful_pair(kind, "fused", rng)
    x = rng.normal(size=(B, T, D)).astype("float32")
    mask = np.ones((B, T), bool)
    mask[1, 2:] = False  # row 1 ends early in the first chunk
    for sl in (slice(0, 3), slice(3, T)):
        assert_close(o(x[:, sl], mask=mask[:, sl]), k(x[:, sl], mask=mask[:, sl]))
    for a, b in zip(o.states, k.states):
        assert_close(a.numpy(), b.numpy())


def test_stateful_needs_static_batch():
    layer = make_ours("lstm", H, stateful=True)
    with pytest.raises(ValueError):
        layer.build((None, T, D))
