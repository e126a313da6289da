"""Saving/loading, configs, SavedModel export, dropout, training with fit and XLA."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from seqapps import layers as ours
from seqapps.layers import compiled_loops

from .common import (
    CELLS, KIND_NAMES, KINDS, assert_close, make_keras, make_ours, random_weights,
)

# Keras' own saving/fit code converts variables with np.array(...): a NumPy 2 deprecation
# notice from Keras internals, not from seqapps.
pytestmark = pytest.mark.filterwarnings(
    "ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"
)

B, T, D, H = 4, 5, 3, 4
TOKENS = np.array(
    [[3, 1, 4, 1, 5], [2, 6, 5, 0, 0], [7, 0, 0, 0, 0], [0, 0, 2, 7, 1]], dtype="int32"
)


def _functional_model(impl="auto"):
    inp = keras.Input((T, D))
    h = ours.LSTM(H, return_sequences=True, implementation=impl)(inp)
    h = ours.GRU(H, return_sequences=True, reset_after=False, implementation=impl)(h)
    h = ours.GRU(H, return_sequences=True, go_backwards=True, implementation=impl)(h)
    h = ours.SimpleRNN(H, implementation=impl)(h)
    return keras.Model(inp, keras.layers.Dense(1)(h))


def _sequential_model(impl="auto"):
    return keras.Sequential(
        [
            keras.Input((None,), dtype="int32"),
            keras.layers.Embedding(9, D, mask_zero=True),
            keras.layers.Bidirectional(ours.LSTM(H, return_sequences=True, implementation=impl)),
            ours.GRU(H, implementation=impl),
            keras.layers.Dense(2),
        ]
    )


def _x(rng):
    return rng.normal(size=(B, T, D)).astype("float32")


# --- .keras round trips ----------------------------------------------------------------


@pytest.mark.parametrize("impl", ["auto", "reference"])
def test_keras_file_round_trip_functional(tmp_path, impl):
    rng = np.random.default_rng(0)
    model = _functional_model(impl)
    random_weights(model, rng)
    x = _x(rng)
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    for a, b in zip(loaded.layers[1:-1], model.layers[1:-1]):
        assert a.implementation == b.implementation == impl
        assert a.get_config() == b.get_config()
    assert_close(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)
    assert_close(loaded(x), model(x), atol=1e-6)


def test_keras_file_round_trip_sequential_masked(tmp_path):
    rng = np.random.default_rng(1)
    model = _sequential_model()
    random_weights(model, rng)
    path = tmp_path / "seq.keras"
    model.save(path)
    loaded = keras.models.load_model(path)
    bidi = loaded.layers[1]
    assert isinstance(bidi.forward_layer, ours.LSTM)
    assert isinstance(bidi.backward_layer, ours.LSTM)
    assert isinstance(loaded.layers[2], ours.GRU)
    assert_close(loaded(TOKENS), model(TOKENS), atol=1e-6)
    assert_close(loaded.predict(TOKENS, verbose=0), model.predict(TOKENS, verbose=0), atol=1e-6)


def test_sequential_masked_matches_keras_builtin():
    """The same Sequential written with Keras' layers gives the same predictions."""
    rng = np.random.default_rng(2)
    model = _sequential_model()
    reference = keras.Sequential(
        [
            keras.Input((None,), dtype="int32"),
            keras.layers.Embedding(9, D, mask_zero=True),
            keras.layers.Bidirectional(keras.layers.LSTM(H, return_sequences=True)),
            keras.layers.GRU(H),
            keras.layers.Dense(2),
        ]
    )
    random_weights(reference, rng)
    model.set_weights(reference.get_weights())
    assert_close(model(TOKENS), reference(TOKENS))


# --- configs --------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_get_config_from_config(kind):
    rng = np.random.default_rng(3)
    kwargs = dict(
        return_sequences=True, return_state=True, go_backwards=True, use_bias=True,
        dropout=0.1, recurrent_dropout=0.2, kernel_regularizer="l2",
        activity_regularizer="l1", bias_initializer="ones", seed=5,
    )
    if kind == "lstm":
        kwargs["unit_forget_bias"] = False
    layer = make_ours(kind, H, "reference", **kwargs)
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    assert clone.implementation == "reference"
    for name in ("units", "dropout", "recurrent_dropout", "return_sequences", "go_backwards"):
        assert getattr(clone, name) == getattr(layer, name)
    assert clone.activity_regularizer is not None
    if kind.startswith("gru"):
        assert clone.reset_after == KINDS[kind][2]["reset_after"]
    x = _x(rng)
    layer(x)
    clone(x)
    random_weights(layer, rng)
    clone.set_weights(layer.get_weights())
    for a, b in zip(layer(x), clone(x)):
        assert_close(a, b, atol=0, rtol=0)
    # Serialized through Keras' generic machinery, too.
    again = keras.saving.deserialize_keras_object(keras.saving.serialize_keras_object(layer))
    assert type(again) is type(layer) and again.get_config() == config


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_cell_config_round_trip_and_rnn_wrapper(kind):
    """Our cells work inside keras.layers.RNN and serialize there."""
    rng = np.random.default_rng(4)
    cls, keras_cls, extra = CELLS[kind]
    cell = cls(H, **extra)
    assert cls.from_config(cell.get_config()).get_config() == cell.get_config()
    rnn = keras.layers.RNN(cell, return_sequences=True)
    krnn = keras.layers.RNN(keras_cls(H, **extra), return_sequences=True)
    x = _x(rng)
    krnn(x)
    rnn(x)
    random_weights(krnn, rng)
    rnn.set_weights(krnn.get_weights())
    assert_close(rnn(x), krnn(x))
    clone = keras.layers.RNN.from_config(rnn.get_config())
    assert type(clone.cell) is cls


# --- SavedModel -----------------------------------------------------------------------


def _masked_export_model():
    inp = keras.Input((T,), dtype="int32")
    h = keras.layers.Embedding(9, D, mask_zero=True)(inp)
    h = keras.layers.Bidirectional(ours.LSTM(H, return_sequences=True))(h)
    h = ours.GRU(H, return_sequences=True, reset_after=False)(h)
    h = ours.SimpleRNN(H)(h)
    return keras.Model(inp, keras.layers.Dense(2)(h))


@pytest.mark.parametrize("xla_loops", [True, False], ids=["xla_loops", "plain_loops"])
def test_model_export_saved_model(tmp_path, xla_loops):
    rng = np.random.default_rng(5)
    model = _masked_export_model()
    random_weights(model, rng)
    expected = model(TOKENS).numpy()
    with compiled_loops(xla_loops):
        model.export(str(tmp_path / "export"), verbose=False)
    restored = tf.saved_model.load(str(tmp_path / "export"))
    assert_close(restored.serve(tf.constant(TOKENS)), expected)
    assert_close(restored.serve(tf.constant(TOKENS[:2])), expected[:2])


def test_tf_saved_model_save(tmp_path):
    rng = np.random.default_rng(6)
    model = _functional_model()
    random_weights(model, rng)
    x = _x(rng)
    expected = model(x).numpy()
    serve = tf.function(
        lambda x: model(x, training=False),
        input_signature=[tf.TensorSpec((None, T, D), tf.float32)],
    )
    tf.saved_model.save(model, str(tmp_path / "sm"), signatures=serve)
    restored = tf.saved_model.load(str(tmp_path / "sm"))
    out = restored.signatures["serving_default"](tf.constant(x))
    (value,) = out.values()
    assert_close(value, expected)


# --- subclassed model ------------------------------------------------------------------


class SubclassedRNN(keras.Model):
    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.embed = keras.layers.Embedding(9, D, mask_zero=True)
        self.lstm = ours.LSTM(H, return_sequences=True, return_state=True)
        self.gru = ours.GRU(H, reset_after=False)
        self.rnn = ours.SimpleRNN(H, return_sequences=True)
        self.head = keras.layers.Dense(1)

    def call(self, tokens, training=False):
        h = self.embed(tokens)
        mask = self.embed.compute_mask(tokens)
        seq, h_state, c_state = self.lstm(h, mask=mask, training=training)
        seq = self.rnn(seq, mask=mask, training=training)
        out = self.gru(seq, mask=mask, initial_state=[h_state], training=training)
        return self.head(out)


def test_subclassed_model(tmp_path):
    rng = np.random.default_rng(7)
    model = SubclassedRNN()
    model(TOKENS)
    random_weights(model, rng)
    # The same computation written out by hand with Keras' built-ins.
    emb = model.embed(TOKENS)
    mask = TOKENS != 0
    k_lstm = keras.layers.LSTM(H, return_sequences=True, return_state=True)
    k_gru = keras.layers.GRU(H, reset_after=False)
    k_rnn = keras.layers.SimpleRNN(H, return_sequences=True)
    seq, h_state, _ = k_lstm(emb, mask=mask)
    k_lstm.set_weights(model.lstm.get_weights())
    k_rnn(seq)
    k_rnn.set_weights(model.rnn.get_weights())
    k_gru(seq)
    k_gru.set_weights(model.gru.get_weights())
    seq, h_state, _ = k_lstm(emb, mask=mask)
    expected = model.head(k_gru(k_rnn(seq, mask=mask), mask=mask, initial_state=[h_state]))
    assert_close(model(TOKENS), expected)

    path = tmp_path / "sub.weights.h5"
    model.save_weights(path)
    fresh = SubclassedRNN()
    fresh(TOKENS)
    fresh.load_weights(path)
    assert_close(fresh(TOKENS), model(TOKENS), atol=0, rtol=0)

    model.compile(optimizer="adam", loss="mse")
    model.fit(TOKENS, np.ones((B, 1), "float32"), epochs=1, verbose=0)


# --- dropout -------------------------------------------------------------------------


@pytest.mark.parametrize(
    "impl,dropout,recurrent_dropout",
    [("fused", 0.4, 0.0), ("auto", 0.3, 0.3), ("reference", 0.3, 0.3)],
)
@pytest.mark.parametrize("kind", KIND_NAMES)
def test_dropout_training_and_inference(kind, impl, dropout, recurrent_dropout):
    rng = np.random.default_rng(8)
    layer = make_ours(
        kind, H, impl, dropout=dropout, recurrent_dropout=recurrent_dropout,
        return_sequences=True, seed=3,
    )
    plain = make_ours(kind, H, impl, return_sequences=True)
    x = _x(rng)
    layer(x)
    plain(x)
    random_weights(layer, rng)
    plain.set_weights(layer.get_weights())

    infer = layer(x, training=False)
    assert_close(layer(x, training=False), infer, atol=0, rtol=0)
    assert_close(infer, plain(x))
    assert_close(layer(x), infer, atol=0, rtol=0)  # training defaults to False

    train = layer(x, training=True).numpy()
    assert train.shape == (B, T, H) and np.all(np.isfinite(train))
    assert not np.allclose(train, infer)
    # A fresh mask per call.
    assert not np.allclose(layer(x, training=True), train)


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_fused_refuses_recurrent_dropout_in_training(kind):
    layer = make_ours(kind, H, "fused", recurrent_dropout=0.3)
    x = np.zeros((B, T, D), "float32")
    layer(x, training=False)  # inference needs no recurrent mask: fused is fine
    with pytest.raises(ValueError):
        layer(x, training=True)


def _fix_masks(cell, input_mask, state_mask):
    """Makes the cell's 'random' dropout masks the given fixed arrays."""
    count = getattr(cell, "dropout_mask_count", None)

    def create(step_input, rate):
        mask = input_mask if step_input.shape[-1] == input_mask.shape[-1] else state_mask
        mask = tf.constant(mask)
        return mask if count is None else [mask] * count

    cell._create_dropout_mask = create


@pytest.mark.parametrize(
    "impl,recurrent_dropout", [("fused", 0.0), ("reference", 0.0), ("reference", 0.5)]
)
@pytest.mark.parametrize("kind", KIND_NAMES)
def test_dropout_semantics_match_keras_with_fixed_masks(kind, impl, recurrent_dropout):
    """With the same masks, training=True outputs and gradients equal Keras' (same-mask
    variational dropout for inputs and for the recurrent state)."""
    rng = np.random.default_rng(9)
    kw = dict(dropout=0.5, recurrent_dropout=recurrent_dropout, return_sequences=True)
    o, k = make_ours(kind, H, impl, **kw), make_keras(kind, H, **kw)
    x = _x(rng)
    k(x)
    o(x)
    random_weights(k, rng)
    o.set_weights(k.get_weights())
    in_mask = (rng.random((B, D)) > 0.5).astype("float32") * 2.0
    st_mask = (rng.random((B, H)) > 0.5).astype("float32") * 2.0
    _fix_masks(o.cell, in_mask, st_mask)
    _fix_masks(k.cell, in_mask, st_mask)

    def run(layer):
        with tf.GradientTape() as tape:
            out = layer(x, mask=np.array([[1] * T, [1] * T, [1, 1, 0, 0, 0], [0, 1, 1, 1, 1]],
                                         bool), training=True)
            loss = tf.reduce_sum(out * np.linspace(-1, 1, H, dtype="float32"))
        return out, tape.gradient(loss, layer.trainable_weights)

    (out_o, g_o), (out_k, g_k) = run(o), run(k)
    assert_close(out_o, out_k)
    for a, b in zip(g_o, g_k):
        assert_close(a, b)


# --- training ---------------------------------------------------------------------------


def _regression_data(rng, n=16):
    x = rng.normal(size=(n, T, D)).astype("float32")
    y = x.mean(axis=(1, 2))[:, None] * 3.0
    return x, y


def _all_kinds_model(make):
    """One regression model with a branch per layer kind (one compile covers all four)."""
    inp = keras.Input((T, D))
    branches = [make(kind) for kind in KIND_NAMES]
    h = keras.layers.Concatenate()([layer(inp) for layer in branches])
    return keras.Model(inp, keras.layers.Dense(1)(h)), branches


def _fit_losses(model, rng, jit_compile=False, epochs=3):
    model.compile(optimizer=keras.optimizers.Adam(0.03), loss="mse", jit_compile=jit_compile)
    x, y = _regression_data(rng)
    history = model.fit(x, y, batch_size=len(x), epochs=epochs, shuffle=False, verbose=0)
    return history.history["loss"]


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_fit_loss_decreases(kind):
    rng = np.random.default_rng(10)
    model = keras.Sequential([keras.Input((T, D)), make_ours(kind, H, "auto"),
                              keras.layers.Dense(1)])
    losses = _fit_losses(model, rng)
    assert all(np.isfinite(losses))
    assert losses[-1] < losses[0], losses


def test_fit_reference_and_dropout_runs():
    rng = np.random.default_rng(11)
    model, _ = _all_kinds_model(
        lambda kind: make_ours(kind, H, "auto", dropout=0.1, recurrent_dropout=0.1)
    )
    losses = _fit_losses(model, rng, epochs=2)
    assert all(np.isfinite(losses))
    model, _ = _all_kinds_model(lambda kind: make_ours(kind, H, "reference"))
    losses = _fit_losses(model, rng)
    assert losses[-1] < losses[0], losses


def test_jit_compile_training_step_fused():
    rng = np.random.default_rng(12)
    model, branches = _all_kinds_model(lambda kind: make_ours(kind, H, "fused"))
    before = [layer.get_weights() for layer in branches]
    losses = _fit_losses(model, rng, jit_compile=True)
    assert model.jit_compile is True  # the model did not silently fall back
    assert all(np.isfinite(losses))
    assert losses[-1] < losses[0], losses
    for layer, old in zip(branches, before):  # every layer was trained
        assert not np.allclose(layer.get_weights()[1], old[1]), layer.name
    # Same weights without XLA: same predictions.
    x, _ = _regression_data(rng, n=4)
    assert_close(model.predict(x, verbose=0), model(x))


def test_jit_training_matches_keras_builtin():
    """One XLA-compiled SGD step with our fused LSTM moves the weights like Keras' LSTM."""
    rng = np.random.default_rng(13)
    x, y = _regression_data(rng, n=8)

    def one_step(make):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((T, D)), make(), keras.layers.Dense(1)])
        model.set_weights([w for w in initial])
        model.compile(optimizer=keras.optimizers.SGD(0.1), loss="mse", jit_compile=True)
        model.train_on_batch(x, y)
        return model.get_weights()

    proto = keras.Sequential([keras.Input((T, D)), keras.layers.LSTM(H), keras.layers.Dense(1)])
    initial = random_weights(proto, rng)
    got = one_step(lambda: make_ours("lstm", H, "fused"))
    want = one_step(lambda: make_keras("lstm", H))
    for a, b in zip(got, want):
        assert_close(a, b)
