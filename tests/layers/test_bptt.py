"""The hand-written BPTT of seqapps.layers.fused vs TF autodiff and finite differences."""

import numpy as np
import pytest
import tensorflow as tf

from seqapps.layers import fused

from .common import assert_close

# --- plain step-by-step versions (autodiff reference) ----------------------------------


def _carry(m, new, old):
    return m * new + (1.0 - m) * old


def plain_simple_rnn(xw, u, h0, mask):
    h, hs = h0, []
    for t in range(xw.shape[0]):
        h = _carry(mask[t], tf.tanh(xw[t] + h @ u), h)
        hs.append(h)
    return tf.stack(hs)


def plain_lstm(xw, u, h0, c0, mask):
    """Returns (hs [T, B, H], c_T [B, H]), like fused.lstm_recurrence."""
    h, c, hs = h0, c0, []
    for t in range(xw.shape[0]):
        zi, zf, zc, zo = tf.split(xw[t] + h @ u, 4, axis=-1)
        c_new = tf.sigmoid(zf) * c + tf.sigmoid(zi) * tf.tanh(zc)
        h_new = tf.sigmoid(zo) * tf.tanh(c_new)
        h, c = _carry(mask[t], h_new, h), _carry(mask[t], c_new, c)
        hs.append(h)
    return tf.stack(hs), c


def plain_gru(xw, u, rec_bias, h0, mask, reset_after):
    h, hs = h0, []
    units = h0.shape[-1]
    for t in range(xw.shape[0]):
        xz, xr, xh = tf.split(xw[t], 3, axis=-1)
        uz, ur, uh = u[:, :units], u[:, units : 2 * units], u[:, 2 * units :]
        if reset_after:
            bz, br, bh = tf.split(rec_bias, 3)
            z = tf.sigmoid(xz + h @ uz + bz)
            r = tf.sigmoid(xr + h @ ur + br)
            cand = tf.tanh(xh + r * (h @ uh + bh))
        else:
            z = tf.sigmoid(xz + h @ uz)
            r = tf.sigmoid(xr + h @ ur)
            cand = tf.tanh(xh + (r * h) @ uh)
        h = _carry(mask[t], z * h + (1.0 - z) * cand, h)
        hs.append(h)
    return tf.stack(hs)


# Each case: (gates, fused function, plain function, names of the differentiable inputs).
# Both functions take the differentiable inputs then the time-major mask ([T, B, 1] or None).
CASES = {
    "simple_rnn": (
        1, fused.simple_rnn_recurrence,
        lambda xw, u, h0, m: plain_simple_rnn(xw, u, h0, m), ["xw", "u", "h0"],
    ),
    "lstm": (
        4, fused.lstm_recurrence,
        lambda xw, u, h0, c0, m: plain_lstm(xw, u, h0, c0, m), ["xw", "u", "h0", "c0"],
    ),
    "gru_reset_after": (
        3, lambda xw, u, b, h0, m: fused.gru_recurrence(xw, u, b, h0, m, reset_after=True),
        lambda xw, u, b, h0, m: plain_gru(xw, u, b, h0, m, True), ["xw", "u", "b", "h0"],
    ),
    "gru_reset_after_nobias": (
        3, lambda xw, u, h0, m: fused.gru_recurrence(xw, u, None, h0, m, reset_after=True),
        lambda xw, u, h0, m: plain_gru(xw, u, tf.zeros([3 * h0.shape[-1]], xw.dtype), h0, m,
                                       True),
        ["xw", "u", "h0"],
    ),
    "gru_reset_before": (
        3, lambda xw, u, h0, m: fused.gru_recurrence(xw, u, None, h0, m, reset_after=False),
        lambda xw, u, h0, m: plain_gru(xw, u, None, h0, m, False), ["xw", "u", "h0"],
    ),
}


def _plain_mask(mask, like):
    return tf.ones(like.shape[:2] + (1,), like.dtype) if mask is None else mask


MASKS = {
    "nomask": None,
    "mask": np.array([[1, 1, 1, 1], [1, 1, 0, 0], [0, 1, 0, 1]], dtype=bool),
    "allpad_row": np.array([[1, 1, 1, 1], [0, 0, 0, 0], [1, 0, 0, 0]], dtype=bool),
}


def _inputs(kind, steps, batch, units, dtype, rng, mask):
    gates = CASES[kind][0]
    values = {
        "xw": rng.normal(size=(steps, batch, gates * units)),
        "u": rng.normal(0, 0.7, size=(units, gates * units)),
        "b": rng.normal(size=(gates * units,)),
        "h0": rng.normal(0, 0.5, size=(batch, units)),
        "c0": rng.normal(0, 0.5, size=(batch, units)),
    }
    args = [tf.constant(values[n], dtype=dtype) for n in CASES[kind][3]]
    if mask is None:
        return args, None  # the fused loops' unmasked fast path
    return args, tf.constant(mask.T[..., None], dtype=dtype)  # [T, B, 1]


def _loss_weights(kind, steps, batch, units, dtype, rng, last_only):
    def one():
        w = rng.normal(size=(steps, batch, units))
        if last_only:
            w[:-1] = 0.0
        return tf.constant(w, dtype=dtype)

    if kind == "lstm":  # the second output is the last cell state [B, H]
        return [one(), tf.constant(rng.normal(size=(batch, units)), dtype=dtype)]
    return [one()]


def _value_and_grads(fn, args, mask, proj, plain=False):
    if plain:
        mask = _plain_mask(mask, args[0])
    with tf.GradientTape() as tape:
        tape.watch(args)
        outs = fn(*args, mask)
        outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
        loss = sum(tf.reduce_sum(o * p) for o, p in zip(outs, proj))
    return outs, loss, tape.gradient(loss, args)


@pytest.mark.parametrize(
    "mask_name,last_only",
    [("nomask", False), ("mask", False), ("allpad_row", True)],
    ids=["nomask-all_steps", "mask-all_steps", "allpad_row-last_step"],
)
@pytest.mark.parametrize("kind", list(CASES))
def test_matches_autodiff(kind, mask_name, last_only):
    steps, batch, units = 4, 3, 5
    rng = np.random.default_rng(0)
    args, mask = _inputs(kind, steps, batch, units, tf.float32, rng, MASKS[mask_name])
    proj = _loss_weights(kind, steps, batch, units, tf.float32, rng, last_only)
    _, fused_fn, plain_fn, names = CASES[kind]
    outs_f, _, grads_f = _value_and_grads(fused_fn, args, mask, proj)
    outs_p, _, grads_p = _value_and_grads(plain_fn, args, mask, proj, plain=True)
    for a, b in zip(outs_f, outs_p):
        assert_close(a, b)
    for name, a, b in zip(names, grads_f, grads_p):
        assert a is not None, name
        assert_close(a, b, atol=2e-5, msg=name)
    # Padded steps receive no gradient through the input projection.
    if MASKS[mask_name] is not None:
        pad = ~MASKS[mask_name].T  # [T, B]
        assert np.all(np.asarray(grads_f[0])[pad] == 0.0)


def test_lstm_only_hidden_sequence_used():
    """The cell-state output unused: its upstream gradient is None/zero and must be handled."""
    rng = np.random.default_rng(1)
    args, mask = _inputs("lstm", 4, 2, 3, tf.float32, rng, None)
    proj = tf.constant(rng.normal(size=(4, 2, 3)), tf.float32)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(args)
        hs_f, _ = fused.lstm_recurrence(*args, mask)
        loss_f = tf.reduce_sum(hs_f * proj)
        hs_p, _ = plain_lstm(*args, _plain_mask(mask, args[0]))
        loss_p = tf.reduce_sum(hs_p * proj)
    for a, b in zip(tape.gradient(loss_f, args), tape.gradient(loss_p, args)):
        assert_close(a, b, atol=2e-5)


@pytest.mark.parametrize("kind", list(CASES))
def test_matches_autodiff_in_tf_function(kind):
    steps, batch, units = 5, 2, 3
    rng = np.random.default_rng(2)
    mask_np = np.array([[1, 1, 1, 0, 0], [0, 1, 1, 1, 1]], dtype=bool)
    args, mask = _inputs(kind, steps, batch, units, tf.float32, rng, mask_np)
    proj = _loss_weights(kind, steps, batch, units, tf.float32, rng, False)
    _, fused_fn, plain_fn, _ = CASES[kind]

    @tf.function
    def run(args, mask):
        return _value_and_grads(fused_fn, list(args), mask, proj)[2]

    for a, b in zip(run(args, mask), _value_and_grads(plain_fn, args, mask, proj, plain=True)[2]):
        assert_close(a, b, atol=2e-5)


@pytest.mark.parametrize("kind", list(CASES))
def test_float64_central_differences(kind):
    """float64 through tf.custom_gradient, checked against central finite differences."""
    mask_name = "nomask" if kind in ("simple_rnn", "gru_reset_after_nobias") else "mask"
    steps, batch, units = 4, 3, 2
    rng = np.random.default_rng(3)
    args, mask = _inputs(kind, steps, batch, units, tf.float64, rng, MASKS[mask_name])
    proj = _loss_weights(kind, steps, batch, units, tf.float64, rng, False)
    _, fused_fn, _, names = CASES[kind]
    outs, loss, grads = _value_and_grads(fused_fn, args, mask, proj)
    assert all(o.dtype == tf.float64 for o in outs)
    assert loss.dtype == tf.float64
    for g in grads:
        assert g.dtype == tf.float64

    def loss_at(values):
        res = fused_fn(*[tf.constant(v) for v in values], mask)
        res = list(res) if isinstance(res, (list, tuple)) else [res]
        return float(sum(tf.reduce_sum(o * p) for o, p in zip(res, proj)))

    eps = 1e-6
    base = [a.numpy() for a in args]
    for i, name in enumerate(names):
        numeric = np.zeros_like(base[i])
        for idx in np.ndindex(base[i].shape):
            plus = [b.copy() for b in base]
            minus = [b.copy() for b in base]
            plus[i][idx] += eps
            minus[i][idx] -= eps
            numeric[idx] = (loss_at(plus) - loss_at(minus)) / (2 * eps)
        assert_close(grads[i], numeric, atol=1e-7, rtol=1e-6, msg=name)


@pytest.mark.parametrize("kind", list(CASES))
def test_single_step_sequence(kind):
    rng = np.random.default_rng(4)
    args, mask = _inputs(kind, 1, 2, 3, tf.float32, rng, None)
    proj = _loss_weights(kind, 1, 2, 3, tf.float32, rng, False)
    _, fused_fn, plain_fn, _ = CASES[kind]
    for a, b in zip(
        _value_and_grads(fused_fn, args, mask, proj)[2],
        _value_and_grads(plain_fn, args, mask, proj, plain=True)[2],
    ):
        assert_close(a, b, atol=2e-5)


@pytest.mark.parametrize("kind", list(CASES))
def test_xla_compiled_loops_match_autodiff(kind):
    """`compiled_loops(True)` (XLA; off by default) gives the same values and gradients."""
    rng = np.random.default_rng(5)
    args, mask = _inputs(kind, 4, 3, 5, tf.float32, rng, MASKS["mask"])
    proj = _loss_weights(kind, 4, 3, 5, tf.float32, rng, False)
    _, fused_fn, plain_fn, names = CASES[kind]
    with fused.compiled_loops(True):
        outs_f, _, grads_f = _value_and_grads(fused_fn, args, mask, proj)
    outs_p, _, grads_p = _value_and_grads(plain_fn, args, mask, proj, plain=True)
    for a, b in zip(outs_f, outs_p):
        assert_close(a, b)
    for name, a, b in zip(names, grads_f, grads_p):
        assert_close(a, b, atol=2e-5, msg=name)


@pytest.mark.parametrize("kind", list(CASES))
def test_all_ones_mask_equals_no_mask(kind):
    rng = np.random.default_rng(6)
    args, _ = _inputs(kind, 4, 2, 3, tf.float32, rng, None)
    ones = tf.ones((4, 2, 1), tf.float32)
    proj = _loss_weights(kind, 4, 2, 3, tf.float32, rng, False)
    fused_fn = CASES[kind][1]
    outs_a, _, grads_a = _value_and_grads(fused_fn, args, None, proj)
    outs_b, _, grads_b = _value_and_grads(fused_fn, args, ones, proj)
    for a, b in zip(outs_a + grads_a, outs_b + grads_b):
        assert_close(a, b, atol=1e-6)


# --- chunks and checkpoints (issue #18) ------------------------------------------------
# The default path cuts time into chunks of fused._CHUNK steps; the checkpointed path keeps
# only every K-th state and recomputes. Both against plain autodiff, with T not a multiple
# of the chunk, masks, and the input projection done inside (kernel and bias given).


def _with_projection(kind, steps, batch, dim, units, rng, mask):
    args, mask_t = _inputs(kind, steps, batch, units, tf.float32, rng, mask)
    gates = CASES[kind][0]
    x = tf.constant(rng.normal(size=(steps, batch, dim)), tf.float32)
    kernel = tf.constant(rng.normal(0, 0.5, size=(dim, gates * units)), tf.float32)
    bias = tf.constant(rng.normal(size=(gates * units,)), tf.float32)
    return x, kernel, bias, args[1:], mask_t


LONG_MASK = np.array(
    [[1] * 7, [1, 1, 1, 1, 0, 0, 0], [0, 0, 1, 1, 1, 0, 1]], dtype=bool
)  # T=7, B=3: a real step after padding, an all-real row, a short row


# (default chunk, checkpoint_every): chunks of 1, 3 and 32 steps on the default path; with
# checkpoints the chunk is checkpoint_every (1, 3, all 7 steps, more than T).
PATHS = [(1, None), (3, None), (32, None), (32, 1), (32, 3), (32, 7), (32, 20)]


@pytest.mark.parametrize("chunk,checkpoint_every", PATHS,
                         ids=[f"chunk{c}" if k is None else f"ckpt{k}" for c, k in PATHS])
@pytest.mark.parametrize("masked", [False, True], ids=["nomask", "mask"])
@pytest.mark.parametrize("kind", list(CASES))
def test_chunks_and_checkpoints_match_autodiff(kind, masked, chunk, checkpoint_every,
                                              monkeypatch):
    monkeypatch.setattr(fused, "_CHUNK", chunk)
    steps, batch, dim, units = 7, 3, 4, 5
    rng = np.random.default_rng(7)
    x, kernel, bias, rest, mask = _with_projection(
        kind, steps, batch, dim, units, rng, LONG_MASK if masked else None
    )
    proj = _loss_weights(kind, steps, batch, units, tf.float32, rng, False)
    _, fused_fn, plain_fn, _ = CASES[kind]
    diff = [x, kernel, bias] + rest

    def project(x, kernel, bias):
        return tf.einsum("tbd,dg->tbg", x, kernel) + bias

    def run(fn, plain):
        with tf.GradientTape() as tape:
            tape.watch(diff)
            if plain:
                outs = fn(project(x, kernel, bias), *rest, _plain_mask(mask, x))
            else:
                outs = _projected_call(kind, x, kernel, bias, rest, mask, checkpoint_every)
            outs = list(outs) if isinstance(outs, (list, tuple)) else [outs]
            loss = sum(tf.reduce_sum(o * p) for o, p in zip(outs, proj))
        return outs, tape.gradient(loss, diff)

    outs_f, grads_f = run(fused_fn, False)
    outs_p, grads_p = run(plain_fn, True)
    for a, b in zip(outs_f, outs_p):
        assert_close(a, b)
    for i, (a, b) in enumerate(zip(grads_f, grads_p)):
        assert a is not None, i
        assert_close(a, b, atol=5e-5, rtol=5e-5, msg=f"gradient {i}")


def _projected_call(kind, x, kernel, bias, rest, mask, checkpoint_every):
    kw = dict(kernel=kernel, bias=bias, checkpoint_every=checkpoint_every)
    if kind == "simple_rnn":
        return fused.simple_rnn_recurrence(x, *rest, mask, **kw)
    if kind == "lstm":
        return fused.lstm_recurrence(x, *rest, mask, **kw)
    if kind == "gru_reset_after":
        u, b, h0 = rest
        return fused.gru_recurrence(x, u, b, h0, mask, True, **kw)
    if kind == "gru_reset_after_nobias":
        u, h0 = rest
        return fused.gru_recurrence(x, u, None, h0, mask, True, **kw)
    u, h0 = rest
    return fused.gru_recurrence(x, u, None, h0, mask, False, **kw)


@pytest.mark.parametrize("kind", list(CASES))
def test_checkpointed_gradients_equal_the_default_path_in_tf_function(kind, monkeypatch):
    """Graph mode (the training step's), batch-major as the layers call it: checkpointed
    gradients equal the default path's."""
    monkeypatch.setattr(fused, "_CHUNK", 4)
    steps, batch, dim, units = 11, 3, 4, 5
    rng = np.random.default_rng(8)
    x, kernel, bias, rest, _ = _with_projection(kind, steps, batch, dim, units, rng, None)
    x_bm = tf.transpose(x, [1, 0, 2])
    mask = tf.constant((rng.random((steps, batch, 1)) > 0.3).astype("float32"))
    weights = tf.constant(rng.normal(size=(batch, steps, units)), tf.float32)

    @tf.function
    def grads(checkpoint_every):
        diff = [x_bm, kernel, bias] + rest
        with tf.GradientTape() as tape:
            tape.watch(diff)
            kw = dict(kernel=kernel, bias=bias, checkpoint_every=checkpoint_every,
                      time_major=False)
            if kind == "lstm":
                hs, c = fused.lstm_recurrence(x_bm, *rest, mask, **kw)
                loss = tf.reduce_sum(hs * weights) + tf.reduce_sum(c)
            elif kind == "simple_rnn":
                loss = tf.reduce_sum(fused.simple_rnn_recurrence(x_bm, *rest, mask, **kw) * weights)
            else:
                reset = kind != "gru_reset_before"
                u, *more = rest
                b = more[0] if kind == "gru_reset_after" else None
                hs = fused.gru_recurrence(x_bm, u, b, more[-1], mask, reset, **kw)
                loss = tf.reduce_sum(hs * weights)
        return tape.gradient(loss, diff)

    default = grads(None)
    for k in (2, 5):
        for a, b in zip(grads(k), default):
            assert_close(a, b, atol=1e-5)
