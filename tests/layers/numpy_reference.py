"""Plain NumPy versions of the lecture-note (seed) equations, independent of seqapps.

Weights use Keras' layout so they can be fed from `layer.get_weights()`:
    kernel W [D, G*H], recurrent kernel U [H, G*H], bias b [G*H] (GRU reset_after: [2, 3H]).
Gate orders: LSTM (i, f, c, o); GRU (z, r, h).

Equations (row-vector convention, x [B, D], h [B, H]):
    SimpleRNN  h' = tanh(x W + h U + b)
    LSTM       i = σ(.), f = σ(.), g = tanh(.), o = σ(.)    of x W + h U + b
               c' = f c + i g,   h' = o tanh(c')
    GRU        z = σ(x W_z + h U_z + b_z),  r = σ(x W_r + h U_r + b_r)
               reset_after=False (seeds):  h~ = tanh(x W_h + (r h) U_h + b_h)
               reset_after=True (Keras):   h~ = tanh(x W_h + b_h + r (h U_h + b'_h)),
                                           and b'_z, b'_r are added inside z and r
               h' = z h + (1 - z) h~

`run_sequence` applies Keras' masking semantics: at a padded step the state is carried
through unchanged and the output is the previous output (zero before the first real step),
or zero when `zero_output_for_mask=True`. With `go_backwards=True` the sequence is
processed last-to-first and the outputs are returned in processing order.
"""

import numpy as np


def sigmoid(a):
    return 1.0 / (1.0 + np.exp(-a))


def _split(a, n):
    return np.split(a, n, axis=-1)


def simple_rnn_step(x, states, kernel, recurrent_kernel, bias=None):
    (h,) = states
    a = x @ kernel + h @ recurrent_kernel
    if bias is not None:
        a = a + bias
    h_new = np.tanh(a)
    return h_new, [h_new]


def lstm_step(x, states, kernel, recurrent_kernel, bias=None):
    h, c = states
    wx = x @ kernel
    uh = h @ recurrent_kernel
    if bias is not None:
        wx = wx + bias
    ax_i, ax_f, ax_c, ax_o = _split(wx, 4)
    ah_i, ah_f, ah_c, ah_o = _split(uh, 4)
    i = sigmoid(ax_i + ah_i)
    f = sigmoid(ax_f + ah_f)
    g = np.tanh(ax_c + ah_c)
    o = sigmoid(ax_o + ah_o)
    c_new = f * c + i * g
    h_new = o * np.tanh(c_new)
    return h_new, [h_new, c_new]


def gru_step(x, states, kernel, recurrent_kernel, bias=None, reset_after=True):
    (h,) = states
    units = h.shape[-1]
    w_z, w_r, w_h = _split(kernel, 3)
    u_z, u_r, u_h = _split(recurrent_kernel, 3)
    if bias is None:
        b_in = np.zeros(3 * units, dtype=x.dtype)
        b_rec = np.zeros(3 * units, dtype=x.dtype)
    elif reset_after:
        b_in, b_rec = bias[0], bias[1]
    else:
        b_in, b_rec = bias, np.zeros(3 * units, dtype=x.dtype)
    bi_z, bi_r, bi_h = _split(b_in, 3)
    br_z, br_r, br_h = _split(b_rec, 3)

    z = sigmoid(x @ w_z + bi_z + h @ u_z + br_z)
    r = sigmoid(x @ w_r + bi_r + h @ u_r + br_r)
    if reset_after:
        h_tilde = np.tanh(x @ w_h + bi_h + r * (h @ u_h + br_h))
    else:
        h_tilde = np.tanh(x @ w_h + (r * h) @ u_h + bi_h)
    h_new = z * h + (1.0 - z) * h_tilde
    return h_new, [h_new]


STEPS = {"simple_rnn": simple_rnn_step, "lstm": lstm_step, "gru": gru_step}
NUM_STATES = {"simple_rnn": 1, "lstm": 2, "gru": 1}


def run_sequence(
    kind,
    x,
    weights,
    initial_state=None,
    mask=None,
    go_backwards=False,
    zero_output_for_mask=False,
    reset_after=True,
):
    """Runs a whole [B, T, D] sequence; returns (outputs [B, T, H], last_output, states).

    `weights` is `[kernel, recurrent_kernel]` or `[kernel, recurrent_kernel, bias]`.
    `mask` is a [B, T] boolean array or None.
    """
    x = np.asarray(x)
    batch, steps, _ = x.shape
    kernel, recurrent_kernel = weights[0], weights[1]
    bias = weights[2] if len(weights) > 2 else None
    units = recurrent_kernel.shape[0]
    step = STEPS[kind]
    extra = {"reset_after": reset_after} if kind == "gru" else {}

    if initial_state is None:
        states = [np.zeros((batch, units), x.dtype) for _ in range(NUM_STATES[kind])]
    else:
        states = [np.array(s, dtype=x.dtype) for s in initial_state]
    if mask is None:
        mask = np.ones((batch, steps), dtype=bool)
    mask = np.asarray(mask, dtype=bool)

    order = range(steps - 1, -1, -1) if go_backwards else range(steps)
    prev_output = np.zeros((batch, units), x.dtype)
    outputs = []
    for t in order:
        out, new_states = step(x[:, t], states, kernel, recurrent_kernel, bias, **extra)
        m = mask[:, t][:, None]
        states = [np.where(m, n, s) for n, s in zip(new_states, states)]
        fill = np.zeros_like(out) if zero_output_for_mask else prev_output
        out = np.where(m, out, fill)
        outputs.append(out)
        prev_output = out
    outputs = np.stack(outputs, axis=1)
    return outputs, outputs[:, -1], states
