"""Our layers vs Keras' built-in SimpleRNN/LSTM/GRU with copied weights."""

import keras
import numpy as np
import pytest
import tensorflow as tf

from .common import (
    IMPLS, KIND_NAMES, KINDS, as_list, assert_close, make_keras, make_ours, num_states,
    random_weights,
)

B, T, D, H = 4, 6, 3, 5


def _pair(kind, impl, rng, input_dim=D, units=H, **kwargs):
    """(ours, keras) built on [B, T, input_dim] with the same random weights."""
    k = make_keras(kind, units, **kwargs)
    o = make_ours(kind, units, impl, **kwargs)
    k.build((None, None, input_dim))
    o.build((None, None, input_dim))
    random_weights(k, rng)
    o.set_weights(k.get_weights())
    return o, k


def _x(rng, batch=B, steps=T, dim=D):
    return rng.normal(size=(batch, steps, dim)).astype("float32")


MASK = np.array(
    [[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0], [1, 0, 0, 0, 0, 0], [0, 0, 1, 1, 1, 1]], dtype=bool
)


# --- weights -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_weight_names_and_shapes(kind):
    o, k = _pair(kind, "fused", np.random.default_rng(0))
    assert [w.name for w in o.weights] == [w.name for w in k.weights]
    assert [tuple(w.shape) for w in o.weights] == [tuple(w.shape) for w in k.weights]
    assert [w.name for w in o.trainable_weights] == [w.name for w in k.trainable_weights]
    # Paths differ only by the layer name prefix.
    strip = lambda p: p.split("/", 1)[1]  # noqa: E731
    assert [strip(w.path) for w in o.weights] == [strip(w.path) for w in k.weights]


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_default_initialisation_matches_keras(kind):
    """Same initializers: zero biases (LSTM: unit forget bias), orthogonal recurrent kernel."""
    k = make_keras(kind, H)
    o = make_ours(kind, H)
    k.build((None, None, D))
    o.build((None, None, D))
    ko, kk = k.get_config(), o.get_config()
    for key in ("kernel_initializer", "recurrent_initializer", "bias_initializer"):
        assert ko[key] == kk[key], key
    wo, wk = o.get_weights(), k.get_weights()
    assert_close(wo[2], wk[2], atol=0, rtol=0)  # biases are deterministic
    if kind == "lstm":
        assert_close(wo[2][H : 2 * H], np.ones(H), atol=0, rtol=0)
    rec = wo[1]  # [H, G*H]: orthogonal rows
    assert_close(rec @ rec.T, np.eye(H), atol=1e-5)
    limit = np.sqrt(6.0 / (D + wo[0].shape[1]))  # glorot_uniform
    assert np.abs(wo[0]).max() <= limit and np.abs(wo[0]).max() > 0.3 * limit


# --- forward -------------------------------------------------------------------------


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", KIND_NAMES)
@pytest.mark.parametrize(
    "opts",
    [
        {},
        {"return_sequences": True, "return_state": True, "go_backwards": True},
        {"use_bias": False, "return_state": True},
    ],
    ids=["last", "seq_state_backwards", "nobias_state"],
)
def test_forward(kind, impl, opts):
    rng = np.random.default_rng(1)
    o, k = _pair(kind, impl, rng, **opts)
    x = _x(rng)
    got, want = as_list(o(x)), as_list(k(x))
    assert len(got) == len(want)
    for a, b in zip(got, want):
        assert a.shape == b.shape
        assert_close(a, b)


@pytest.mark.parametrize(
    "go_backwards,zero_output_for_mask", [(False, False), (True, True)],
    ids=["forward", "backwards_zero_output"],
)
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", KIND_NAMES)
def test_explicit_mask(kind, impl, go_backwards, zero_output_for_mask):
    rng = np.random.default_rng(2)
    opts = dict(
        return_sequences=True, return_state=True, go_backwards=go_backwards,
        zero_output_for_mask=zero_output_for_mask,
    )
    o, k = _pair(kind, impl, rng, **opts)
    x = _x(rng)
    for a, b in zip(o(x, mask=MASK), k(x, mask=MASK)):
        assert_close(a, b)


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", KIND_NAMES)
def test_initial_state(kind, impl):
    rng = np.random.default_rng(3)
    o, k = _pair(kind, impl, rng, return_sequences=True, return_state=True)
    x = _x(rng)
    init = [rng.normal(size=(B, H)).astype("float32") for _ in range(num_states(kind))]
    got, want = o(x, initial_state=init, mask=MASK), k(x, initial_state=init, mask=MASK)
    for a, b in zip(got, want):
        assert_close(a, b)
    # The initial state really is used.
    assert not np.allclose(got[0], o(x, mask=MASK)[0])


def _embedding_model(rng, rnn, vocab=9, dim=D):
    inp = keras.Input((None,), dtype="int32")
    emb = keras.layers.Embedding(vocab, dim, mask_zero=True)
    out = rnn(emb(inp))
    model = keras.Model(inp, out)
    emb.set_weights([rng.normal(size=(vocab, dim)).astype("float32")])
    return model


@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", KIND_NAMES)
def test_mask_zero_embedding(kind, impl):
    rng = np.random.default_rng(4)
    tokens = np.array(
        [[3, 1, 4, 1, 5, 8], [2, 6, 5, 0, 0, 0], [7, 0, 0, 0, 0, 0], [0, 0, 0, 2, 7, 1]],
        dtype="int32",
    )
    o, k = _pair(kind, impl, rng, return_sequences=True)
    mo, mk = _embedding_model(rng, o), _embedding_model(rng, k)
    mo.layers[1].set_weights(mk.layers[1].get_weights())
    assert_close(mo(tokens), mk(tokens))
    # Last-output variant, going backwards.
    o2, k2 = _pair(kind, impl, rng, go_backwards=True)
    mo2, mk2 = _embedding_model(rng, o2), _embedding_model(rng, k2)
    mo2.layers[1].set_weights(mk2.layers[1].get_weights())
    assert_close(mo2(tokens), mk2(tokens))


# --- wrappers and stacks -------------------------------------------------------------


@pytest.mark.parametrize("merge_mode,return_sequences", [("concat", False), ("concat", True)])
@pytest.mark.parametrize("impl", IMPLS)
@pytest.mark.parametrize("kind", KIND_NAMES)
def test_bidirectional(kind, impl, merge_mode, return_sequences):
    rng = np.random.default_rng(5)
    o_inner = make_ours(kind, H, impl, return_sequences=return_sequences)
    k_inner = make_keras(kind, H, return_sequences=return_sequences)
    bo = keras.layers.Bidirectional(o_inner, merge_mode=merge_mode)
    bk = keras.layers.Bidirectional(k_inner, merge_mode=merge_mode)
    x = _x(rng)
    bk(x)
    bo(x)
    random_weights(bk, rng)
    bo.set_weights(bk.get_weights())
    assert type(bo.backward_layer) is type(o_inner)
    assert bo.backward_layer.implementation == impl
    assert bo.backward_layer.go_backwards
    for a, b in zip(as_list(bo(x, mask=MASK)), as_list(bk(x, mask=MASK))):
        assert_close(a, b)
    for a, b in zip(as_list(bo(x)), as_list(bk(x))):
        assert_close(a, b)


@pytest.mark.parametrize("merge_mode", ["sum", "mul", "ave", None])
def test_bidirectional_other_merge_modes(merge_mode):
    test_bidirectional("lstm", "fused", merge_mode, True)


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_bidirectional_return_state(kind, impl="fused"):
    rng = np.random.default_rng(6)
    bo = keras.layers.Bidirectional(make_ours(kind, H, impl, return_state=True))
    bk = keras.layers.Bidirectional(make_keras(kind, H, return_state=True))
    x = _x(rng)
    bk(x)
    bo(x)
    random_weights(bk, rng)
    bo.set_weights(bk.get_weights())
    got, want = bo(x, mask=MASK), bk(x, mask=MASK)
    assert len(got) == len(want) == 1 + 2 * num_states(kind)
    for a, b in zip(got, want):
        assert_close(a, b)


@pytest.mark.parametrize("impl", IMPLS)
def test_stacked_mixed_layers(impl):
    rng = np.random.default_rng(7)

    def build(make):
        return keras.Sequential(
            [
                keras.Input((None, D)),
                keras.layers.Masking(0.0),
                make("lstm", H, return_sequences=True),
                make("gru", 4, return_sequences=True),
                make("gru_reset_before", 3, return_sequences=True, go_backwards=True),
                make("simple_rnn", 2),
            ]
        )

    mk = build(make_keras)
    mo = build(lambda kind, units, **kw: make_ours(kind, units, impl, **kw))
    random_weights(mk, rng)
    mo.set_weights(mk.get_weights())
    x = _x(rng)
    x[1, 4:] = 0.0
    x[2, :2] = 0.0
    assert_close(mo(x), mk(x))


# --- gradients -----------------------------------------------------------------------


def _grads(layer, x, mask, init, proj):
    x = tf.constant(x)
    init = [tf.constant(s) for s in init]
    with tf.GradientTape() as tape:
        tape.watch(x)
        tape.watch(init)
        outs = as_list(layer(x, mask=mask, initial_state=init))
        loss = sum(tf.reduce_sum(o * p) for o, p in zip(outs, proj))
    grads = tape.gradient(loss, [x, *init, *layer.trainable_weights])
    return outs, grads


@pytest.mark.parametrize(
    "impl,masked,opts",
    [
        ("fused", False, {"return_sequences": True, "return_state": True}),
        ("fused", True, {"return_sequences": True, "return_state": True}),
        ("fused", True, {"return_sequences": True, "go_backwards": True,
                         "zero_output_for_mask": True}),
        ("fused", True, {"return_state": True, "go_backwards": True}),
        ("fused", False, {"return_sequences": True, "use_bias": False}),
        ("reference", False, {"return_sequences": True, "return_state": True}),
        ("reference", True, {"return_state": True, "go_backwards": True}),
    ],
    ids=["fused-seq_state", "fused-mask_seq_state", "fused-mask_backwards_zero_out",
         "fused-mask_last_state_backwards", "fused-nobias", "reference-seq_state",
         "reference-mask_last_state_backwards"],
)
@pytest.mark.parametrize("kind", KIND_NAMES)
def test_gradients(kind, impl, masked, opts):
    rng = np.random.default_rng(8)
    o, k = _pair(kind, impl, rng, **opts)
    x = _x(rng)
    mask = MASK if masked else None
    init = [rng.normal(size=(B, H)).astype("float32") for _ in range(num_states(kind))]
    shapes = [tuple(s.shape) for s in as_list(k(x, mask=mask, initial_state=init))]
    proj = [rng.normal(size=s).astype("float32") for s in shapes]
    outs_o, g_o = _grads(o, x, mask, init, proj)
    outs_k, g_k = _grads(k, x, mask, init, proj)
    for a, b in zip(outs_o, outs_k):
        assert_close(a, b)
    names = ["x"] + [f"state{i}" for i in range(len(init))] + [w.name for w in k.trainable_weights]
    assert len(g_o) == len(g_k)
    for name, a, b in zip(names, g_o, g_k):
        assert a is not None, f"no gradient for {name}"
        assert_close(a, b, msg=name)


@pytest.mark.parametrize("kind", ["lstm", "gru_reset_before"])
def test_gradients_inside_tf_function(kind):
    rng = np.random.default_rng(9)
    o, k = _pair(kind, "fused", rng, return_sequences=True)
    x = _x(rng)
    proj = rng.normal(size=(B, T, H)).astype("float32")

    def make_step(layer):
        @tf.function
        def step(x, mask):
            with tf.GradientTape() as tape:
                tape.watch(x)
                loss = tf.reduce_sum(layer(x, mask=mask) * proj)
            return tape.gradient(loss, [x, *layer.trainable_weights])

        return step

    for a, b in zip(make_step(o)(tf.constant(x), MASK), make_step(k)(tf.constant(x), MASK)):
        assert_close(a, b)


# --- attributes and config -----------------------------------------------------------

KERAS_PROPERTIES = {
    "simple_rnn": [
        "units", "activation", "use_bias", "kernel_initializer", "recurrent_initializer",
        "bias_initializer", "kernel_regularizer", "recurrent_regularizer", "bias_regularizer",
        "kernel_constraint", "recurrent_constraint", "bias_constraint", "dropout",
        "recurrent_dropout",
    ],
}
KERAS_PROPERTIES["lstm"] = KERAS_PROPERTIES["simple_rnn"] + ["recurrent_activation", "unit_forget_bias"]
KERAS_PROPERTIES["gru"] = KERAS_PROPERTIES["simple_rnn"] + ["recurrent_activation", "reset_after"]
KERAS_PROPERTIES["gru_reset_before"] = KERAS_PROPERTIES["gru"]
LAYER_ATTRS = ["return_sequences", "return_state", "go_backwards", "stateful", "unroll",
               "zero_output_for_mask", "supports_masking", "state_size"]


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_layer_attributes_match_keras(kind):
    kwargs = dict(
        dropout=0.25, recurrent_dropout=0.125, use_bias=False, return_sequences=True,
        go_backwards=True, kernel_regularizer="l2", bias_constraint="non_neg",
    )
    if kind != "simple_rnn":
        kwargs["recurrent_activation"] = "hard_sigmoid"
    o, k = make_ours(kind, 7, **kwargs), make_keras(kind, 7, **kwargs)
    for name in KERAS_PROPERTIES[kind] + LAYER_ATTRS:
        assert hasattr(o, name), name
        a, b = getattr(o, name), getattr(k, name)
        if callable(a) and not isinstance(a, type):
            a, b = keras.saving.serialize_keras_object(a), keras.saving.serialize_keras_object(b)
        assert a == b, (name, a, b)
    assert o.units == 7 and o.dropout == 0.25 and o.recurrent_dropout == 0.125


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_config_keys_superset_of_keras(kind):
    o, k = make_ours(kind, 3), make_keras(kind, 3)
    ko, kk = o.get_config(), k.get_config()
    for key in kk:
        if key == "name":
            continue
        # Keras writes `activity_regularizer: None` explicitly; ours may omit the None.
        assert ko.get(key) == kk[key], key


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_keras_config_loads_into_ours(kind):
    """A config written by Keras' layer builds ours with the same weights layout."""
    k = make_keras(kind, 3, return_sequences=True)
    cls = KINDS[kind][0]
    o = cls.from_config(k.get_config())
    o.build((None, None, 2))
    k.build((None, None, 2))
    assert [tuple(w.shape) for w in o.weights] == [tuple(w.shape) for w in k.weights]
    assert o.return_sequences


def test_fused_raises_when_unsupported():
    o = make_ours("lstm", 3, "fused", activation="relu")
    with pytest.raises(ValueError):
        o(np.zeros((1, 2, 2), "float32"))
    with pytest.raises(ValueError):
        make_ours("lstm", 3, "bogus")


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_non_default_activation_auto_falls_back(kind):
    rng = np.random.default_rng(10)
    extra = {} if kind == "simple_rnn" else {"recurrent_activation": "hard_sigmoid"}
    o, k = _pair(kind, "auto", rng, activation="relu", return_sequences=True, **extra)
    x = _x(rng)
    assert_close(o(x, mask=MASK), k(x, mask=MASK))


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_unroll_matches_keras(kind):
    rng = np.random.default_rng(11)
    o, k = _pair(kind, "auto", rng, unroll=True, return_sequences=True)
    x = _x(rng)
    assert_close(o(x, mask=MASK), k(x, mask=MASK))


# --- path selection, mixed precision, higher-order gradients ---------------------------


@pytest.mark.parametrize("kind", KIND_NAMES)
def test_auto_path_selection(kind, monkeypatch):
    """'auto' runs the fused loops for default settings and the reference step function for
    recurrent dropout while training / non-default activations / unroll."""
    rng = np.random.default_rng(12)
    x = _x(rng)
    calls = []

    def spy(layer):
        original = layer.cell.fused_recurrence
        monkeypatch.setattr(
            layer.cell, "fused_recurrence",
            lambda *a, **kw: calls.append(layer.name) or original(*a, **kw),
        )
        return layer

    spy(make_ours(kind, H, "auto"))(x)
    assert len(calls) == 1
    spy(make_ours(kind, H, "auto", recurrent_dropout=0.2))(x, training=True)
    spy(make_ours(kind, H, "auto", activation="relu"))(x)
    spy(make_ours(kind, H, "auto", unroll=True))(x)
    spy(make_ours(kind, H, "reference"))(x)
    assert len(calls) == 1
    spy(make_ours(kind, H, "auto", recurrent_dropout=0.2))(x, training=False)
    assert len(calls) == 2


@pytest.mark.parametrize("kind", KIND_NAMES)
@pytest.mark.parametrize("half, tolerance", [("float16", 3e-3), ("bfloat16", 3e-2)])
def test_mixed_precision(kind, half, tolerance):
    rng = np.random.default_rng(13)
    o, k = _pair(kind, "fused", rng, return_sequences=True, dtype=f"mixed_{half}")
    x = _x(rng)
    a, b = o(x, mask=MASK), k(x, mask=MASK)
    assert a.dtype == b.dtype == half
    # bfloat16 keeps 8 significant bits (float16: 11): the two loops round differently
    assert_close(np.asarray(a, "float32"), np.asarray(b, "float32"), atol=tolerance, rtol=tolerance)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(tf.cast(o(x, mask=MASK), "float32"))
    grads = tape.gradient(loss, o.trainable_weights)
    assert all(g is not None and g.dtype == "float32" for g in grads)


@pytest.mark.parametrize("kind", ["simple_rnn", "lstm", "gru"])
def test_second_order_gradients(kind):
    # The fused path refuses a gradient of its hand-written gradient (it would be wrong);
    # the reference path gives Keras' numbers.
    rng = np.random.default_rng(14)
    o, k = _pair(kind, "reference", rng)
    fused, _ = _pair(kind, "fused", rng)
    x = tf.constant(_x(rng))

    def gradient_penalty_grads(layer):
        with tf.GradientTape() as outer:
            outer.watch(x)
            with tf.GradientTape() as inner:
                inner.watch(x)
                y = tf.reduce_sum(layer(x) ** 2)
            penalty = tf.reduce_sum(inner.gradient(y, x) ** 2)
        return outer.gradient(penalty, [x, *layer.trainable_weights])

    for a, b in zip(gradient_penalty_grads(o), gradient_penalty_grads(k)):
        assert a is not None
        assert_close(a, b, atol=1e-4)
    with pytest.raises(NotImplementedError, match="implementation='reference'"):
        gradient_penalty_grads(fused)
