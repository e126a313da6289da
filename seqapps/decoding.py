"""Graph-only decoding loops: greedy, beam search and sampling.

Every loop here is a `tf.while_loop` over a fixed-size token buffer, bounded
by `max_length`, with no Python control flow on tensors. They therefore
trace as-is inside `tf.function(autograph=False)` and Keras `ExportArchive`
endpoints, with an unknown batch size, which is how the apps export their
generators as SavedModels.

A decoder is described by a step function

    step_fn(tokens, state) -> (logits, new_state)

- `tokens`: int32 `[N]`, the previous token of each row (`start_token` at
  the first step);
- `state`: any nested structure (`tf.nest`) of tensors with leading dim `N`,
  e.g. `[h, c]` for an LSTM, plus anything the step needs per row (encoder
  outputs, precomputed attention keys, a source mask...);
- `logits`: float `[N, V]` over the next token.

`N` is the batch size `B`, or `B * beam_width` in beam search (the state is
tiled for you, rows `b * K .. b * K + K - 1` belonging to batch row `b`).

Output convention, shared by all three decoders: `tokens` is int32
`[B, max_length]` and `lengths` int32 `[B]`. `tokens[b, :lengths[b]]` is
the generated sequence, *without* the end token. If row `b` produced the end
token, it is written at `tokens[b, lengths[b]]` (so `lengths[b] <
max_length` tells a finished row from a truncated one); every position after
it holds 0 (padding). Token 0 is assumed to be padding.
"""

import numbers

import tensorflow as tf

# Temperatures below this decode greedily: logits / 1e-7 would overflow, and
# sampling at such a temperature is argmax anyway.
GREEDY_TEMPERATURE = 1e-6

_PAD = 0


def _batch_size(initial_state, batch_size):
    if batch_size is not None:
        return tf.convert_to_tensor(batch_size, tf.int32)
    leaves = tf.nest.flatten(initial_state)
    if not leaves:
        raise ValueError(
            "`initial_state` holds no tensors to read the batch size from; "
            "pass `batch_size=`."
        )
    return tf.shape(leaves[0], out_type=tf.int32)[0]


def _static(value):
    """`value` as a Python number if it is one (or a NumPy scalar), else None.

    Options given as Python numbers are validated and specialised at trace
    time; tensors (e.g. inputs of an exported signature) are handled in-graph.
    """
    if isinstance(value, numbers.Number) and not isinstance(value, bool):
        return value
    return None


def _checked(value, condition, message):
    """`value` as a tensor that fails with `InvalidArgumentError("assertion failed:
    [message] [value]")` when `condition(value)` is false: the run-time twin of the
    ValueError a Python number gets at trace time."""
    value = tf.convert_to_tensor(value)
    check = tf.debugging.Assert(condition(value), [message, value])
    with tf.control_dependencies([check]):
        return tf.identity(value)


def _check_max_length(max_length):
    if _static(max_length) is not None and max_length < 1:
        raise ValueError(f"`max_length` must be >= 1; received {max_length}.")


def _any_batch(x):
    """`x`'s static shape with the batch dim relaxed, for while-loop invariants.

    A step function may return a state whose batch dim is less static than
    the initial one (e.g. after a reshape with -1); without this the loop
    would reject it.
    """
    shape = x.shape
    if shape.rank is None or shape.rank == 0:
        return shape
    return tf.TensorShape([None]).concatenate(shape[1:])


def _write_step(buffer, t, tokens):
    """Writes `tokens` `[B]` into row `t` of a time-major `[T, B]` buffer."""
    return tf.tensor_scatter_nd_update(buffer, [[t]], tokens[tf.newaxis])


def _decode(step_fn, initial_state, select, start_token, end_token, max_length,
            batch_size):
    """The loop behind greedy and sampled decoding.

    `select(t, logits)` picks the next token `[N]` from float32 logits.
    """
    _check_max_length(max_length)
    batch = _batch_size(initial_state, batch_size)
    initial_state = tf.nest.map_structure(tf.convert_to_tensor, initial_state)

    def cond(t, prev, state, finished, lengths, buffer):
        del prev, state, lengths, buffer
        # Stop as soon as every row has emitted its end token.
        return tf.logical_and(t < max_length,
                              tf.logical_not(tf.reduce_all(finished)))

    def body(t, prev, state, finished, lengths, buffer):
        logits, state = step_fn(prev, state)
        tokens = select(t, tf.cast(logits, tf.float32))
        # Finished rows keep stepping (the batch runs in lock-step) but only
        # ever emit padding.
        tokens = tf.where(finished, _PAD, tokens)
        if end_token is None:
            ended = tf.zeros_like(finished)
        else:
            ended = tf.logical_and(tf.logical_not(finished),
                                   tf.equal(tokens, end_token))
        live = tf.logical_not(tf.logical_or(finished, ended))
        lengths += tf.cast(live, tf.int32)
        finished = tf.logical_or(finished, ended)
        return t + 1, tokens, state, finished, lengths, _write_step(buffer, t, tokens)

    loop_vars = (
        tf.constant(0),
        _start_tokens(start_token, batch),
        initial_state,
        tf.zeros([batch], tf.bool),
        tf.zeros([batch], tf.int32),
        tf.zeros([max_length, batch], tf.int32),
    )
    invariants = tf.nest.map_structure(_any_batch, loop_vars[:-1]) + (
        # The buffer is time-major: its batch dim is the second one.
        tf.TensorShape([loop_vars[-1].shape[0], None]),)
    _, _, _, _, lengths, buffer = tf.while_loop(
        cond, body, loop_vars, shape_invariants=invariants,
        maximum_iterations=max_length)
    return tf.transpose(buffer), lengths


def greedy_decode(step_fn, initial_state, *, start_token, end_token,
                  max_length, batch_size=None):
    """Decodes by taking the most likely token at every step.

    Args:
        step_fn: `step_fn(tokens [N], state) -> (logits [N, V], new_state)`.
        initial_state: nested tensors with leading dim `B`.
        start_token: int, fed at the first step.
        end_token: int; a row stops once it emits it. None: never stop early.
        max_length: maximum number of generated tokens (end token included).
        batch_size: only needed when `initial_state` holds no tensor.

    Returns:
        `(tokens [B, max_length] int32, lengths [B] int32)`, see the module
        docstring for the padding / end-token convention.
    """

    def select(t, logits):
        del t
        return tf.argmax(logits, axis=-1, output_type=tf.int32)

    return _decode(step_fn, initial_state, select, start_token, end_token,
                   max_length, batch_size)


def filter_logits(logits, top_k=0, top_p=1.0):
    """Sets every logit outside the top-k / nucleus (top-p) set to -inf.

    Top-k keeps the `top_k` most likely tokens (0: off). Top-p then keeps the
    smallest set of most likely tokens whose probability (renormalised over
    what top-k kept) reaches `top_p` (1.0: off). The most likely token is
    always kept, so sampling from the result is always defined, and with
    `top_k=1` it is exactly argmax (ties go to the lowest index, as
    `tf.argmax`).

    Args:
        logits: float `[N, V]`, already divided by the temperature.
        top_k: int or int32 scalar tensor, >= 0.
        top_p: float or float scalar tensor, in (0, 1].

    Out-of-range values (a negative `top_k`; a `top_p` of 0, below 0, above 1 or NaN)
    raise `ValueError` as Python numbers and `tf.errors.InvalidArgumentError` as tensors,
    when the graph runs; they are never taken silently as "off".

    Returns:
        `[N, V]` logits of the same dtype.
    """
    static_k, static_p = _static(top_k), _static(top_p)
    if static_k is not None and static_k < 0:
        raise ValueError(f"`top_k` must be >= 0 (0 disables it); received {top_k}.")
    if static_p is not None and not 0.0 < static_p <= 1.0:
        raise ValueError(f"`top_p` must be in (0, 1] (1 disables it); received {top_p}.")
    if static_k is None:
        top_k = _checked(top_k, lambda k: k >= 0, "`top_k` must be >= 0 (0 disables it)")
    if static_p is None:
        top_p = _checked(top_p, lambda p: tf.logical_and(p > 0.0, p <= 1.0),
                         "`top_p` must be in (0, 1] (1 disables it)")
    use_top_k = static_k is None or static_k > 0
    use_top_p = static_p is None or static_p < 1.0
    logits = tf.convert_to_tensor(logits)
    if not (use_top_k or use_top_p):
        return logits

    if not use_top_p:
        return _top_k_filter(logits, top_k)  # no full sort needed
    if static_k is not None and static_p is not None:
        return _sorted_filter(logits, top_k, top_p, use_top_k)
    # Values only known at run time (e.g. signature inputs): pay for what is asked.
    top_k, top_p = tf.cast(top_k, tf.int32), tf.cast(top_p, tf.float32)
    return tf.cond(
        top_p < 1.0,
        lambda: _sorted_filter(logits, top_k, top_p, True),
        lambda: tf.cond(top_k > 0, lambda: _top_k_filter(logits, top_k), lambda: logits),
    )


def _top_k_filter(logits, top_k):
    """Keeps the k best logits of each row: one partial top-k, no full sort."""
    n, vocab = tf.shape(logits)[0], tf.shape(logits)[1]
    k = tf.clip_by_value(tf.cast(top_k, tf.int32), 1, vocab)
    _, best = tf.math.top_k(logits, k=k)  # stable: ties keep the lower index, as argmax
    rows = tf.tile(tf.range(n)[:, tf.newaxis], [1, k])
    keep = tf.scatter_nd(tf.stack([rows, best], -1), tf.ones_like(best, tf.bool), [n, vocab])
    keep = tf.logical_or(keep, tf.cast(top_k, tf.int32) <= 0)
    return tf.where(keep, logits, tf.cast(-float("inf"), logits.dtype))


def _sorted_filter(logits, top_k, top_p, use_top_k):
    """Top-k and nucleus together, from one full descending sort."""
    vocab = tf.shape(logits)[-1]
    # top_k is stable, so tied logits stay in index order and rank 0 is argmax's choice.
    sorted_logits, order = tf.math.top_k(logits, k=vocab)
    rank = tf.range(vocab)[tf.newaxis, :]
    keep = tf.ones_like(sorted_logits, tf.bool)
    if use_top_k:
        top_k = tf.cast(top_k, tf.int32)
        keep = tf.logical_and(keep, tf.logical_or(top_k <= 0, rank < top_k))
    top_p = tf.cast(top_p, tf.float32)
    kept_logits = tf.where(keep, tf.cast(sorted_logits, tf.float32), -float("inf"))
    probs = tf.nn.softmax(kept_logits, axis=-1)
    # Probability mass strictly before each token: the token that crosses
    # top_p is still kept, the ones after it are not.
    before = tf.math.cumsum(probs, axis=-1, exclusive=True)
    in_nucleus = tf.logical_or(before < top_p, top_p >= 1.0)
    keep = tf.logical_and(keep, in_nucleus)
    keep = tf.logical_or(keep, tf.equal(rank, 0))
    # Back from sorted to vocabulary order: argsort(order) is its inverse.
    keep = tf.gather(keep, tf.argsort(order, axis=-1, stable=True), batch_dims=1)
    return tf.where(keep, logits, tf.cast(-float("inf"), logits.dtype))


def _start_tokens(start_token, batch):
    """`start_token` may be one id for every row, or `[B]` ids (e.g. each prompt's last token)."""
    return tf.broadcast_to(tf.cast(start_token, tf.int32), [batch])


def _seed_tensor(seed):
    """A `[2]` int64 seed for the stateless random ops."""
    if seed is None:
        # Fresh randomness on every call of a traced function.
        return tf.random.uniform([2], maxval=tf.int64.max, dtype=tf.int64)
    if isinstance(seed, numbers.Integral):
        return tf.constant([seed, 0], tf.int64)
    seed = tf.cast(seed, tf.int64)
    if seed.shape.rank == 0:
        return tf.stack([seed, tf.constant(0, tf.int64)])
    return tf.reshape(seed, [2])


def sample_decode(step_fn, initial_state, *, start_token, end_token=None,
                  max_length, temperature=1.0, top_k=0, top_p=1.0, seed=None,
                  batch_size=None):
    """Decodes by sampling each token from `softmax(logits / temperature)`.

    Args:
        step_fn, initial_state, start_token, max_length, batch_size: as for
            `greedy_decode`.
        end_token: int, or None to always generate `max_length` tokens (e.g.
            a character language model).
        temperature: float or float scalar tensor, >= 0. Below `1e-6` (zero
            included) decoding is greedy, exactly `greedy_decode`'s output. A
            negative or NaN value raises: `ValueError` for a Python number,
            `tf.errors.InvalidArgumentError` for a tensor, when the graph runs
            (before the loop). `inf` samples uniformly.
        top_k: keep only the `top_k` most likely tokens (0: off; >= 0).
        top_p: nucleus sampling, keep the most likely tokens up to total
            probability `top_p` (1.0: off; in (0, 1]). See `filter_logits`,
            which also says how out-of-range values fail.
        seed: None (fresh randomness per call), a Python int, or an integer
            tensor of shape `[2]` (or a scalar), so that an exported signature
            can take the seed as an input. The same seed gives the same
            output.

    Returns:
        `(tokens [B, max_length] int32, lengths [B] int32)`, as for
        `greedy_decode`.
    """
    static_temperature = _static(temperature) is not None
    if static_temperature and not temperature >= 0:  # NaN too
        raise ValueError(
            f"`temperature` must be >= 0 (0 means greedy); received {temperature}."
        )
    if static_temperature and temperature < GREEDY_TEMPERATURE:
        return greedy_decode(step_fn, initial_state, start_token=start_token,
                             end_token=end_token, max_length=max_length,
                             batch_size=batch_size)

    seed = _seed_tensor(seed)
    temperature = tf.cast(temperature, tf.float32)
    if not static_temperature:
        temperature = _checked(temperature, lambda t: t >= 0.0,  # false for NaN
                               "`temperature` must be >= 0 (0 means greedy), not NaN")
    # Validate the filters once, before the loop (not only at its first step).
    if _static(top_k) is None:
        top_k = _checked(top_k, lambda k: k >= 0, "`top_k` must be >= 0 (0 disables it)")
    if _static(top_p) is None:
        top_p = _checked(top_p, lambda p: tf.logical_and(p > 0.0, p <= 1.0),
                         "`top_p` must be in (0, 1] (1 disables it)")
    greedy = temperature < GREEDY_TEMPERATURE
    # Divide by 1 instead of ~0 on the greedy branch so no inf/NaN appears.
    safe_temperature = tf.where(greedy, 1.0, temperature)

    def select(t, logits):
        filtered = filter_logits(logits / safe_temperature, top_k, top_p)
        # A distinct seed per step, derived from the call's seed, so the
        # whole sequence is a pure function of it.
        step_seed = tf.random.experimental.stateless_fold_in(seed, t)
        sampled = tf.random.stateless_categorical(
            filtered, 1, seed=step_seed, dtype=tf.int32)[:, 0]
        if static_temperature:
            return sampled
        return tf.where(greedy, tf.argmax(logits, axis=-1, output_type=tf.int32),
                        sampled)

    return _decode(step_fn, initial_state, select, start_token, end_token,
                   max_length, batch_size)


def _length_penalty(lengths, alpha):
    """GNMT's `((5 + length) / 6) ** alpha` (Wu et al., 2016)."""
    return tf.pow((5.0 + tf.cast(lengths, tf.float32)) / 6.0, alpha)


def beam_search(step_fn, initial_state, *, start_token, end_token, max_length,
                beam_width, length_penalty=0.0, return_all=False,
                batch_size=None):
    """Keeps the `beam_width` best partial hypotheses at every step.

    Hypotheses are ranked by total log-probability, divided by the GNMT
    length penalty `((5 + length) / 6) ** length_penalty` when
    `length_penalty > 0` (length counts the end token). A hypothesis that
    emitted `end_token` stays in the beam with its score, competing with the
    live ones, and is only extended with padding. The loop stops when every
    hypothesis has finished, or after `max_length` steps.

    `beam_width=1` gives exactly `greedy_decode`'s output.

    Args:
        step_fn, initial_state, start_token, end_token, max_length,
            batch_size: as for `greedy_decode`. The state is tiled to
            `B * beam_width` rows before the first step, and reordered by
            parent hypothesis after each step.
        beam_width: K, a Python int >= 1.
        length_penalty: alpha >= 0 (0: plain log-probability). GNMT uses
            0.6 to 1.0 to stop beam search from preferring short outputs.
        return_all: also return the K-1 runners-up.

    Returns:
        `(tokens [B, max_length] int32, lengths [B] int32, scores [B]
        float32)` for the best hypothesis of each row, or with
        `return_all=True` `[B, K, max_length]`, `[B, K]`, `[B, K]`, best
        first. `scores` are the ranking scores (log-probabilities, length
        normalised when `length_penalty > 0`); `tokens` and `lengths` follow
        the module docstring's convention.
    """
    if not isinstance(beam_width, int) or beam_width < 1:
        raise ValueError(f"`beam_width` must be an int >= 1; received {beam_width!r}.")
    static_alpha = _static(length_penalty)
    if static_alpha is not None and static_alpha < 0:
        raise ValueError(
            f"`length_penalty` must be >= 0; received {length_penalty}.")
    _check_max_length(max_length)
    use_penalty = static_alpha is None or static_alpha > 0
    k = beam_width
    batch = _batch_size(initial_state, batch_size)
    neg_inf = tf.constant(-float("inf"))
    initial_state = tf.nest.map_structure(
        lambda x: tf.repeat(tf.convert_to_tensor(x), k, axis=0), initial_state)
    # Flat row of each (batch, beam) pair's first beam: b * K.
    batch_offsets = tf.range(batch)[:, tf.newaxis] * k

    def cond(t, prev, state, log_probs, finished, lengths, history):
        del prev, state, log_probs, lengths, history
        return tf.logical_and(t < max_length,
                              tf.logical_not(tf.reduce_all(finished)))

    def body(t, prev, state, log_probs, finished, lengths, history):
        logits, state = step_fn(prev, state)
        vocab = tf.shape(logits)[-1]
        step_log_probs = tf.reshape(
            tf.nn.log_softmax(tf.cast(logits, tf.float32)), [batch, k, vocab])
        # A finished hypothesis may only be extended with padding, for free,
        # so it carries its score forward unchanged.
        pad_only = tf.where(tf.equal(tf.range(vocab), _PAD), 0.0, neg_inf)
        step_log_probs = tf.where(finished[..., tf.newaxis], pad_only,
                                  step_log_probs)
        candidates = log_probs[..., tf.newaxis] + step_log_probs  # [B, K, V]
        ranking = candidates
        if use_penalty:
            # Every candidate is one token longer than its parent's output,
            # counting the end token (already emitted, or emitted now).
            ranking = candidates / _length_penalty(
                lengths + 1, length_penalty)[..., tf.newaxis]

        # Best K of the K * V (parent beam, token) extensions per batch row.
        _, best = tf.math.top_k(tf.reshape(ranking, [batch, k * vocab]), k=k)
        parent = best // vocab
        tokens = best % vocab
        log_probs = tf.gather(tf.reshape(candidates, [batch, k * vocab]), best,
                              batch_dims=1)

        parent_finished = tf.gather(finished, parent, batch_dims=1)
        lengths = tf.gather(lengths, parent, batch_dims=1)
        # Only matters for -inf (dead) picks, which top-k can take when
        # K * V exceeds the number of live candidates.
        tokens = tf.where(parent_finished, _PAD, tokens)
        if end_token is None:
            ended = tf.zeros_like(parent_finished)
        else:
            ended = tf.logical_and(tf.logical_not(parent_finished),
                                   tf.equal(tokens, end_token))
        live = tf.logical_not(tf.logical_or(parent_finished, ended))
        lengths += tf.cast(live, tf.int32)
        finished = tf.logical_or(parent_finished, ended)

        # Each hypothesis inherits its parent's history (and state), then
        # appends its token at column t.
        history = tf.gather(history, parent, batch_dims=1)
        at_t = tf.equal(tf.range(tf.shape(history)[-1]), t)
        history = tf.where(at_t, tokens[..., tf.newaxis], history)
        rows = tf.reshape(parent + batch_offsets, [-1])
        state = tf.nest.map_structure(lambda x: tf.gather(x, rows), state)
        return (t + 1, tf.reshape(tokens, [-1]), state, log_probs, finished,
                lengths, history)

    # Only beam 0 is live at first: with K identical live beams the first
    # top-k would pick K copies of the single best token.
    first_beam = tf.concat([[0.0], tf.fill([k - 1], neg_inf)], axis=0)
    loop_vars = (
        tf.constant(0),
        tf.repeat(_start_tokens(start_token, batch), k),  # rows are batch-major: b*k + j
        initial_state,
        tf.tile(first_beam[tf.newaxis], [batch, 1]),
        tf.zeros([batch, k], tf.bool),
        tf.zeros([batch, k], tf.int32),
        tf.zeros([batch, k, max_length], tf.int32),
    )
    invariants = tf.nest.map_structure(_any_batch, loop_vars)
    _, _, _, log_probs, finished, lengths, history = tf.while_loop(
        cond, body, loop_vars, shape_invariants=invariants,
        maximum_iterations=max_length)

    scores = log_probs
    if use_penalty:
        scores = log_probs / _length_penalty(
            lengths + tf.cast(finished, tf.int32), length_penalty)
    # The last top-k already sorted the beams, but sorting again keeps the
    # "best first" contract independent of that detail.
    order = tf.argsort(scores, axis=-1, direction="DESCENDING", stable=True)
    history = tf.gather(history, order, batch_dims=1)
    lengths = tf.gather(lengths, order, batch_dims=1)
    scores = tf.gather(scores, order, batch_dims=1)
    if return_all:
        return history, lengths, scores
    return history[:, 0], lengths[:, 0], scores[:, 0]
