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
                       the state is carried through unchanged (Keras' masking semantics)
and returns the state after every step, `hs [T, B, H]` (and LSTM's last cell state).

Only the default activations (tanh, sigmoid) have hand-written derivatives; layers fall back
to the reference step function for anything else.
"""

import tensorflow as tf


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
        m = mask[t]
        new_states = tuple(m * n + (1.0 - m) * s for n, s in zip(new_states, states))
        states_ta = tuple(ta.write(t, s) for ta, s in zip(states_ta, new_states))
        saved_ta = tuple(ta.write(t, s) for ta, s in zip(saved_ta, saved))
        return t + 1, new_states, states_ta, saved_ta

    _, _, states_ta, saved_ta = tf.while_loop(
        lambda t, *_: t < steps,
        body,
        (tf.constant(0), tuple(initial_states), states_ta, saved_ta),
    )
    return tuple(ta.stack() for ta in states_ta), tuple(ta.stack() for ta in saved_ta)


def _backward_loop(step, mask, d_states_seq, d_final, d_dtype):
    """Runs `step(t, d_states_new) -> (d_pre, d_states_prev_through_cell)` backwards in time.

    `d_states_seq` are the upstream gradients w.r.t. each stacked state sequence (or None),
    `d_final` the gradients w.r.t. the last states. The mask splits each step's incoming
    gradient between the cell (real step) and the carried-through state (padded step).
    Returns the stacked pre-activation gradients [T, B, G*H] and the gradient w.r.t. the
    initial states.
    """
    steps = tf.shape(mask)[0]
    d_pre_ta = tf.TensorArray(d_dtype, size=steps)

    def body(t, carry, d_pre_ta):
        incoming = tuple(
            c + (ds[t] if ds is not None else 0.0) for c, ds in zip(carry, d_states_seq)
        )
        m = mask[t]
        d_pre, d_prev_cell = step(t, tuple(m * g for g in incoming))
        carry = tuple((1.0 - m) * g + dp for g, dp in zip(incoming, d_prev_cell))
        return t - 1, carry, d_pre_ta.write(t, d_pre)

    _, d_initial, d_pre_ta = tf.while_loop(
        lambda t, *_: t >= 0, body, (steps - 1, tuple(d_final), d_pre_ta)
    )
    return d_pre_ta.stack(), d_initial


@tf.custom_gradient
def simple_rnn_recurrence(xw, recurrent_kernel, h0, mask):
    """h_t = tanh(xw_t + h_{t-1} U)."""
    u = recurrent_kernel

    def step(xw_t, states):
        h = tf.tanh(xw_t + tf.matmul(states[0], u))
        return (h,), ()

    (hs,), _ = _forward_loop(step, xw, mask, (h0,), ())

    def grad(d_hs):
        def back(t, d_states):
            d_a = d_states[0] * (1.0 - tf.square(hs[t]))  # tanh' = 1 - h^2
            return d_a, (tf.matmul(d_a, u, transpose_b=True),)

        d_a, (d_h0,) = _backward_loop(back, mask, (d_hs,), (tf.zeros_like(h0),), xw.dtype)
        d_u = tf.matmul(_flat(_prev_states(hs, h0)), _flat(d_a), transpose_a=True)
        return d_a, d_u, d_h0, tf.zeros_like(mask)

    return hs, grad


@tf.custom_gradient
def lstm_recurrence(xw, recurrent_kernel, h0, c0, mask):
    """Gate order i, f, c, o (Keras' layout).

    i = σ(.), f = σ(.), g = tanh(.), o = σ(.) of xw_t + h_{t-1} U
    c_t = f * c_{t-1} + i * g;   h_t = o * tanh(c_t)
    Returns (hs [T,B,H], cs [T,B,H]).
    """
    u = recurrent_kernel

    def step(xw_t, states):
        h, c = states
        z = xw_t + tf.matmul(h, u)
        zi, zf, zc, zo = tf.split(z, 4, axis=-1)
        i, f, g, o = tf.sigmoid(zi), tf.sigmoid(zf), tf.tanh(zc), tf.sigmoid(zo)
        c_new = f * c + i * g
        return (o * tf.tanh(c_new), c_new), (tf.concat([i, f, g, o], -1), c_new)

    (hs, cs), (gates, c_new_seq) = _forward_loop(
        step, xw, mask, (h0, c0), (xw.dtype, xw.dtype)
    )

    def grad(d_hs, d_cs):
        c_prev_seq = _prev_states(cs, c0)

        def back(t, d_states):
            dh, dc = d_states
            i, f, g, o = tf.split(gates[t], 4, axis=-1)
            tanh_c = tf.tanh(c_new_seq[t])
            dc = dc + dh * o * (1.0 - tf.square(tanh_c))
            d_pre = tf.concat(
                [
                    dc * g * i * (1.0 - i),  # input gate
                    dc * c_prev_seq[t] * f * (1.0 - f),  # forget gate
                    dc * i * (1.0 - tf.square(g)),  # candidate
                    dh * tanh_c * o * (1.0 - o),  # output gate
                ],
                axis=-1,
            )
            return d_pre, (tf.matmul(d_pre, u, transpose_b=True), dc * f)

        d_pre, (d_h0, d_c0) = _backward_loop(
            back, mask, (d_hs, d_cs), (tf.zeros_like(h0), tf.zeros_like(c0)), xw.dtype
        )
        d_u = tf.matmul(_flat(_prev_states(hs, h0)), _flat(d_pre), transpose_a=True)
        return d_pre, d_u, d_h0, d_c0, tf.zeros_like(mask)

    return (hs, cs), grad


def _gru_recurrence(xw, recurrent_kernel, recurrent_bias, h0, mask, reset_after):
    """Gate order z, r, h (Keras' layout); h_t = z * h_{t-1} + (1 - z) * h~.

    reset_after=True  (Keras default, cuDNN-compatible):
        [rz, rr, rh] = h_{t-1} U + b_rec;  z = σ(xz + rz);  r = σ(xr + rr)
        h~ = tanh(xh + r * rh)
    reset_after=False (the seeds' form):
        z = σ(xz + h_{t-1} U_z);  r = σ(xr + h_{t-1} U_r);  h~ = tanh(xh + (r * h_{t-1}) U_h)
    """
    u = recurrent_kernel
    units = tf.shape(h0)[-1]
    u_zr, u_h = u[:, : 2 * units], u[:, 2 * units :]

    def step(xw_t, states):
        (h,) = states
        xz, xr, xh = tf.split(xw_t, 3, axis=-1)
        if reset_after:
            rec = tf.matmul(h, u) + recurrent_bias
            rz, rr, rh = tf.split(rec, 3, axis=-1)
            z, r = tf.sigmoid(xz + rz), tf.sigmoid(xr + rr)
            h_tilde = tf.tanh(xh + r * rh)
            extra = rh
        else:
            rz, rr = tf.split(tf.matmul(h, u_zr), 2, axis=-1)
            z, r = tf.sigmoid(xz + rz), tf.sigmoid(xr + rr)
            h_tilde = tf.tanh(xh + tf.matmul(r * h, u_h))
            extra = r * h
        h_new = z * h + (1.0 - z) * h_tilde
        return (h_new,), (tf.concat([z, r, h_tilde], -1), extra)

    (hs,), (gates, extra_seq) = _forward_loop(step, xw, mask, (h0,), (xw.dtype, xw.dtype))
    h_prev_seq = _prev_states(hs, h0)

    def grad(d_hs):
        def back(t, d_states):
            (dh,) = d_states
            z, r, h_tilde = tf.split(gates[t], 3, axis=-1)
            h_prev = h_prev_seq[t]
            d_z = dh * (h_prev - h_tilde) * z * (1.0 - z)
            d_h_pre = dh * (1.0 - z) * (1.0 - tf.square(h_tilde))
            if reset_after:
                rh = extra_seq[t]
                d_r = d_h_pre * rh * r * (1.0 - r)
                # d_pre holds the gradient w.r.t. the input projection; the recurrent
                # projection's candidate part is scaled by r.
                d_pre = tf.concat([d_z, d_r, d_h_pre], -1)
                d_rec = tf.concat([d_z, d_r, d_h_pre * r], -1)
                d_prev = tf.matmul(d_rec, u, transpose_b=True)
            else:
                d_rh = tf.matmul(d_h_pre, u_h, transpose_b=True)  # w.r.t. r * h_prev
                d_r = d_rh * h_prev * r * (1.0 - r)
                d_pre = tf.concat([d_z, d_r, d_h_pre], -1)
                d_prev = d_rh * r + tf.matmul(
                    tf.concat([d_z, d_r], -1), u_zr, transpose_b=True
                )
            return d_pre, (d_prev + dh * z,)

        d_pre, (d_h0,) = _backward_loop(back, mask, (d_hs,), (tf.zeros_like(h0),), xw.dtype)
        flat_prev, flat_pre = _flat(h_prev_seq), _flat(d_pre)
        if reset_after:
            z_r, d_cand = flat_pre[:, : 2 * units], flat_pre[:, 2 * units :]
            r = _flat(gates)[:, units : 2 * units]
            d_rec = tf.concat([z_r, d_cand * r], -1)
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
        return d_pre, d_u, d_bias, d_h0, tf.zeros_like(mask)

    return hs, grad


@tf.custom_gradient
def gru_recurrence_reset_after(xw, recurrent_kernel, recurrent_bias, h0, mask):
    return _gru_recurrence(xw, recurrent_kernel, recurrent_bias, h0, mask, True)


@tf.custom_gradient
def gru_recurrence_reset_before(xw, recurrent_kernel, h0, mask):
    hs, grad = _gru_recurrence(
        xw, recurrent_kernel, tf.zeros([0], xw.dtype), h0, mask, False
    )

    def grad_no_bias(d_hs):
        d_pre, d_u, _, d_h0, d_mask = grad(d_hs)
        return d_pre, d_u, d_h0, d_mask

    return hs, grad_no_bias
