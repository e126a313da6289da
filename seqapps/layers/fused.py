"""The fast path shared by SimpleRNN, LSTM and GRU: loops that carry only the recurrence.

Why this file exists: a generic RNN loop multiplies `x_t @ W` at every step and, under
autodiff, accumulates `dW`, `dU` one small outer product per step. Here

* the input projection `X @ W + b` for all time steps is one matmul done *before* the loop
  (by the caller, so autodiff handles it as one matmul in the backward pass as well);
* the forward loop computes only `xw_t + h_{t-1} @ U` and the gate non-linearities, and keeps
  the gate activations it will need for the backward pass;
* the backward pass is written by hand from the gradient equations (backpropagation through
  time, e.g. seeds/003 and the LSTM/GRU chain rule): its loop carries only `dh` (and `dc`) and
  stores the gradient of every pre-activation; the weight gradients are then a few large
  matmuls over all time steps at once (`dU = H_prev^T @ dZ`).

Every recurrence here takes time-major tensors:
    xw    [T, B, G*H]  the input projection (bias included) for all steps
    mask  [T, B, 1]    1.0 where the step is real, 0.0 where it is padding; at a padded step
                       the state is carried through unchanged (Keras' masking semantics).
                       None when nothing is padded: the loops then skip the mask arithmetic.
and returns the state after every step, `hs [T, B, H]` (and LSTM's last cell state).

Only the default activations (tanh, sigmoid) have hand-written derivatives; layers fall back
to the reference step function for anything else.

On CPU a loop step is a dozen small element-wise ops and TF's executor pays a fixed cost for
each. `compiled_loops(True)` (or SEQAPPS_COMPILE_LOOPS=1 for a whole process) compiles both
loops with XLA, which fuses a step's element-wise work. XLA compiles once per input shape
(a fraction of a second each), so it pays off for fixed shapes (BPTT windows, static-shape
training) and costs more than it saves with length-bucketed batches, where every batch
has a new length: it is off by default.
"""

import contextlib
import functools
import os

import tensorflow as tf

# SEQAPPS_COMPILE_LOOPS=1 turns the XLA compilation on for a whole process.
_COMPILE_LOOPS = [os.environ.get("SEQAPPS_COMPILE_LOOPS", "0") == "1"]


@contextlib.contextmanager
def compiled_loops(enabled):
    """Temporarily enable/disable XLA compilation of the recurrence loops."""
    previous = _COMPILE_LOOPS[0]
    _COMPILE_LOOPS[0] = bool(enabled)
    try:
        yield
    finally:
        _COMPILE_LOOPS[0] = previous


@functools.cache
def _jitted(fn):
    return tf.function(fn, jit_compile=True, reduce_retracing=True, autograph=False)


def _first_order_only(upstream, grads):
    """Passes the hand-written gradients through; differentiating them again raises.

    The forward loop's saved activations are constants to the backward pass, so a gradient
    of the gradient (gradient penalties, Hessian-vector products) would come out silently
    wrong. Saying so is better; the reference path supports it. `upstream` (the incoming
    gradient) ties this op to whatever an outer tape is watching.
    """

    @tf.custom_gradient
    def identity(upstream, *grads):
        def second_order(*_):
            raise NotImplementedError(
                "second-order gradients are not available on the fused RNN path; build the "
                "layer with implementation='reference' for gradient penalties or Hessian products"
            )

        return [tf.identity(g) for g in grads], second_order

    return identity(upstream, *grads)


def _run(fn, *args):
    """Calls `fn` compiled with XLA when allowed (plain otherwise).

    Inputs are cut from any enclosing tape: gradients come from our hand-written backward
    function, and a recording tape would otherwise ask XLA for the loop's intermediates.
    """
    args = [tf.stop_gradient(a) if isinstance(a, tf.Tensor) else a for a in args]
    return _jitted(fn)(*args) if _COMPILE_LOOPS[0] else fn(*args)


def _prev_states(hs, h0):
    """[h_0, h_1, ..., h_{T-1}]: the state each step started from."""
    return tf.concat([h0[None], hs[:-1]], axis=0)


def _flat(x):
    """[T, B, N] -> [T*B, N] so per-step products become one matmul."""
    return tf.reshape(x, [-1, tf.shape(x)[-1]])


def _forward_loop(step, xw, mask, initial_states, saved_dtypes):
    """Runs `step(xw_t, states) -> (new_states, saved)` over time with mask carry.

    Returns the stacked states after every step (tuple of [T, B, H]) and the stacked
    `saved` tensors (tuple of [T, ...]).
    """
    steps = tf.shape(xw)[0]
    states_ta = tuple(
        tf.TensorArray(s.dtype, size=steps, element_shape=s.shape) for s in initial_states
    )
    saved_ta = tuple(tf.TensorArray(d, size=steps) for d in saved_dtypes)

    def body(t, states, states_ta, saved_ta):
        new_states, saved = step(xw[t], states)
        if mask is not None:
            m = mask[t]
            new_states = tuple(s + m * (n - s) for n, s in zip(new_states, states))
        states_ta = tuple(ta.write(t, s) for ta, s in zip(states_ta, new_states))
        saved_ta = tuple(ta.write(t, s) for ta, s in zip(saved_ta, saved))
        return t + 1, new_states, states_ta, saved_ta

    _, _, states_ta, saved_ta = tf.while_loop(
        lambda t, *_: t < steps,
        body,
        (tf.constant(0), tuple(initial_states), states_ta, saved_ta),
        maximum_iterations=steps,  # XLA needs a bound
    )
    return tuple(ta.stack() for ta in states_ta), tuple(ta.stack() for ta in saved_ta)


def _backward_loop(step, mask, d_hs, d_final, saved_dtype):
    """Runs `step(t, d_states_new) -> (saved, d_states_prev_through_cell)` backwards in time.

    `d_hs` is the upstream gradient w.r.t. the hidden-state sequence (added to the carried
    gradient of h at each step), `d_final` the gradients w.r.t. the last states. The mask
    (None: no padding) splits each step's incoming gradient between the cell (real step)
    and the carried-through state (padded step). Returns the stacked `saved` tensors
    [T, B, ...] and the gradient w.r.t. the initial states.
    """
    steps = tf.shape(d_hs)[0]
    saved_ta = tf.TensorArray(saved_dtype, size=steps)

    def body(t, carry, saved_ta):
        incoming = (carry[0] + d_hs[t],) + tuple(carry[1:])
        if mask is None:
            saved, carry = step(t, incoming)
        else:
            m = mask[t]
            saved, d_prev_cell = step(t, tuple(m * g for g in incoming))
            carry = tuple(g - m * g + dp for g, dp in zip(incoming, d_prev_cell))
        return t - 1, carry, saved_ta.write(t, saved)

    _, d_initial, saved_ta = tf.while_loop(
        lambda t, *_: t >= 0,
        body,
        (steps - 1, tuple(d_final), saved_ta),
        maximum_iterations=steps,
    )
    return saved_ta.stack(), d_initial


# Backward passes: the factors of a step's gradient that do not depend on the incoming
# gradient (derivatives of the activations, from saved values) are grouped apart from it,
# so that `tf.while_loop`'s parallel iterations compute them ahead of the sequential dh
# chain on an otherwise idle core. (Precomputing them for all steps before the loop as
# large element-wise ops measured no faster on 2 cores and took more peak memory.)


# --- SimpleRNN -----------------------------------------------------------------------


def _simple_rnn_forward(xw, u, h0, mask):
    def step(xw_t, states):
        return (tf.tanh(xw_t + tf.matmul(states[0], u)),), ()

    (hs,), _ = _forward_loop(step, xw, mask, (h0,), ())
    return hs


def _simple_rnn_backward(d_hs, u, h0, hs, mask):
    u_t = tf.transpose(u)

    def back(t, d_states):
        d_a = d_states[0] * (1.0 - tf.square(hs[t]))  # tanh' = 1 - h^2
        return d_a, (tf.matmul(d_a, u_t),)

    d_a, (d_h0,) = _backward_loop(back, mask, d_hs, (tf.zeros_like(h0),), hs.dtype)
    d_u = tf.matmul(_flat(_prev_states(hs, h0)), _flat(d_a), transpose_a=True)
    return d_a, d_u, d_h0


def simple_rnn_recurrence(xw, recurrent_kernel, h0, mask=None):
    """h_t = tanh(xw_t + h_{t-1} U).  Returns hs [T, B, H]."""

    @tf.custom_gradient
    def run(xw, u, h0):
        hs = _run(_simple_rnn_forward, xw, u, h0, mask)
        return hs, lambda d_hs: _first_order_only(
            d_hs, _run(_simple_rnn_backward, d_hs, u, h0, hs, mask)
        )

    return run(xw, recurrent_kernel, h0)


# --- LSTM ------------------------------------------------------------------------------


def _lstm_forward(xw, u, h0, c0, mask):
    def step(xw_t, states):
        h, c = states
        # Split the pre-activations first: four H-wide activations measured faster on CPU
        # than one 4H-wide sigmoid with tanh(x) = 2σ(2x) - 1 (fewer bytes moved per op).
        z_i, z_f, z_g, z_o = tf.split(xw_t + tf.matmul(h, u), 4, axis=-1)
        i, f, g, o = tf.sigmoid(z_i), tf.sigmoid(z_f), tf.tanh(z_g), tf.sigmoid(z_o)
        c_new = f * c + i * g
        return (o * tf.tanh(c_new), c_new), (tf.concat([i, f, g, o], -1),)

    (hs, cs), (acts,) = _forward_loop(step, xw, mask, (h0, c0), (xw.dtype,))
    return hs, cs, acts


def _lstm_backward(d_hs, d_c_last, u, h0, c0, hs, cs, acts, mask):
    c_prev_seq = _prev_states(cs, c0)
    u_t = tf.transpose(u)

    def back(t, d_states):
        dh, dc = d_states
        i, f, g, o = tf.split(acts[t], 4, axis=-1)
        tanh_c = tf.tanh(cs[t])
        # The factors depend only on saved values, not on (dh, dc): grouped apart, they are
        # computed ahead by the loop's parallel iterations, off the sequential dh chain.
        dc = dc + dh * (o * (1.0 - tf.square(tanh_c)))
        gate_factors = tf.concat(
            [g * i * (1.0 - i), c_prev_seq[t] * f * (1.0 - f), i * (1.0 - tf.square(g))], -1
        )
        d_pre = tf.concat(
            [tf.concat([dc, dc, dc], -1) * gate_factors, dh * (tanh_c * o * (1.0 - o))], -1
        )
        return d_pre, (tf.matmul(d_pre, u_t), dc * f)

    d_pre, (d_h0, d_c0) = _backward_loop(
        back, mask, d_hs, (tf.zeros_like(h0), d_c_last), hs.dtype
    )
    d_u = tf.matmul(_flat(_prev_states(hs, h0)), _flat(d_pre), transpose_a=True)
    return d_pre, d_u, d_h0, d_c0


def lstm_recurrence(xw, recurrent_kernel, h0, c0, mask=None):
    """Gate order i, f, c, o (Keras' layout).

    i = σ(.), f = σ(.), g = tanh(.), o = σ(.) of xw_t + h_{t-1} U
    c_t = f * c_{t-1} + i * g;   h_t = o * tanh(c_t)
    Returns (hs [T,B,H], c_T [B,H]): only the last cell state leaves the layer, so only it
    carries an upstream gradient.
    """

    @tf.custom_gradient
    def run(xw, u, h0, c0):
        hs, cs, acts = _run(_lstm_forward, xw, u, h0, c0, mask)

        def grad(d_hs, d_c_last):
            if d_c_last is None:
                d_c_last = tf.zeros_like(c0)
            grads = _run(_lstm_backward, d_hs, d_c_last, u, h0, c0, hs, cs, acts, mask)
            return _first_order_only(d_hs, grads)

        return (hs, cs[-1]), grad

    return run(xw, recurrent_kernel, h0, c0)


# --- GRU -------------------------------------------------------------------------------


def _gru_forward(xw, u, recurrent_bias, h0, mask, reset_after):
    units = tf.shape(h0)[-1]
    u_zr, u_h = u[:, : 2 * units], u[:, 2 * units :]

    def step(xw_t, states):
        (h,) = states
        xz, xr, xh = tf.split(xw_t, 3, axis=-1)
        if reset_after:
            rz, rr, rh = tf.split(tf.matmul(h, u) + recurrent_bias, 3, axis=-1)
            z, r = tf.sigmoid(xz + rz), tf.sigmoid(xr + rr)
            h_tilde = tf.tanh(xh + r * rh)
            extra = rh
        else:
            rz, rr = tf.split(tf.matmul(h, u_zr), 2, axis=-1)
            z, r = tf.sigmoid(xz + rz), tf.sigmoid(xr + rr)
            h_tilde = tf.tanh(xh + tf.matmul(r * h, u_h))
            extra = r * h
        h_new = h_tilde + z * (h - h_tilde)  # = z * h + (1 - z) * h~
        return (h_new,), (tf.concat([z, r, h_tilde], -1), extra)

    (hs,), (gates, extra_seq) = _forward_loop(step, xw, mask, (h0,), (xw.dtype, xw.dtype))
    return hs, gates, extra_seq


def _gru_backward(d_hs, u, recurrent_bias, h0, hs, gates, extra_seq, mask, reset_after):
    # As for LSTM, the factors are computed inside the loop from the saved gates:
    # precomputing them for all steps measured no faster here and took 1.3x more peak memory.
    units = tf.shape(h0)[-1]
    u_zr_t, u_h_t, u_t = tf.transpose(u[:, : 2 * units]), tf.transpose(u[:, 2 * units :]), tf.transpose(u)
    h_prev_seq = _prev_states(hs, h0)

    def back(t, d_states):
        (dh,) = d_states
        z, r, h_tilde = tf.split(gates[t], 3, axis=-1)
        h_prev = h_prev_seq[t]
        d_z = dh * (h_prev - h_tilde) * z * (1.0 - z)
        d_h_pre = dh * (1.0 - z) * (1.0 - tf.square(h_tilde))
        if reset_after:
            d_r = d_h_pre * extra_seq[t] * r * (1.0 - r)
            # The recurrent projection's candidate part enters scaled by r.
            d_prev = tf.matmul(tf.concat([d_z, d_r, d_h_pre * r], -1), u_t)
        else:
            d_rh = tf.matmul(d_h_pre, u_h_t)  # w.r.t. r * h_prev
            d_r = d_rh * h_prev * r * (1.0 - r)
            d_prev = d_rh * r + tf.matmul(tf.concat([d_z, d_r], -1), u_zr_t)
        return tf.concat([d_z, d_r, d_h_pre], -1), (d_prev + dh * z,)

    d_pre, (d_h0,) = _backward_loop(back, mask, d_hs, (tf.zeros_like(h0),), hs.dtype)
    flat_prev, flat_pre = _flat(h_prev_seq), _flat(d_pre)
    if reset_after:
        r = _flat(gates)[:, units : 2 * units]
        d_rec = tf.concat([flat_pre[:, : 2 * units], flat_pre[:, 2 * units :] * r], -1)
        d_u = tf.matmul(flat_prev, d_rec, transpose_a=True)
        d_bias = tf.reduce_sum(d_rec, axis=0)
    else:
        d_u = tf.concat(
            [
                tf.matmul(flat_prev, flat_pre[:, : 2 * units], transpose_a=True),
                tf.matmul(_flat(extra_seq), flat_pre[:, 2 * units :], transpose_a=True),
            ],
            axis=-1,
        )
        d_bias = tf.zeros_like(recurrent_bias)
    return d_pre, d_u, d_bias, d_h0


def gru_recurrence(xw, recurrent_kernel, recurrent_bias, h0, mask=None, reset_after=True):
    """Gate order z, r, h (Keras' layout); h_t = z * h_{t-1} + (1 - z) * h~.

    reset_after=True  (Keras default, cuDNN-compatible):
        [rz, rr, rh] = h_{t-1} U + b_rec;  z = σ(xz + rz);  r = σ(xr + rr)
        h~ = tanh(xh + r * rh)
    reset_after=False (the seeds' form; `recurrent_bias` is ignored):
        z = σ(xz + h_{t-1} U_z);  r = σ(xr + h_{t-1} U_r);  h~ = tanh(xh + (r * h_{t-1}) U_h)
    Returns hs [T, B, H].
    """
    if recurrent_bias is None:
        recurrent_bias = tf.zeros([3 * tf.shape(h0)[-1]], xw.dtype)

    @tf.custom_gradient
    def run(xw, u, recurrent_bias, h0):
        hs, gates, extra_seq = _run(_gru_forward, xw, u, recurrent_bias, h0, mask, reset_after)

        def grad(d_hs):
            grads = _run(
                _gru_backward, d_hs, u, recurrent_bias, h0, hs, gates, extra_seq, mask, reset_after
            )
            return _first_order_only(d_hs, grads)

        return hs, grad

    return run(xw, recurrent_kernel, recurrent_bias, h0)
