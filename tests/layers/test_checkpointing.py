"""`checkpoint_every=K` on the layers (issue #18): the same outputs, states and gradients as
Keras' built-in layers with the same weights (so the same as our default path), in a model
file and in a config; bad values are refused."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from .common import KIND_NAMES, as_list, assert_close, make_keras, make_ours, num_states, random_weights

B, T, D, H = 3, 11, 4, 5
MASK = np.array([[1] * 11, [1] * 6 + [0] * 5, [0, 0] + [1] * 9], dtype=bool)


def _grads(layer, x, mask, init, proj):
    x, init = tf.constant(x), [tf.constant(s) for s in init]
    with tf.GradientTape() as tape:
        tape.watch([x, *init])
        outs = as_list(layer(x, mask=mask, initial_state=init))
        loss = sum(tf.reduce_sum(o * p) for o, p in zip(outs, proj))
    return outs, tape.gradient(loss, [x, *init, *layer.trainable_weights])


@pytest.mark.parametrize("every", [1, 4, 11, 50])
@pytest.mark.parametrize("go_backwards", [False, True], ids=["forwards", "backwards"])
@pytest.mark.parametrize("kind", KIND_NAMES)
def test_checkpointed_gradients_equal_keras(kind, go_backwards, every):
    rng = np.random.default_rng(every)
    opts = dict(return_sequences=True, return_state=True, go_backwards=go_backwards)
    reference = make_keras(kind, H, **opts)
    layer = make_ours(kind, H, checkpoint_every=every, **opts)
    for model in (reference, layer):
        model.build((None, None, D))
    random_weights(reference, rng)
    layer.set_weights(reference.get_weights())
    x = rng.normal(size=(B, T, D)).astype("float32")
    init = [rng.normal(size=(B, H)).astype("float32") for _ in range(num_states(kind))]
    proj = [rng.normal(size=o.shape).astype("float32")
            for o in as_list(reference(x, mask=MASK, initial_state=init))]
    outs_o, grads_o = _grads(layer, x, MASK, init, proj)
    outs_k, grads_k = _grads(reference, x, MASK, init, proj)
    for a, b in zip(outs_o, outs_k):
        assert_close(a, b)
    for i, (a, b) in enumerate(zip(grads_o, grads_k)):
        assert a is not None, i
        assert_close(a, b, atol=2e-5, rtol=2e-5, msg=f"gradient {i}")


def test_checkpointed_bidirectional_trains_like_the_default_path():
    """One optimizer step of a masked Bidirectional LSTM model: same weights after it."""
    def model(every):
        keras.utils.set_random_seed(3)
        inp = keras.Input((None,), dtype="int32")
        h = keras.layers.Embedding(20, 4, mask_zero=True)(inp)
        h = keras.layers.Bidirectional(make_ours("lstm", 6, checkpoint_every=every))(h)
        m = keras.Model(inp, keras.layers.Dense(2)(h))
        m.compile(optimizer=keras.optimizers.SGD(0.5), loss="sparse_categorical_crossentropy")
        return m

    tokens = np.array([[3, 4, 5, 6, 7, 8, 9], [1, 2, 3, 0, 0, 0, 0]], dtype="int32")
    labels = np.array([0, 1])
    plain, checkpointed = model(None), model(3)
    for m in (plain, checkpointed):
        m.train_on_batch(tokens, labels)
    for a, b in zip(plain.get_weights(), checkpointed.get_weights()):
        assert_close(a, b, atol=1e-6)


def test_checkpoint_every_survives_config_and_model_files(tmp_path):
    layer = make_ours("gru", 3, checkpoint_every=7)
    assert layer.get_config()["checkpoint_every"] == 7
    assert type(layer).from_config(layer.get_config()).checkpoint_every == 7
    model = keras.Sequential([keras.Input((None, 2)), layer])
    model.save(tmp_path / "m.keras")
    again = keras.models.load_model(tmp_path / "m.keras")
    assert again.layers[0].checkpoint_every == 7
    x = np.random.default_rng(0).normal(size=(2, 9, 2)).astype("float32")
    assert_close(again(x), model(x))


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "4"])
def test_bad_checkpoint_every_is_refused(bad):
    with pytest.raises(ValueError, match="checkpoint_every must be None or a positive integer"):
        make_ours("lstm", 3, checkpoint_every=bad)
