import itertools

import numpy as np
import pytest
import tensorflow as tf

from seqapps.decoding import beam_search, filter_logits, greedy_decode, sample_decode

PAD, START, END, A, B_ = 0, 1, 2, 3, 4

# A first-order Markov chain over 5 tokens, P[prev, next]. From START, A is
# the locally best token (0.56), but every continuation of A is mediocre,
# while B is almost always followed by END: the best sequence is "B END"
# (0.40 * 0.90 = 0.36), and greedy wanders off into "A A A A".
MARKOV = np.array(
    [
        [0.20, 0.20, 0.20, 0.20, 0.20],  # after PAD (finished rows)
        [0.01, 0.01, 0.02, 0.56, 0.40],  # after START
        [0.20, 0.20, 0.20, 0.20, 0.20],  # after END
        [0.01, 0.01, 0.28, 0.36, 0.34],  # after A
        [0.01, 0.01, 0.90, 0.04, 0.04],  # after B
    ]
)


def markov_step(tokens, state):
    logits = tf.gather(tf.constant(np.log(MARKOV), tf.float32), tokens)
    return logits, state


def brute_force_best(log_p, max_length):
    """Best complete (ends in END) or truncated (max_length, no END) sequence."""
    best, best_score = None, -np.inf
    vocab = log_p.shape[0]
    for length in range(1, max_length + 1):
        for seq in itertools.product(range(vocab), repeat=length):
            if END in seq[:-1] or (seq[-1] != END and length < max_length):
                continue
            prev, score = START, 0.0
            for token in seq:
                score, prev = score + log_p[prev, token], token
            if score > best_score:
                best, best_score = seq, score
    return list(best), best_score


def test_markov_beam_finds_global_best_but_greedy_does_not():
    max_length = 4
    best, best_score = brute_force_best(np.log(MARKOV), max_length)
    assert best == [B_, END]
    state = tf.zeros([2, 1])  # two identical rows; the state is unused

    tokens, lengths = greedy_decode(
        markov_step, state, start_token=START, end_token=END, max_length=max_length
    )
    np.testing.assert_array_equal(tokens, [[A] * 4] * 2)
    np.testing.assert_array_equal(lengths, [4, 4])

    for width in (2, 3):
        tokens, lengths, scores = beam_search(
            markov_step, state, start_token=START, end_token=END,
            max_length=max_length, beam_width=width,
        )
        np.testing.assert_array_equal(tokens, [[B_, END, PAD, PAD]] * 2)
        np.testing.assert_array_equal(lengths, [1, 1])  # END not counted
        np.testing.assert_allclose(scores, [best_score] * 2, rtol=1e-5)


# A second-order scorer whose state is a tuple, like an LSTM's [h, c]: the
# logits depend on the token before the previous one (kept one-hot in the
# state) and on how many A tokens the row has seen (a running count in the
# state). Beam search only gets this right if it reorders both state tensors
# by parent hypothesis.
VOCAB = 6
TABLE = np.random.default_rng(1).normal(scale=1.5, size=(VOCAB, VOCAB, VOCAB))
A_PENALTY = 0.7


def nested_step(tokens, state):
    prev_one_hot, a_count = state
    prev = tf.argmax(prev_one_hot, axis=-1, output_type=tf.int32)
    a_count = a_count + tf.cast(tf.equal(tokens, A), tf.float32)[:, None]
    logits = tf.gather_nd(tf.constant(TABLE, tf.float32), tf.stack([prev, tokens], -1))
    logits -= A_PENALTY * a_count * tf.one_hot(A, VOCAB)
    return logits, (tf.one_hot(tokens, VOCAB), a_count)


def nested_initial_state(initial_prev, initial_count):
    return (
        tf.one_hot(initial_prev, VOCAB),
        tf.constant(initial_count, tf.float32)[:, None],
    )


def nested_log_probs(fed, initial_prev, initial_count):
    """NumPy log-probs of the next token after feeding `fed` ([START, ...])."""
    prev = fed[-2] if len(fed) > 1 else initial_prev
    count = initial_count + sum(token == A for token in fed)
    logits = TABLE[prev, fed[-1]] - A_PENALTY * count * np.eye(VOCAB)[A]
    logits = logits - logits.max()
    return logits - np.log(np.exp(logits).sum())


def reference_beam_search(initial_prev, initial_count, width, max_length, alpha):
    """Textbook beam search over explicit histories (no state to reorder)."""

    def rank(hyp):
        tokens, log_p, _ = hyp
        return log_p / ((5.0 + len(tokens)) / 6.0) ** alpha

    beams = [([], 0.0, False)]
    for _ in range(max_length):
        candidates = []
        for tokens, log_p, finished in beams:
            if finished:
                candidates.append((tokens, log_p, True))
                continue
            step = nested_log_probs([START] + tokens, initial_prev, initial_count)
            for token in range(VOCAB):
                candidates.append((tokens + [token], log_p + step[token], token == END))
        beams = sorted(candidates, key=rank, reverse=True)[:width]
        if all(finished for _, _, finished in beams):
            break
    return [
        (tokens + [PAD] * (max_length - len(tokens)), len(tokens) - finished,
         rank((tokens, log_p, finished)))
        for tokens, log_p, finished in beams
    ]


# Alphas 1 and 2 were checked to change which hypotheses survive, so an
# off-by-one in the length the penalty uses would show.
@pytest.mark.parametrize("alpha", [0.0, 1.0, 2.0])
def test_beam_search_nested_state_matches_reference(alpha):
    initial_prev = [START, 4, 5, PAD, A, END]
    initial_count = [0.0, 2.0, 1.0, 0.0, 1.0, 3.0]
    rows = len(initial_prev)
    width, max_length = 3, 6
    tokens, lengths, scores = beam_search(
        nested_step, nested_initial_state(initial_prev, initial_count),
        start_token=START, end_token=END, max_length=max_length,
        beam_width=width, length_penalty=alpha, return_all=True,
    )
    assert tokens.shape == (rows, width, max_length)
    for row in range(rows):
        expected = reference_beam_search(
            initial_prev[row], initial_count[row], width, max_length, alpha
        )
        np.testing.assert_array_equal(tokens[row], [e[0] for e in expected])
        np.testing.assert_array_equal(lengths[row], [e[1] for e in expected])
        np.testing.assert_allclose(scores[row], [e[2] for e in expected], rtol=1e-4)

    best = beam_search(
        nested_step, nested_initial_state(initial_prev, initial_count),
        start_token=START, end_token=END, max_length=max_length,
        beam_width=width, length_penalty=alpha,
    )
    for got, want in zip(best, (tokens[:, 0], lengths[:, 0], scores[:, 0])):
        np.testing.assert_array_equal(got, want)


def _random_rows(batch, seed=0):
    rng = np.random.default_rng(seed)
    prev = rng.integers(0, VOCAB, size=batch)
    return nested_initial_state(prev, rng.integers(0, 3, size=batch).astype(float))


def test_beam_width_one_equals_greedy():
    state = _random_rows(16)
    for max_length in (1, 7):
        greedy = greedy_decode(
            nested_step, state, start_token=START, end_token=END, max_length=max_length
        )
        tokens, lengths, _ = beam_search(
            nested_step, state, start_token=START, end_token=END,
            max_length=max_length, beam_width=1,
        )
        np.testing.assert_array_equal(tokens, greedy[0])
        np.testing.assert_array_equal(lengths, greedy[1])


# A deterministic chain START -> A -> B -> END, except for rows whose state
# bias makes END win straight away.
CHAIN = np.full((VOCAB, VOCAB), -5.0)
CHAIN[START, A] = CHAIN[A, B_] = CHAIN[B_, END] = CHAIN[END, A] = CHAIN[PAD, A] = 0.0


def chain_step(tokens, bias):
    return tf.gather(tf.constant(CHAIN, tf.float32), tokens) + bias, bias


def test_greedy_respects_end_token_and_max_length():
    bias = np.zeros((3, VOCAB), np.float32)
    bias[1, END] = 10.0  # row 1 ends at once
    calls = []

    def counting_step(tokens, state):
        calls.append(None)  # eager: the loop body runs once per step
        return chain_step(tokens, state)

    tokens, lengths = greedy_decode(
        counting_step, bias, start_token=START, end_token=END, max_length=6
    )
    np.testing.assert_array_equal(
        tokens, [[A, B_, END, 0, 0, 0], [END, 0, 0, 0, 0, 0], [A, B_, END, 0, 0, 0]]
    )
    np.testing.assert_array_equal(lengths, [2, 0, 2])
    assert len(calls) == 3  # stopped once every row had ended

    tokens, lengths = greedy_decode(
        chain_step, bias, start_token=START, end_token=END, max_length=2
    )
    np.testing.assert_array_equal(tokens, [[A, B_], [END, 0], [A, B_]])
    np.testing.assert_array_equal(lengths, [2, 0, 2])

    tokens, lengths = greedy_decode(
        chain_step, bias[:1], start_token=START, end_token=None, max_length=5
    )
    np.testing.assert_array_equal(tokens, [[A, B_, END, A, B_]])
    np.testing.assert_array_equal(lengths, [5])


def test_sample_low_temperature_and_top_k_1_are_greedy():
    state = _random_rows(16, seed=2)
    kwargs = dict(start_token=START, end_token=END, max_length=8)
    greedy = greedy_decode(nested_step, state, **kwargs)
    for options in (
        dict(temperature=0.0),
        dict(temperature=1e-9, seed=3),
        dict(temperature=tf.constant(0.0), seed=3),
        dict(temperature=1.0, top_k=1, seed=3),
        dict(temperature=5.0, top_k=tf.constant(1), seed=4),
    ):
        tokens, lengths = sample_decode(nested_step, state, **kwargs, **options)
        np.testing.assert_array_equal(tokens, greedy[0], err_msg=str(options))
        np.testing.assert_array_equal(lengths, greedy[1], err_msg=str(options))


@pytest.mark.parametrize("options, name", [
    (dict(temperature=-1.0), "temperature"),
    (dict(temperature=float("nan")), "temperature"),
    (dict(top_k=-1), "top_k"),
    (dict(top_p=0.0), "top_p"),
    (dict(top_p=-0.5), "top_p"),
    (dict(top_p=1.5), "top_p"),
    (dict(top_p=float("nan")), "top_p"),
])
def test_invalid_tensor_options_fail_when_the_graph_runs(options, name):
    """Values only known at run time (an exported signature's inputs) are refused with an
    argument error naming the option, in eager and traced calls alike, never taken as
    "off" or greedy."""
    state = _random_rows(2)
    tensors = {k: tf.constant(v) for k, v in options.items()}
    kwargs = dict(start_token=START, max_length=3, seed=1, **{"temperature": tf.constant(1.0), **tensors})
    with pytest.raises(tf.errors.InvalidArgumentError, match=name):
        sample_decode(nested_step, state, **kwargs)
    traced = tf.function(lambda s: sample_decode(nested_step, s, **kwargs))
    with pytest.raises(tf.errors.InvalidArgumentError, match=name):
        traced(state)
    if name != "temperature":
        with pytest.raises(tf.errors.InvalidArgumentError, match=name):
            filter_logits(tf.zeros([1, 3]), **tensors)
    # The edges of the valid ranges decode.
    valid = dict(temperature=tf.constant(0.0), top_k=tf.constant(0), top_p=tf.constant(1.0))
    tokens, lengths = sample_decode(nested_step, state, start_token=START, max_length=3, seed=1, **valid)
    assert tokens.shape == (2, 3)


def test_sample_invalid_options():
    state = _random_rows(2)
    with pytest.raises(ValueError, match="temperature"):
        sample_decode(nested_step, state, start_token=START, max_length=3, temperature=-0.5)
    with pytest.raises(ValueError, match="top_k"):
        filter_logits(tf.zeros([1, 3]), top_k=-1)
    with pytest.raises(ValueError, match="top_p"):
        filter_logits(tf.zeros([1, 3]), top_p=0.0)
    with pytest.raises(ValueError, match="temperature"):
        sample_decode(nested_step, state, start_token=START, max_length=3, temperature=float("nan"))
    with pytest.raises(ValueError, match="beam_width"):
        beam_search(nested_step, state, start_token=START, end_token=END,
                    max_length=3, beam_width=0)


def test_sample_is_deterministic_given_seed():
    state = _random_rows(8, seed=4)
    kwargs = dict(start_token=START, end_token=None, max_length=12, temperature=1.3)
    first = sample_decode(nested_step, state, seed=7, **kwargs)
    again = sample_decode(nested_step, state, seed=7, **kwargs)
    as_tensor = sample_decode(nested_step, state, seed=tf.constant([7, 0]), **kwargs)
    other = sample_decode(nested_step, state, seed=8, **kwargs)
    np.testing.assert_array_equal(first[0], again[0])
    np.testing.assert_array_equal(first[0], as_tensor[0])
    assert not np.array_equal(first[0], other[0])
    np.testing.assert_array_equal(first[1], [12] * 8)  # end_token=None: full length


ONE_STEP_LOGITS = np.array([0.5, 1.0, -0.5, 2.0, 0.0, -1.0], np.float32)


def one_step_frequencies(n, **options):
    def step(tokens, state):
        return tf.tile(tf.constant(ONE_STEP_LOGITS)[None], [tf.shape(tokens)[0], 1]), state

    tokens, _ = sample_decode(
        step, tf.zeros([n, 1]), start_token=START, max_length=1, seed=11, **options
    )
    return np.bincount(tokens.numpy()[:, 0], minlength=ONE_STEP_LOGITS.size) / n


def _softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def test_sample_frequencies_match_softmax():
    n = 40_000  # frequency std <= 0.0025
    for temperature in (0.7, 2.0):
        np.testing.assert_allclose(
            one_step_frequencies(n, temperature=temperature),
            _softmax(ONE_STEP_LOGITS / temperature),
            atol=0.012,
        )
    # top-k: renormalised over the two largest logits (indices 3 and 1).
    expected = np.zeros(ONE_STEP_LOGITS.size)
    expected[[3, 1]] = _softmax(ONE_STEP_LOGITS[[3, 1]])
    np.testing.assert_allclose(one_step_frequencies(n, top_k=2), expected, atol=0.012)


def test_filter_logits():
    # Probabilities 0.5, 0.3, 0.15, 0.05, shuffled to exercise the unsorting.
    probs = np.array([0.15, 0.5, 0.05, 0.3])
    logits = tf.constant(np.log(probs)[None], tf.float32)

    def kept(**options):
        return np.isfinite(filter_logits(logits, **options).numpy()[0]).tolist()

    assert kept() == [True] * 4
    assert kept(top_k=2) == [False, True, False, True]
    assert kept(top_p=0.7) == [False, True, False, True]  # 0.5 + 0.3 crosses 0.7
    assert kept(top_p=0.85) == [True, True, False, True]
    assert kept(top_p=0.1) == [False, True, False, False]  # argmax always kept
    assert kept(top_k=3, top_p=0.6) == [False, True, False, True]  # 0.5/0.95 < 0.6
    assert kept(top_k=tf.constant(0), top_p=tf.constant(1.0)) == [True] * 4
    # Kept logits are unchanged; ties at top_k=1 keep the lowest index, like argmax.
    np.testing.assert_array_equal(filter_logits(logits, top_k=2).numpy()[0, [1, 3]],
                                  logits.numpy()[0, [1, 3]])
    ties = filter_logits(tf.constant([[1.0, 3.0, 3.0, 0.0]]), top_k=1).numpy()[0]
    assert np.isfinite(ties).tolist() == [False, True, False, False]


def test_decoders_trace_without_autograph_for_unknown_batch():
    state_spec = (tf.TensorSpec([None, VOCAB]), tf.TensorSpec([None, 1]))
    common = dict(start_token=START, end_token=END, max_length=6)

    greedy = tf.function(
        lambda state: greedy_decode(nested_step, state, **common),
        autograph=False, input_signature=[state_spec],
    )
    beam = tf.function(
        lambda state: beam_search(nested_step, state, beam_width=3,
                                  length_penalty=0.6, **common),
        autograph=False, input_signature=[state_spec],
    )
    sample = tf.function(
        lambda state, temperature, seed: sample_decode(
            nested_step, state, temperature=temperature, top_k=4, top_p=0.9,
            seed=seed, **common),
        autograph=False,
        input_signature=[state_spec, tf.TensorSpec([], tf.float32),
                         tf.TensorSpec([2], tf.int64)],
    )
    for fn, args in ((greedy, ()), (beam, ()), (sample, (0.8, [5, 6]))):
        outputs = fn.get_concrete_function().structured_outputs
        assert outputs[0].shape.as_list() == [None, 6]

    for batch in (1, 5):
        state = _random_rows(batch, seed=batch)
        for got, want in zip(greedy(state), greedy_decode(nested_step, state, **common)):
            np.testing.assert_array_equal(got, want)
        for got, want in zip(
            beam(state),
            beam_search(nested_step, state, beam_width=3, length_penalty=0.6, **common),
        ):
            np.testing.assert_allclose(got, want, rtol=1e-6)
        seed = tf.constant([5, 6], tf.int64)
        traced = sample(state, tf.constant(0.8), seed)
        np.testing.assert_array_equal(traced[0], sample(state, tf.constant(0.8), seed)[0])
        eager = sample_decode(nested_step, state, temperature=0.8, top_k=4, top_p=0.9,
                              seed=seed, **common)
        np.testing.assert_array_equal(traced[0], eager[0])
        np.testing.assert_array_equal(
            sample(state, tf.constant(0.0), seed)[0],
            greedy_decode(nested_step, state, **common)[0],
        )


def test_attention_decoder_rows_independent_and_saved_model(tmp_path):
    """A real step function (GRU cell + Bahdanau attention, with the encoder
    outputs, precomputed keys and source mask carried in the state): each
    batch row decodes as it would alone, and the traced loops survive a
    SavedModel round trip."""
    import keras

    from seqapps.attention import BahdanauAttention

    vocab, units, source_len = 7, 8, 5
    keras.utils.set_random_seed(0)
    attention = BahdanauAttention(6)
    embedding = keras.layers.Embedding(vocab, units)
    cell = keras.layers.GRUCell(units)
    output = keras.layers.Dense(vocab)
    discourage_end = -0.5 * tf.one_hot(END, vocab)  # so rows end at various steps

    def step(tokens, state):
        h, values, keys, mask = state
        context, _ = attention(h, values, mask=mask, keys=keys)
        h, _ = cell(tf.concat([embedding(tokens), context], axis=-1), [h])
        return output(h) + discourage_end, (h, values, keys, mask)

    def decode(encoded, mask, seed):
        state = (encoded[:, 0], encoded, attention.precompute_keys(encoded), mask)
        common = dict(start_token=START, end_token=END, max_length=8)
        return (
            beam_search(step, state, beam_width=3, length_penalty=0.6, **common)
            + sample_decode(step, state, seed=seed, top_p=0.9, **common)
            + greedy_decode(step, state, **common)
        )

    encoded = tf.random.stateless_normal([4, source_len, units], seed=[1, 2])
    mask = tf.sequence_mask([3, 5, 2, 4], source_len)
    seed = tf.constant([3, 4], tf.int64)
    together = decode(encoded, mask, seed)
    for row in range(4):
        alone = decode(encoded[row:row + 1], mask[row:row + 1], seed)
        for got, want in zip(alone[:3] + alone[5:], together[:3] + together[5:]):
            np.testing.assert_allclose(got[0], want[row], rtol=1e-5)

    module = tf.Module()
    module.layers = [attention, embedding, cell, output]
    module.decode = tf.function(
        decode, autograph=False,
        input_signature=[tf.TensorSpec([None, source_len, units]),
                         tf.TensorSpec([None, source_len], tf.bool),
                         tf.TensorSpec([2], tf.int64)],
    )
    tf.saved_model.save(module, str(tmp_path / "decoder"))
    restored = tf.saved_model.load(str(tmp_path / "decoder"))
    for got, want in zip(restored.decode(encoded, mask, seed), together):
        np.testing.assert_allclose(got, want, rtol=1e-5)
    # Not a degenerate test: some beams end early, some run to max_length.
    assert len(set(together[1].numpy().tolist())) > 1
