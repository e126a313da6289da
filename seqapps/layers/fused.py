"""The fast path shared by SimpleRNN, LSTM and GRU: loops that carry only the recurrence.

Why this file exists: a generic RNN loop multiplies `x_t @ W` at every step and, under
autodiff, keeps whatever each step's ops need and accumulates `dW`, `dU` one small product
per step. Here time is cut into chunks of `_CHUNK` steps (or of `checkpoint_every` steps):

* forward: per chunk, the input projection `x W + b` of its K steps is one matmul, then a
  loop computes only `xw_t + h_{t-1} @ U` and the gate non-linearities. The loop keeps the
  values the backward pass reads (the gate activations, the states); the projection of a
  chunk is dropped once its steps have run, so it never coexists with the gates of all T
  steps;
* backward (written by hand from the gradient equations, backpropagation through time, e.g.
  seeds/003 and the LSTM/GRU chain rule): chunks in reverse order; per chunk a loop carries
  only `dh` (and `dc`) and writes the gradient of the K steps' pre-activations `dZ`, then
  `dU += H_prev^T dZ`, `dW += X^T dZ`, `db += sum dZ` and `dX = dZ W^T` are one matmul each.
  `dZ` exists for one chunk at a time (O(K), not O(T)).
* `checkpoint_every=K`: the forward keeps only the states at the start of every chunk; the
  backward recomputes a chunk's forward from its checkpoint just before it runs the chunk's
  backward loop. Memory O(T/K + K) steps for about one more forward pass of time.

The recurrences take time-major tensors:
    inputs [T, B, D]   x, projected here with `kernel` [D, G*H] (+ `bias` [G*H]); or, with
                       kernel=None, the projection `xw` [T, B, G*H] itself (bias included)
    mask   [T, B, 1]   1.0 where the step is real, 0.0 where it is padding; at a padded step
                       the state is carried through unchanged (Keras' masking semantics).
                       None when nothing is padded: the loops then skip the mask arithmetic.
and return the state after every step, `hs [T, B, H]` (and LSTM's last cell state).

Only the default activations (tanh, sigmoid) have hand-written derivatives; layers fall back
to the reference step function for anything else.

On CPU a loop step is a dozen small element-wise ops and TF's executor pays a fixed cost for
each. `compiled_loops(True)` (or SEQAPPS_COMPILE_LOOPS=1 for a whole process) compiles the
per-chunk loops with XLA, which fuses a step's element-wise work. XLA compiles once per input
shape (a fraction of a second each), so it pays off for fixed shapes (BPTT windows,
static-shape training) and costs more than it saves with length-bucketed batches, where every
batch has a new length: it is off by default.

`forward_only(True)` (what the export helper traces under) runs the same forward loops with no
custom gradient at all: a serving graph needs none, and a SavedModel that carries one warns on
every load that its gradient was not saved.
"""

import contextlib
import functools
import os

import tensorflow as tf
from tensorflow.python.eager import record  # is any tape watching? (no: nothing to keep)
from tensorflow.python.ops import list_ops  # push/pop: the backward frees what it consumed

# SEQAPPS_COMPILE_LOOPS=1 turns the XLA compilation on for a whole process.
_COMPILE_LOOPS = [os.environ.get("SEQAPPS_COMPILE_LOOPS", "0") == "1"]
_FORWARD_ONLY = [False]
_CUT_TAPE = [True]  # False while a forward-only recurrence is traced: autodiff may see it

# Steps per chunk of the default path: the input projection, dZ and the weight-gradient
# matmuls are done per chunk (K*B rows are plenty for an efficient matmul; the transient
# per-chunk tensors are K/T of the whole-sequence ones).
_CHUNK = int(os.environ.get("SEQAPPS_RNN_CHUNK", "32"))
# Chunks of the outer loops in flight at once (tf.while_loop's default, 10, would let the
# executor run ten chunks ahead, each holding O(K) memory). Forward: the next chunk's input
# projection may run on the other core while this chunk's loop runs. Backward: one chunk at
# a time, because the backward pass is where the step's memory peaks (every saved gate is
# still alive when it starts) and a second chunk in flight adds its dZ, its rebuilt states
# and their copies (measured at T=400: 35 MiB more for LSTM, 27 for GRU, no faster).
_FORWARD_PARALLEL = int(os.environ.get("SEQAPPS_RNN_FORWARD_PARALLEL", "2"))
_BACKWARD_PARALLEL = int(os.environ.get("SEQAPPS_RNN_BACKWARD_PARALLEL", "1"))


@contextlib.contextmanager
def _switched(flag, enabled):
    """Sets a one-element module flag for the duration of a `with` block."""
    previous = flag[0]
    flag[0] = bool(enabled)
    try:
        yield
    finally:
        flag[0] = previous


def compiled_loops(enabled):
    """Temporarily enable/disable XLA compilation of the recurrence loops."""
    return _switched(_COMPILE_LOOPS, enabled)


def forward_only(enabled):
    """Temporarily trace the recurrences without their hand-written gradient (inference,
    exports). Gradients of a forward-only recurrence come from TF's generic while-loop
    autodiff, if anyone asks for them."""
    return _switched(_FORWARD_ONLY, enabled)


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
    if _CUT_TAPE[0]:
        args = tf.nest.map_structure(
            lambda a: tf.stop_gradient(a) if isinstance(a, tf.Tensor) else a, args
        )
    return _jitted(fn)(*args) if _COMPILE_LOOPS[0] else fn(*args)


def _flat(x):
    """[T, B, N] -> [T*B, N] so per-step products become one matmul."""
    return tf.reshape(x, [-1, tf.shape(x)[-1]])


def _project(x, kernel, bias):
    """x [L, B, D] -> x W + b [L, B, G*H]; the identity when kernel is None."""
    if kernel is None:
        return x
    xw = tf.matmul(_flat(x), kernel)
    if bias is not None:
        xw = xw + bias
    return tf.reshape(xw, tf.concat([tf.shape(x)[:-1], tf.shape(kernel)[-1:]], 0))


# --- the cells: one step forward, one step backward, the recurrent weight gradients --------
#
# step(xw_t, states, weights)               -> (new_states, saved)
# back(d_states, saved, prev, cur, weights) -> (d_pre, d_prev_states through the cell)
# rec_grads(h_prev, saved, d_pre, weights)  -> (dU, d_recurrent_bias), all flattened [n, .]
#
# Backward steps: the factors of a step's gradient that do not depend on the incoming
# gradient (derivatives of the activations, from saved values) are grouped apart from it,
# so that `tf.while_loop`'s parallel iterations compute them ahead of the sequential dh
# chain on an otherwise idle core. (Precomputing them for all steps before the loop as
# large element-wise ops measured no faster on 2 cores and took more peak memory.)


def _simple_rnn_step(xw_t, states, weights, reset_after):
    return (tf.tanh(xw_t + tf.matmul(states[0], weights[0])),), ()


def _simple_rnn_back(d_states, saved, prev, cur, weights, reset_after):
    d_a = d_states[0] * (1.0 - tf.square(cur[0]))  # tanh' = 1 - h^2
    return d_a, (tf.matmul(d_a, weights[0], transpose_b=True),)


def _simple_rnn_rec_grads(h_prev, saved, d_pre, weights, reset_after):
    return tf.matmul(h_prev, d_pre, transpose_a=True), None


def _lstm_step(xw_t, states, weights, reset_after):
    h, c = states
    # Split the pre-activations first: four H-wide activations measured faster on CPU
    # than one 4H-wide sigmoid with tanh(x) = 2σ(2x) - 1 (fewer bytes moved per op).
    z_i, z_f, z_g, z_o = tf.split(xw_t + tf.matmul(h, weights[0]), 4, axis=-1)
    i, f, g, o = tf.sigmoid(z_i), tf.sigmoid(z_f), tf.tanh(z_g), tf.sigmoid(z_o)
    c_new = f * c + i * g
    return (o * tf.tanh(c_new), c_new), (tf.concat([i, f, g, o], -1),)


def _lstm_back(d_states, saved, prev, cur, weights, reset_after):
    dh, dc = d_states
    i, f, g, o = tf.split(saved[0], 4, axis=-1)
    tanh_c = tf.tanh(cur[1])
    # The factors depend only on saved values, not on (dh, dc): grouped apart, they are
    # computed ahead by the loop's parallel iterations, off the sequential dh chain.
    dc = dc + dh * (o * (1.0 - tf.square(tanh_c)))
    gate_factors = tf.concat(
        [g * i * (1.0 - i), prev[1] * f * (1.0 - f), i * (1.0 - tf.square(g))], -1
    )
    d_pre = tf.concat(
        [tf.concat([dc, dc, dc], -1) * gate_factors, dh * (tanh_c * o * (1.0 - o))], -1
    )
    return d_pre, (tf.matmul(d_pre, weights[0], transpose_b=True), dc * f)


def _gru_step(xw_t, states, weights, reset_after):
    (h,) = states
    u, recurrent_bias = weights
    units = tf.shape(h)[-1]
    xz, xr, xh = tf.split(xw_t, 3, axis=-1)
    if reset_after:
        rz, rr, rh = tf.split(tf.matmul(h, u) + recurrent_bias, 3, axis=-1)
        z, r = tf.sigmoid(xz + rz), tf.sigmoid(xr + rr)
        h_tilde = tf.tanh(xh + r * rh)
    else:
        rz, rr = tf.split(tf.matmul(h, u[:, : 2 * units]), 2, axis=-1)
        z, r = tf.sigmoid(xz + rz), tf.sigmoid(xr + rr)
        h_tilde = tf.tanh(xh + tf.matmul(r * h, u[:, 2 * units :]))
    # Not saved: r * h_prev (reset_before) and h_prev U_h + b_h (reset_after) are rebuilt in
    # the backward pass from h_prev (see `_backward_saved`).
    saved = (tf.concat([z, r, h_tilde], -1),)
    h_new = h_tilde + z * (h - h_tilde)  # = z * h + (1 - z) * h~
    return (h_new,), saved


def _gru_back(d_states, saved, prev, cur, weights, reset_after):
    (dh,) = d_states
    u = weights[0]
    units = tf.shape(dh)[-1]
    z, r, h_tilde = tf.split(saved[0], 3, axis=-1)
    h_prev = prev[0]
    d_z = dh * (h_prev - h_tilde) * z * (1.0 - z)
    d_h_pre = dh * (1.0 - z) * (1.0 - tf.square(h_tilde))
    if reset_after:
        d_r = d_h_pre * saved[1] * r * (1.0 - r)
        # The recurrent projection's candidate part enters scaled by r.
        d_prev = tf.matmul(tf.concat([d_z, d_r, d_h_pre * r], -1), u, transpose_b=True)
    else:
        d_rh = tf.matmul(d_h_pre, u[:, 2 * units :], transpose_b=True)  # w.r.t. r * h_prev
        d_r = d_rh * h_prev * r * (1.0 - r)
        d_prev = d_rh * r + tf.matmul(tf.concat([d_z, d_r], -1), u[:, : 2 * units], transpose_b=True)
    return tf.concat([d_z, d_r, d_h_pre], -1), (d_prev + dh * z,)


def _gru_rec_grads(h_prev, saved, d_pre, weights, reset_after):
    units = tf.shape(h_prev)[-1]
    r = saved[0][:, units : 2 * units]
    if reset_after:
        d_rec = tf.concat([d_pre[:, : 2 * units], d_pre[:, 2 * units :] * r], -1)
        return tf.matmul(h_prev, d_rec, transpose_a=True), tf.reduce_sum(d_rec, axis=0)
    d_u = tf.concat(
        [
            tf.matmul(h_prev, d_pre[:, : 2 * units], transpose_a=True),
            tf.matmul(r * h_prev, d_pre[:, 2 * units :], transpose_a=True),
        ],
        axis=-1,
    )
    return d_u, None


CELLS = {
    "simple_rnn": (_simple_rnn_step, _simple_rnn_back, _simple_rnn_rec_grads),
    "lstm": (_lstm_step, _lstm_back, _simple_rnn_rec_grads),  # dU = H_prev^T dZ as well
    "gru": (_gru_step, _gru_back, _gru_rec_grads),
}


# --- the loops over one chunk ---------------------------------------------------------


def _chunk_forward(kind, reset_after, xw, mask, states, weights):
    """Runs the cell over one chunk: xw [L, B, G*H] from `states`.

    Returns (states after every step: tuple of [L, B, H], saved: tuple of [L, ...], the
    last states). The last states are the loop's own carried tensors, not `seq[-1]`: a slice
    of a stacked chunk shares its buffer, and one kept per chunk (the checkpoints, the next
    chunk's start) would keep every chunk's whole state sequence alive.
    """
    step = CELLS[kind][0]
    steps = tf.shape(xw)[0]
    states_ta = tuple(tf.TensorArray(s.dtype, size=steps, element_shape=s.shape) for s in states)

    def body(t, states, states_ta, saved_ta):
        new_states, saved = step(xw[t], states, weights, reset_after)
        if mask is not None:
            m = mask[t]
            new_states = tuple(s + m * (n - s) for n, s in zip(new_states, states))
        for new, old in zip(new_states, states):
            new.set_shape(old.shape)
        states_ta = tuple(ta.write(t, s) for ta, s in zip(states_ta, new_states))
        saved_ta = tuple(ta.write(t, s) for ta, s in zip(saved_ta, saved))
        return t + 1, new_states, states_ta, saved_ta

    saved_ta = tuple(tf.TensorArray(xw.dtype, size=steps) for _ in range(_N_SAVED[kind]))
    _, last, states_ta, saved_ta = tf.while_loop(
        lambda t, *_: t < steps,
        body,
        (tf.constant(0), tuple(states), states_ta, saved_ta),
        maximum_iterations=steps,  # XLA needs a bound
    )
    return tuple(ta.stack() for ta in states_ta), tuple(ta.stack() for ta in saved_ta), last


def _lstm_cell_states(c_first, acts, mask):
    """c_t = f * c_{t-1} + i * g over one chunk, from the saved gates: three element-wise
    ops per step rebuild the cell states instead of keeping them ([L, B, H] per chunk)."""
    steps = tf.shape(acts)[0]
    cs_ta = tf.TensorArray(c_first.dtype, size=steps, element_shape=c_first.shape)

    def body(t, c, cs_ta):
        i, f, g, _ = tf.split(acts[t], 4, axis=-1)
        c_new = f * c + i * g
        if mask is not None:
            c_new = c + mask[t] * (c_new - c)
        c_new.set_shape(c.shape)
        return t + 1, c_new, cs_ta.write(t, c_new)

    _, _, cs_ta = tf.while_loop(
        lambda t, *_: t < steps, body, (tf.constant(0), c_first, cs_ta), maximum_iterations=steps
    )
    return cs_ta.stack()


# What each step saves for the backward pass (`_chunk_forward`'s saved values): LSTM its
# gates (c is rebuilt from them), GRU its gates and candidate. GRU's candidate projection
# h_{t-1} U_h + b_h (reset_after) is rebuilt in the backward pass instead, one [K*B, H] x
# [H, H] matmul per chunk, rather than a [T, B, H] tensor kept from the forward (25 MiB at
# T=400, B=64, H=256).
_N_SAVED = {"simple_rnn": 0, "lstm": 1, "gru": 1}


def _gru_candidate_projection(h_prev, weights):
    """h_{t-1} U_h + b_h for a chunk's steps: [L, B, H] from h_prev [L, B, H]."""
    u, recurrent_bias = weights
    units = tf.shape(h_prev)[-1]
    flat = tf.matmul(_flat(h_prev), u[:, 2 * units :]) + recurrent_bias[2 * units :]
    return tf.reshape(flat, tf.shape(h_prev))


def _backward_saved(kind, reset_after, saved, prev, weights):
    """What the cell's backward step reads: the saved values, plus what was not kept."""
    if kind == "gru" and reset_after:
        return saved + (_gru_candidate_projection(prev[0], weights),)
    return saved


def _chunk_backward(kind, reset_after, mask, d_hs, d_carry, prev, cur, saved, weights):
    """Runs the cell's backward step over one chunk, last step first.

    `d_hs` [L, B, H] is the upstream gradient w.r.t. the chunk's hidden states (added to the
    carried gradient of h at each step), `d_carry` the gradients w.r.t. the chunk's last
    states. The mask (None: no padding) splits each step's incoming gradient between the
    cell (real step) and the carried-through state (padded step). Returns dZ [L, B, G*H]
    and the gradients w.r.t. the states the chunk started from.
    """
    back = CELLS[kind][1]
    steps = tf.shape(d_hs)[0]
    d_pre_ta = tf.TensorArray(d_hs.dtype, size=steps)

    def body(t, carry, d_pre_ta):
        incoming = (carry[0] + d_hs[t],) + tuple(carry[1:])
        args = (tuple(s[t] for s in saved), tuple(s[t] for s in prev), tuple(s[t] for s in cur))
        if mask is None:
            d_pre, carry = back(incoming, *args, weights, reset_after)
        else:
            m = mask[t]
            d_pre, d_prev_cell = back(tuple(m * g for g in incoming), *args, weights, reset_after)
            carry = tuple(g - m * g + dp for g, dp in zip(incoming, d_prev_cell))
        for new, old in zip(carry, incoming):
            new.set_shape(old.shape)  # chunks read back from TensorArrays lose static shapes
        return t - 1, carry, d_pre_ta.write(t, d_pre)

    _, d_carry, d_pre_ta = tf.while_loop(
        lambda t, *_: t >= 0,
        body,
        (steps - 1, tuple(d_carry), d_pre_ta),
        maximum_iterations=steps,
    )
    return d_pre_ta.stack(), d_carry


# --- whole sequences ------------------------------------------------------------------


def _steps(x, time_major):
    return tf.shape(x)[0 if time_major else 1]


def _time_slice(x, start, end, time_major):
    """Steps start..end-1 of x, time-major [L, B, N] (a batch-major x is cut, then only the
    cut is transposed: no whole-sequence time-major copy is ever made)."""
    if time_major:
        return x[start:end]
    return tf.transpose(x[:, start:end], [1, 0, 2])


def _new_sequence(like, units, n_chunks, in_place):
    """Where the chunks of a whole-sequence result (hs, dX: like's [T, B] or [B, T] leading
    axes, `units`' last one) are put as they are made.

    Default path: a TensorArray, joined at the end (the chunks, their concat and, batch-major,
    its transpose: two [T, B, N] copies at the peak). Checkpointed path (in_place): zeros that
    `_put_steps` overwrites in place, so the result exists once (19 MiB less at T=400, H=256,
    measured): what checkpointing is for. Not the default: TF's strided in-place write costs
    ~1.4 ms per [64, 32, 256] chunk on this CPU (measured), 10-30 % of a step at T=100."""
    if not in_place:
        return tf.TensorArray(like.dtype, size=n_chunks, infer_shape=False)
    return tf.zeros(tf.concat([tf.shape(like)[:2], tf.shape(units)[-1:]], 0), like.dtype)


def _put_steps(sequence, c, chunk, start, end, time_major):
    """sequence with chunk c (steps start..end-1, [L, B, N] time-major) put in."""
    if isinstance(sequence, tf.TensorArray):
        return sequence.write(c, chunk)
    if time_major:  # the mask bits: begin/end of the batch and feature axes are ignored
        begin, stop, mask = [start, 0, 0], [end, 0, 0], 0b110
    else:
        chunk = tf.transpose(chunk, [1, 0, 2])
        begin, stop, mask = [0, start, 0], [0, end, 0], 0b101
    # In place: TensorStridedSliceUpdate forwards its input when nothing else holds it, and a
    # while-loop variable is held by nothing else.
    return tf.raw_ops.TensorStridedSliceUpdate(
        input=sequence, begin=tf.stack(begin), end=tf.stack(stop), strides=[1, 1, 1],
        value=chunk, begin_mask=mask, end_mask=mask,
    )


def _whole(sequence, time_major):
    """The finished sequence as one [T, B, N] (time_major) or [B, T, N] tensor."""
    if not isinstance(sequence, tf.TensorArray):
        return sequence
    joined = sequence.concat()
    return joined if time_major else tf.transpose(joined, [1, 0, 2])


def _bounds(t_total, chunk, c):
    start = c * chunk
    return start, tf.minimum(start + chunk, t_total)


def _forward(kind, reset_after, x, kernel, bias, weights, states, mask, chunk, keep, tm,
             in_place=False):
    """Chunk by chunk over time. Returns (hs [T, B, H], last states, what backward reads).

    What backward reads: the states each chunk started from (TensorArrays of n_chunks
    [B, H] entries) and, with keep=True, every chunk's non-h states and saved activations
    (TensorArrays of [K, B, .] chunks, never concatenated: no whole-sequence copy).
    in_place: hs is written into one buffer as it is made (the checkpointed path, see
    `_new_sequence`).
    """
    t_total = _steps(x, tm)
    n_chunks = (t_total + chunk - 1) // chunk
    n_kept = _N_SAVED[kind]
    starts_ta = tuple(tf.TensorArray(s.dtype, size=n_chunks, element_shape=s.shape) for s in states)
    hs = _new_sequence(x, states[0], n_chunks, in_place)
    # Only the saved activations are kept (h is the output; LSTM's c is rebuilt from the
    # gates, GRU's h U_h + b_h from h), as lists of chunks that the backward pass pops, last first.
    kept = tuple(
        list_ops.empty_tensor_list(None, x.dtype) for _ in range(n_kept if keep else 0)
    )

    def body(c, states, starts_ta, hs, kept):
        start, end = _bounds(t_total, chunk, c)
        starts_ta = tuple(ta.write(c, s) for ta, s in zip(starts_ta, states))
        xw = _project(_time_slice(x, start, end, tm), kernel, bias)
        m = None if mask is None else mask[start:end]
        seq, saved, last = _run(_chunk_forward, kind, reset_after, xw, m, states, weights)
        hs = _put_steps(hs, c, seq[0], start, end, tm)
        kept = tuple(list_ops.tensor_list_push_back(k, v) for k, v in zip(kept, saved))
        for new, old in zip(last, states):
            new.set_shape(old.shape)  # an XLA-compiled chunk loop returns unknown shapes
        return c + 1, last, starts_ta, hs, kept

    _, last, starts_ta, hs, kept = tf.while_loop(
        lambda c, *_: c < n_chunks,
        body,
        (tf.constant(0), tuple(states), starts_ta, hs, kept),
        maximum_iterations=n_chunks,
        # The next chunk's projection may run ahead of this chunk's loop (on the other
        # core), no further: every chunk run ahead holds its [K, B, G*H] projection.
        parallel_iterations=_FORWARD_PARALLEL,
    )
    hs = _whole(hs, tm)
    hs.set_shape(x.shape[:2].concatenate(states[0].shape[-1:]))
    return hs, last, (starts_ta, kept)


def _backward(kind, reset_after, x, kernel, bias, weights, states, mask, chunk, keep, tm,
              hs, memo, d_hs, d_last, has_rb, in_place=False):
    """Chunks in reverse order; per chunk the hand-written backward loop, then one matmul
    each for its share of dU, dW, db and its dX. Returns the gradients in the order
    (dX, [dW], [db], dU, [d_recurrent_bias], d_initial_states...). in_place: dX is written
    into one buffer, as `_forward`'s hs."""
    starts_ta, kept = memo
    rec_grads = CELLS[kind][2]
    n_states = len(states)
    t_total = _steps(x, tm)
    n_chunks = (t_total + chunk - 1) // chunk
    d_x = _new_sequence(x, x, n_chunks, in_place)
    zeros = lambda v: tf.zeros_like(v) if v is not None else tf.zeros([], x.dtype)  # noqa: E731
    acc0 = (zeros(kernel), zeros(bias), tf.zeros_like(weights[0]),
            zeros(weights[1] if len(weights) > 1 else None))

    def body(c, carry, acc, d_x_all, kept):
        start, end = _bounds(t_total, chunk, c)
        first = tuple(ta.read(c) for ta in starts_ta)
        x_c = _time_slice(x, start, end, tm)
        m = None if mask is None else mask[start:end]
        if keep:
            popped = [list_ops.tensor_list_pop_back(k, x.dtype) for k in kept]
            kept = tuple(k for k, _ in popped)
            saved = tuple(v for _, v in popped)
            for v in saved:
                v.set_shape([None] + states[0].shape[:-1] + [None])
            cur = (_time_slice(hs, start, end, tm),)
            if kind == "lstm":
                cur += (_run(_lstm_cell_states, first[1], saved[0], m),)
        else:  # recompute the chunk from its checkpoint
            xw = _project(x_c, kernel, bias)
            cur, saved, _ = _run(_chunk_forward, kind, reset_after, xw, m, first, weights)
        prev = tuple(tf.concat([f[None], s[:-1]], 0) for f, s in zip(first, cur))
        saved = _backward_saved(kind, reset_after, saved, prev, weights)
        d_pre, carry = _run(
            _chunk_backward, kind, reset_after, m, _time_slice(d_hs, start, end, tm), carry, prev,
            cur, saved, weights,
        )
        flat_pre = _flat(d_pre)
        d_u, d_rb = rec_grads(_flat(prev[0]), tuple(_flat(s) for s in saved), flat_pre, weights,
                              reset_after)
        d_w, d_b, d_u_acc, d_rb_acc = acc
        if kernel is not None:
            flat_x = _flat(x_c)
            d_w = d_w + tf.matmul(flat_x, flat_pre, transpose_a=True)
            d_x = tf.reshape(tf.matmul(flat_pre, kernel, transpose_b=True), tf.shape(x_c))
            if bias is not None:
                d_b = d_b + tf.reduce_sum(flat_pre, axis=0)
        else:
            d_x = d_pre
        if d_rb is not None:
            d_rb_acc = d_rb_acc + d_rb
        d_x_all = _put_steps(d_x_all, c, d_x, start, end, tm)
        return c - 1, carry, (d_w, d_b, d_u_acc + d_u, d_rb_acc), d_x_all, kept

    _, d_initial, acc, d_x, _ = tf.while_loop(
        lambda c, *_: c >= 0,
        body,
        (n_chunks - 1, tuple(d_last), acc0, d_x, kept),
        maximum_iterations=n_chunks,
        parallel_iterations=_BACKWARD_PARALLEL,
    )
    d_x = _whole(d_x, tm)
    d_x.set_shape(x.shape)
    d_w, d_b, d_u, d_rb = acc
    grads = [d_x]
    if kernel is not None:
        grads.append(d_w)
        if bias is not None:
            grads.append(d_b)
    grads.append(d_u)
    if has_rb:
        grads.append(d_rb)
    return grads + list(d_initial)


def _in_xla_context():
    from tensorflow.python.ops import control_flow_util

    return control_flow_util.GraphOrParentsInXlaContext(tf.compat.v1.get_default_graph())


# Inside a graph that XLA compiles as a whole (a Keras model with jit_compile=True), the
# chunk loops cannot be used (XLA needs every list's element shape when it is created and
# the last chunk is shorter): the whole sequence is then one chunk, as statically shaped
# tensors, and checkpointing is not available.


def _forward_whole(kind, reset_after, x, kernel, bias, weights, states, mask, tm):
    t_total = _steps(x, tm)
    xw = _project(_time_slice(x, 0, t_total, tm), kernel, bias)
    seq, saved, last = _run(_chunk_forward, kind, reset_after, xw, mask, states, weights)
    hs = seq[0] if tm else tf.transpose(seq[0], [1, 0, 2])
    return hs, last, ("whole", seq, saved)


def _backward_whole(kind, reset_after, x, kernel, bias, weights, states, mask, tm, memo, d_hs,
                    d_last, has_rb):
    _, cur, saved = memo
    t_total = _steps(x, tm)
    x_t = _time_slice(x, 0, t_total, tm)
    prev = tuple(tf.concat([f[None], v[:-1]], 0) for f, v in zip(states, cur))
    saved = _backward_saved(kind, reset_after, saved, prev, weights)
    d_pre, d_initial = _run(
        _chunk_backward, kind, reset_after, mask, _time_slice(d_hs, 0, t_total, tm),
        tuple(d_last), prev, cur, saved, weights,
    )
    flat_pre = _flat(d_pre)
    d_u, d_rb = CELLS[kind][2](_flat(prev[0]), tuple(_flat(v) for v in saved), flat_pre, weights,
                               reset_after)
    grads = []
    if kernel is not None:
        d_x = tf.reshape(tf.matmul(flat_pre, kernel, transpose_b=True), tf.shape(x_t))
        grads.append(tf.matmul(_flat(x_t), flat_pre, transpose_a=True))
        if bias is not None:
            grads.append(tf.reduce_sum(flat_pre, axis=0))
    else:
        d_x = d_pre
    grads = [d_x if tm else tf.transpose(d_x, [1, 0, 2])] + grads + [d_u]
    if has_rb:
        grads.append(d_rb)
    return grads + list(d_initial)


def _recurrence(kind, inputs, u, states, mask, kernel, bias, recurrent_bias, reset_after,
                checkpoint_every, time_major):
    """The custom-gradient op around `_forward` / `_backward`.

    Returns (hs, last states). Differentiable arguments: inputs, [kernel], [bias], u,
    [recurrent_bias], states.
    """
    if checkpoint_every is not None and int(checkpoint_every) < 1:
        raise ValueError(f"checkpoint_every must be a positive integer, got {checkpoint_every!r}")
    chunk, keep = (int(checkpoint_every), False) if checkpoint_every else (_CHUNK, True)
    # The checkpointed path writes hs and dX into one buffer each (see `_new_sequence`); the
    # default and inference paths join chunks, which is faster.
    in_place = not keep
    weights_rb = recurrent_bias
    if kind == "gru" and reset_after and recurrent_bias is None:
        weights_rb = tf.zeros([tf.shape(u)[-1]], u.dtype)

    def weights_of(u, rb):
        return (u, rb) if kind == "gru" else (u,)

    # Variables (a stateful layer's states, weights passed directly) are read once here.
    inputs, u, kernel, bias, recurrent_bias = (
        None if v is None else tf.convert_to_tensor(v) for v in (inputs, u, kernel, bias, recurrent_bias)
    )
    states = tuple(tf.convert_to_tensor(s) for s in states)
    watched = [v for v in (inputs, kernel, bias, u, recurrent_bias, *states) if v is not None]
    if _FORWARD_ONLY[0] or not record.should_record_backprop(watched):
        # Inference (no tape watches any input, or an export is being traced): no custom
        # gradient and nothing kept for a backward pass. The loops stay visible to autodiff
        # (tf.gradients, a tape opened later on a traced graph): its generic while-loop
        # gradient is correct, only slower than ours.
        _CUT_TAPE[0] = False
        try:
            if _in_xla_context():
                hs, last, _ = _forward_whole(kind, reset_after, inputs, kernel, bias,
                                             weights_of(u, weights_rb), tuple(states), mask,
                                             time_major)
            else:
                hs, last, _ = _forward(kind, reset_after, inputs, kernel, bias,
                                       weights_of(u, weights_rb), tuple(states), mask, _CHUNK,
                                       False, time_major)
        finally:
            _CUT_TAPE[0] = True
        return hs, last

    has = (kernel is not None, bias is not None and kernel is not None, True,
           recurrent_bias is not None and kind == "gru" and reset_after)
    diff = [v for v, h in zip((kernel, bias, u, recurrent_bias), has) if h]

    @tf.custom_gradient
    def run(x, *args):
        args = list(args)
        k, b, uu, rb = (args.pop(0) if h else None for h in has)
        init = tuple(args)
        rb_used = rb if rb is not None else weights_rb
        weights = weights_of(uu, rb_used)
        whole = _in_xla_context()
        if whole:
            hs, last, memo = _forward_whole(kind, reset_after, x, k, b, weights, init, mask,
                                            time_major)
        else:
            hs, last, memo = _forward(kind, reset_after, x, k, b, weights, init, mask, chunk,
                                      keep, time_major, in_place=in_place)
        if kind == "lstm":
            outputs = (hs, last[1])  # only the last cell state leaves: no dC sequence
        else:
            outputs = hs

        def grad(*upstream):
            d_hs = upstream[0] if upstream[0] is not None else tf.zeros_like(hs)
            d_last = [tf.zeros_like(s) for s in init]
            if kind == "lstm" and upstream[1] is not None:
                d_last[1] = upstream[1]
            # The closure reads only what backward needs: x (for dW and the recomputed
            # projections), the weights, the initial states, hs (default path only) and memo.
            if whole:
                grads = _backward_whole(kind, reset_after, x, k, b, weights, init, mask,
                                        time_major, memo, d_hs, d_last, has[3])
            else:
                grads = _backward(kind, reset_after, x, k, b, weights, init, mask, chunk, keep,
                                  time_major, hs if keep else None, memo, d_hs, d_last, has[3],
                                  in_place=in_place)
            return _first_order_only(d_hs, grads)

        return outputs, grad

    out = run(inputs, *diff, *states)
    hs = out[0] if kind == "lstm" else out
    h_last = hs[-1] if time_major else hs[:, -1]
    return hs, (h_last, out[1]) if kind == "lstm" else (h_last,)


# --- the public recurrences -----------------------------------------------------------


def simple_rnn_recurrence(inputs, recurrent_kernel, h0, mask=None, *, kernel=None, bias=None,
                          checkpoint_every=None, time_major=True):
    """h_t = tanh(x_t W + b + h_{t-1} U) (or tanh(xw_t + h_{t-1} U) with kernel=None).
    Returns hs [T, B, H]."""
    hs, _ = _recurrence("simple_rnn", inputs, recurrent_kernel, (h0,), mask, kernel, bias,
                        None, True, checkpoint_every, time_major)
    return hs


def lstm_recurrence(inputs, recurrent_kernel, h0, c0, mask=None, *, kernel=None, bias=None,
                    checkpoint_every=None, time_major=True):
    """Gate order i, f, c, o (Keras' layout).

    i = σ(.), f = σ(.), g = tanh(.), o = σ(.) of xw_t + h_{t-1} U
    c_t = f * c_{t-1} + i * g;   h_t = o * tanh(c_t)
    Returns (hs [T,B,H], c_T [B,H]): only the last cell state leaves the layer, so only it
    carries an upstream gradient.
    """
    hs, (_, c_last) = _recurrence("lstm", inputs, recurrent_kernel, (h0, c0), mask, kernel,
                                  bias, None, True, checkpoint_every, time_major)
    return hs, c_last


def gru_recurrence(inputs, recurrent_kernel, recurrent_bias, h0, mask=None, reset_after=True, *,
                   kernel=None, bias=None, checkpoint_every=None, time_major=True):
    """Gate order z, r, h (Keras' layout); h_t = z * h_{t-1} + (1 - z) * h~.

    reset_after=True  (Keras default, cuDNN-compatible):
        [rz, rr, rh] = h_{t-1} U + b_rec;  z = σ(xz + rz);  r = σ(xr + rr)
        h~ = tanh(xh + r * rh)
    reset_after=False (the seeds' form; `recurrent_bias` is ignored):
        z = σ(xz + h_{t-1} U_z);  r = σ(xr + h_{t-1} U_r);  h~ = tanh(xh + (r * h_{t-1}) U_h)
    Returns hs [T, B, H].
    """
    hs, _ = _recurrence("gru", inputs, recurrent_kernel, (h0,), mask, kernel, bias,
                        recurrent_bias if reset_after else None, reset_after, checkpoint_every,
                        time_major)
    return hs
