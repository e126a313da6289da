"""Strings in, answers out: generate, score and next-token top-k as TensorFlow functions.

`LanguageModelServer` holds the state build of the network, the vocabulary as a lookup
table and the tokenization as TF ops. The CLI calls these functions in memory and `export`
writes the very same functions as SavedModel signatures, so the two cannot disagree.

Generation (`seqapps.decoding.sample_decode`): the prompt, after the boundary token, is run
through the network up to its last token; decoding starts from that last token with the
state it left. The decoding step runs the cells directly. At temperature T the next token
is drawn from softmax(logits / T) (the seeds' alpha = 1/T: lower T, sharper); T = 0 is
greedy (argmax at every step). Padding (id 0) and "[UNK]" (id 1) are never generated.

Inputs have a defined answer, in bounded time and memory, or a clear argument error:
  * any batch size, the empty batch included (empty outputs of the same structure);
  * invalid UTF-8 -> U+FFFD (and NUL too in a lowercased word vocabulary); unknown
    words/characters -> the unknown token ("<unk>" for PTB), counted in `num_unknown`;
  * words are split at ASCII whitespace (space, \t, \n, \v, \f, \r) only;
  * an empty prompt -> generation starts after the boundary token (a sentence start);
  * at most `max_input_tokens` tokens of a text are read (default 1000, set at export):
    `score` scores the first ones (and then not the end token: the sentence did not end),
    `generate` / `next_tokens` read the last ones of the prompt; `truncated` says so and
    `num_prompt_tokens` counts the prompt tokens read. `score` runs the output softmax over
    chunks of at most ~SCORE_CHUNK_ELEMENTS logits, so memory does not grow with the text;
  * temperature: 0 -> greedy, exactly the argmax path; above MAX_TEMPERATURE -> capped
    (uniform for all practical purposes); negative, NaN or infinite -> an argument error;
  * max_tokens: 0 -> empty text; above the cap (default 1000, set at export) -> the cap;
    negative -> an argument error;
  * top_k: 0 = off, above the vocabulary size = all tokens, negative -> an argument error;
    top_p: in (0, 1], 1 = off; 0, negative, above 1 or NaN -> an argument error;
  * next_tokens' k: 1 or more, above the number of real tokens (vocabulary - 2) -> that
    number; below 1 -> an argument error.
Argument errors are `tf.errors.InvalidArgumentError` ("assertion failed: [<which input>
must be ...]"), raised before any decoding runs; the CLI checks the same rules first and
answers in one line.
"""

import numpy as np
import tensorflow as tf
import keras

from apps.lm import model as lm_model
from seqapps.decoding import sample_decode
from seqapps.export import clean_utf8

MAX_TEMPERATURE = 1e4
DEFAULT_MAX_TOKENS_CAP = 1000
DEFAULT_MAX_INPUT_TOKENS = 1000
SCORE_CHUNK_ELEMENTS = 1 << 22  # logits computed at once by `score` (16 MB of float32), unless one step of the batch is more
_NEG = -1e9

GENERATE_SIGNATURE = [
    tf.TensorSpec([None], tf.string, name="prompt"),
    tf.TensorSpec([], tf.int32, name="max_tokens"),
    tf.TensorSpec([], tf.float32, name="temperature"),
    tf.TensorSpec([], tf.int64, name="seed"),
]
FILTERED_SIGNATURE = GENERATE_SIGNATURE + [
    tf.TensorSpec([], tf.int32, name="top_k"),
    tf.TensorSpec([], tf.float32, name="top_p"),
]
SCORE_SIGNATURE = [tf.TensorSpec([None], tf.string, name="sentences")]
NEXT_SIGNATURE = [tf.TensorSpec([None], tf.string, name="prompt"), tf.TensorSpec([], tf.int32, name="k")]

# What the outputs of each signature mean (signatures.md / metadata.json, and the README).
OUTPUTS = {
    "generate": {
        "text": "the continuation (tokens joined), without the prompt",
        "tokens": "[B, max_tokens] the generated tokens, '' after num_tokens",
        "num_tokens": "tokens generated (= the capped max_tokens)",
        "num_prompt_tokens": "prompt tokens read (at most max_input_tokens: the last ones)",
        "num_unknown": "unknown tokens among those read",
        "truncated": "the prompt was longer than max_input_tokens and only its end was read",
    },
    "score": {
        "log_prob": "natural-log probability of the tokens scored (boundary token before, <eos> after at word level)",
        "num_tokens": "tokens scored (at most max_input_tokens, + <eos> at word level when not truncated)",
        "perplexity": "exp(-log_prob / num_tokens); 1 for an empty text at character level",
        "token_log_probs": "[B, T] each token's log-probability, 0 after num_tokens",
        "tokens": "[B, T] the tokens scored, '' after num_tokens",
        "num_unknown": "unknown tokens among those scored",
        "truncated": "the text was longer than max_input_tokens and only its first ones were scored",
    },
    "next_tokens": {
        "tokens": "[B, k] the k most likely next tokens, best first",
        "log_probs": "[B, k] their log-probabilities",
        "num_prompt_tokens": "prompt tokens read (at most max_input_tokens: the last ones)",
        "num_unknown": "unknown tokens among those read",
        "truncated": "the prompt was longer than max_input_tokens and only its end was read",
    },
}
OUTPUTS["generate_filtered"] = OUTPUTS["generate"]


def _require(condition, message, value):
    """An assertion op: `InvalidArgumentError('assertion failed: [message] [value]')`."""
    return tf.debugging.Assert(condition, [message, value])


class LanguageModelServer:
    def __init__(self, state_model, config, codec, *, max_tokens_cap=DEFAULT_MAX_TOKENS_CAP,
                 max_input_tokens=DEFAULT_MAX_INPUT_TOKENS, top_k=0, top_p=1.0, score_end=True):
        self.model, self.config, self.codec = state_model, lm_model.model_config(config), codec
        check_server_options(max_tokens_cap, max_input_tokens, top_k, top_p)
        self.max_tokens_cap, self.default_top_k, self.default_top_p = int(max_tokens_cap), int(top_k), float(top_p)
        self.max_input_tokens = int(max_input_tokens)
        self.score_end = bool(score_end)
        # The same layers without the output softmax: the states after a prompt cost no logits.
        self.state_model = keras.Model(state_model.inputs, state_model.outputs[1:], name="lm_prompt_state")
        keys = [t for t in codec.vocabulary if t != ""]
        values = [codec.index[t] for t in keys]
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(tf.constant(keys), tf.constant(values, tf.int32)),
            default_value=codec.unk_id,
        )
        self.generate = tf.function(self.generate_fn, input_signature=GENERATE_SIGNATURE)
        self.generate_filtered = tf.function(self.generate_filtered_fn, input_signature=FILTERED_SIGNATURE)
        self.score = tf.function(self.score_fn, input_signature=SCORE_SIGNATURE)
        self.next_tokens = tf.function(self.next_tokens_fn, input_signature=NEXT_SIGNATURE)

    def endpoints(self):
        """{signature name: (function, input signature)} for `seqapps.export.export_saved_model`."""
        return {
            "generate": (self.generate_fn, GENERATE_SIGNATURE),
            "generate_filtered": (self.generate_filtered_fn, FILTERED_SIGNATURE),
            "score": (self.score_fn, SCORE_SIGNATURE),
            "next_tokens": (self.next_tokens_fn, NEXT_SIGNATURE),
        }

    # --- strings <-> ids ------------------------------------------------------------

    def _tokens(self, text):
        text = clean_utf8(text)
        if self.codec.level == "char":
            return tf.strings.unicode_split(text, "UTF-8")
        if self.codec.lowercase:
            # tf.strings.lower(encoding="utf-8") ends a string at its first NUL: read NUL as U+FFFD
            text = tf.strings.lower(tf.strings.regex_replace(text, "\\x00", "\uFFFD"), encoding="utf-8")
        return tf.strings.split(text)

    def _ids(self, text, *, end=False, keep_last=False):
        """Ragged ids: the boundary token, at most `max_input_tokens` of the text's tokens
        (the first ones, or the last with `keep_last`) and, if `end`, the end token after a
        text that was not cut. Also `(read, unknown, truncated)` per row."""
        tokens = self._tokens(text)
        truncated = tokens.row_lengths() > self.max_input_tokens
        cap = self.max_input_tokens
        tokens = tokens[:, -cap:] if keep_last else tokens[:, :cap]
        ids = tf.ragged.map_flat_values(self.table.lookup, tokens)
        unknown = tf.reduce_sum(tf.cast(tf.equal(ids, self.codec.unk_id), tf.int32), axis=1)
        known = tf.reduce_sum(tf.cast(tf.equal(tokens, self.codec.vocabulary[self.codec.unk_id]), tf.int32), axis=1)
        batch = tf.shape(text)[0]
        pieces = [tf.RaggedTensor.from_tensor(tf.fill([batch, 1], self.codec.boundary_id)), ids]
        if end:
            ending = tf.fill([batch, 1], self.codec.end_id)
            pieces.append(tf.ragged.boolean_mask(ending, tf.logical_not(truncated)[:, tf.newaxis]))
        read = tf.cast(tokens.row_lengths(), tf.int32)
        return tf.concat(pieces, axis=1), read, unknown - known, truncated

    def _strings(self, ids):
        return tf.gather(tf.constant(self.codec.vocabulary), ids)

    def _join(self, ragged_ids):
        return tf.strings.reduce_join(self._strings(ragged_ids), axis=1, separator=self.codec.separator)

    # --- the network ----------------------------------------------------------------

    def _zero_states(self, batch):
        return [tf.zeros([batch, self.config["units"]]) for _ in lm_model.zero_states(self.config, 1)]

    def _run(self, dense_ids, states):
        """Logits [B, T, V] and the states after them; id 0 is masked (keeps the state)."""
        logits, *states = self.model([dense_ids, *states], training=False)
        return tf.cast(logits, tf.float32), [tf.cast(s, tf.float32) for s in states]

    def _prompt_state(self, ids):
        """States after all but the last token of each row (no logits), and that last token."""
        lengths = ids.row_lengths(axis=1)
        dense = ids.to_tensor()
        dense = tf.pad(dense, [[0, 0], [0, tf.maximum(0, 1 - tf.shape(dense)[1])]])  # >= 1 step, also for 0 rows
        last = tf.gather(dense, tf.maximum(lengths - 1, 0), batch_dims=1)
        positions = tf.range(tf.shape(dense, out_type=tf.int64)[1])[tf.newaxis]
        states = self.state_model([tf.where(positions < lengths[:, tf.newaxis] - 1, dense, 0),
                                   *self._zero_states(tf.shape(dense)[0])], training=False)
        states = states if isinstance(states, (list, tuple)) else [states]
        return [tf.cast(s, tf.float32) for s in states], last

    def _mask_special(self, logits):
        special = tf.range(tf.shape(logits)[-1]) < 2  # padding and [UNK]
        return tf.where(special, tf.cast(_NEG, logits.dtype), logits)

    def _step(self, tokens, state):
        pending, first, states = state
        tokens = tf.where(first, pending, tokens)
        logits, states = lm_model.step(self.model, tokens, states)
        return self._mask_special(tf.cast(logits, tf.float32)), (pending, tf.zeros_like(first), states)

    # --- endpoints ------------------------------------------------------------------

    def generate_fn(self, prompt, max_tokens, temperature, seed):
        """Continues each prompt by up to `max_tokens` tokens sampled at `temperature`."""
        return self._generate(prompt, max_tokens, temperature, seed, self.default_top_k, self.default_top_p)

    def generate_filtered_fn(self, prompt, max_tokens, temperature, seed, top_k, top_p):
        """`generate` with top-k (0: off) and nucleus top-p (1: off) filtering."""
        checks = [
            _require(top_k >= 0, "top_k must be >= 0 (0 = off)", top_k),
            _require(tf.logical_and(top_p > 0.0, top_p <= 1.0), "top_p must be in (0, 1] (1 = off)", top_p),
        ]
        with tf.control_dependencies(checks):
            top_k = tf.minimum(top_k, self.codec.vocab_size)
            top_p = tf.identity(top_p)
        return self._generate(prompt, max_tokens, temperature, seed, top_k, top_p)

    def _generate(self, prompt, max_tokens, temperature, seed, top_k, top_p):
        checks = [
            _require(max_tokens >= 0, "max_tokens must be >= 0 (0 = empty text)", max_tokens),
            _require(tf.logical_and(temperature >= 0.0, tf.math.is_finite(temperature)),
                     "temperature must be a finite number >= 0 (0 = greedy)", temperature),
        ]
        with tf.control_dependencies(checks):
            max_tokens = tf.minimum(max_tokens, self.max_tokens_cap)
            temperature = tf.minimum(temperature, MAX_TEMPERATURE)
            prompt = tf.identity(prompt)
        ids, read, unknown, truncated = self._ids(prompt, keep_last=True)
        states, last = self._prompt_state(ids)
        start = (last, tf.ones_like(last, tf.bool), states)

        def decode(k, p):
            return sample_decode(self._step, start, start_token=0, end_token=None, max_length=max_tokens,
                                 temperature=temperature, top_k=k, top_p=p, seed=seed)

        if isinstance(top_k, int) and isinstance(top_p, float):
            tokens, lengths = decode(top_k, top_p)
        else:  # skip the per-step sort of the whole vocabulary when no filter is asked for
            filtered = tf.logical_or(top_k > 0, top_p < 1.0)
            tokens, lengths = tf.cond(filtered, lambda: decode(top_k, top_p), lambda: decode(0, 1.0))
        ragged = tf.RaggedTensor.from_tensor(tokens, lengths=lengths)
        return {
            "text": self._join(ragged),
            "tokens": self._strings(tokens),
            "num_tokens": lengths,
            "num_prompt_tokens": read,
            "num_unknown": unknown,
            "truncated": truncated,
        }

    def score_fn(self, sentences):
        """Log-probability (natural log) of each sentence after the boundary token (and, at
        word level, of the end token after it), per token and in total, and perplexity.

        The network reads the whole batch once, `chunk` steps at a time with the state carried
        between chunks, so at most ~SCORE_CHUNK_ELEMENTS logits exist at any time."""
        ids, _, unknown, truncated = self._ids(sentences, end=self.score_end and self.codec.end_id is not None)
        lengths = ids.row_lengths(axis=1)
        dense = ids.to_tensor()
        dense = tf.pad(dense, [[0, 0], [0, tf.maximum(0, 2 - tf.shape(dense)[1])]])  # >= 1 step
        x, y = dense[:, :-1], dense[:, 1:]
        batch, steps = tf.shape(x)[0], tf.shape(x)[1]
        per_step = tf.maximum(tf.cast(batch, tf.int64) * self.codec.vocab_size, 1)
        chunk = tf.cast(tf.clip_by_value(SCORE_CHUNK_ELEMENTS // per_step, 1, tf.cast(steps, tf.int64)), tf.int32)
        chunks = (steps + chunk - 1) // chunk
        padding = [[0, 0], [0, chunks * chunk - steps]]
        x, y_padded = tf.pad(x, padding), tf.pad(y, padding)

        def body(i, states, pieces):
            window = tf.range(i * chunk, (i + 1) * chunk)
            logits, states = self._run(tf.gather(x, window, axis=1), states)
            targets = tf.gather(y_padded, window, axis=1)
            picked = tf.gather(logits, targets, batch_dims=2) - tf.reduce_logsumexp(logits, axis=-1)
            return i + 1, states, pieces.write(i, picked)

        states = self._zero_states(batch)
        pieces = tf.TensorArray(tf.float32, size=chunks, element_shape=tf.TensorShape([None, None]))
        _, _, pieces = tf.while_loop(
            lambda i, *_: i < chunks, body, (tf.constant(0), states, pieces),
            shape_invariants=(tf.TensorShape([]), [tf.TensorShape([None, s.shape[-1]]) for s in states],
                              tf.TensorShape(None)))
        token_lp = tf.reshape(tf.transpose(pieces.stack(), [1, 0, 2]), [batch, chunks * chunk])[:, :steps]
        valid = tf.range(tf.shape(y, out_type=tf.int64)[1])[tf.newaxis] < lengths[:, tf.newaxis] - 1
        token_lp = tf.where(valid, token_lp, 0.0)
        total = tf.reduce_sum(token_lp, axis=1)
        count = tf.cast(lengths - 1, tf.int32)
        return {
            "log_prob": total,
            "num_tokens": count,
            "perplexity": tf.exp(-total / tf.cast(tf.maximum(count, 1), tf.float32)),
            "token_log_probs": token_lp,
            "tokens": tf.where(valid, self._strings(y), ""),
            "num_unknown": unknown,
            "truncated": truncated,
        }

    def next_tokens_fn(self, prompt, k):
        """The k most likely next tokens after each prompt, with their log-probabilities."""
        check = _require(k >= 1, "k must be >= 1", k)
        with tf.control_dependencies([check]):
            k = tf.minimum(k, self.codec.vocab_size - 2)
            prompt = tf.identity(prompt)
        ids, read, unknown, truncated = self._ids(prompt, keep_last=True)
        states, last = self._prompt_state(ids)
        logits, _ = lm_model.step(self.model, last, states)
        log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32))
        _, top = tf.math.top_k(self._mask_special(log_probs), k=k)
        return {"tokens": self._strings(top), "log_probs": tf.gather(log_probs, top, batch_dims=1),
                "num_prompt_tokens": read, "num_unknown": unknown, "truncated": truncated}


def check_server_options(max_tokens_cap, max_input_tokens, top_k, top_p):
    """Clear errors for the options fixed when a server is built (or exported)."""
    if int(max_tokens_cap) < 0:
        raise ValueError(f"max_tokens_cap must be >= 0; got {max_tokens_cap}")
    if int(max_input_tokens) < 1:
        raise ValueError(f"max_input_tokens must be >= 1; got {max_input_tokens}")
    if int(top_k) < 0:
        raise ValueError(f"top_k must be >= 0 (0 = off); got {top_k}")
    if not 0 < float(top_p) <= 1:
        raise ValueError(f"top_p must be in (0, 1] (1 = off); got {top_p}")


class NgramServer:
    """The same answers from a Kneser–Ney model, in NumPy (not exportable), with the same
    input cap; the CLI checks the options before calling it."""

    def __init__(self, ngram, codec, *, max_tokens_cap=DEFAULT_MAX_TOKENS_CAP, max_input_tokens=DEFAULT_MAX_INPUT_TOKENS,
                 score_end=True, **_):
        self.ngram, self.codec, self.max_tokens_cap, self.score_end = ngram, codec, int(max_tokens_cap), score_end
        self.max_input_tokens = int(max_input_tokens)

    def _ids(self, text, keep_last=False):
        if isinstance(text, bytes):
            text = text.decode("utf-8", errors="replace")
        tokens = self.codec.tokenize(text)
        truncated = len(tokens) > self.max_input_tokens
        tokens = tokens[-self.max_input_tokens:] if keep_last else tokens[: self.max_input_tokens]
        ids = self.codec.encode(tokens)
        unknown = int(np.sum(ids == self.codec.unk_id)) - tokens.count(self.codec.vocabulary[self.codec.unk_id])
        return np.concatenate([[self.codec.boundary_id], ids]).astype(np.int64), unknown, truncated

    def _distribution(self, context):
        p = self.ngram.distribution(context)
        p[:2] = 0.0  # never padding or [UNK]
        return p / p.sum()

    def generate_filtered(self, prompt, max_tokens, temperature, seed, top_k, top_p):
        n = int(np.clip(max_tokens, 0, self.max_tokens_cap))
        rng = np.random.default_rng(seed)
        texts, all_tokens, unknowns, read, cut = [], [], [], [], []
        for text in prompt:
            ids, unknown, truncated = self._ids(text, keep_last=True)
            read.append(len(ids) - 1)
            cut.append(truncated)
            out = []
            for _ in range(n):
                p = self._distribution(ids)
                if temperature <= 0:
                    nxt = int(np.argmax(p))
                else:
                    logits = np.log(np.maximum(p, 1e-300)) / min(temperature, MAX_TEMPERATURE)
                    logits[p == 0] = -np.inf
                    q = np.exp(logits - logits.max())
                    order = np.argsort(-q, kind="stable")
                    keep = np.zeros_like(q, bool)
                    keep[order[: top_k if top_k > 0 else len(q)]] = True
                    q = np.where(keep, q, 0.0)
                    q /= q.sum()
                    if top_p < 1:
                        before = np.cumsum(q[order]) - q[order]
                        keep[order[before >= top_p]] = False
                        keep[order[0]] = True
                        q = np.where(keep, q, 0.0)
                        q /= q.sum()
                    nxt = int(rng.choice(len(q), p=q))
                out.append(nxt)
                ids = np.append(ids, nxt)
            texts.append(self.codec.decode(out))
            all_tokens.append([self.codec.vocabulary[i] for i in out])
            unknowns.append(unknown)
        width = max([len(t) for t in all_tokens] + [0])
        return {"text": np.array(texts, dtype=object),
                "tokens": np.array([t + [""] * (width - len(t)) for t in all_tokens], dtype=object).reshape(len(prompt), width),
                "num_tokens": np.array([len(t) for t in all_tokens], dtype=np.int32),
                "num_prompt_tokens": np.array(read, dtype=np.int32), "num_unknown": np.array(unknowns, dtype=np.int32),
                "truncated": np.array(cut, dtype=bool)}

    def score(self, sentences):
        rows = []
        for text in sentences:
            ids, unknown, truncated = self._ids(text)
            if self.score_end and self.codec.end_id is not None and not truncated:
                ids = np.append(ids, self.codec.end_id)
            lp = self.ngram.stream_log_probs(ids) if len(ids) > 1 else np.zeros(0)
            rows.append((ids[1:], lp, unknown, truncated))
        width = max([len(r[1]) for r in rows] + [1])
        pad = lambda a, v: np.concatenate([a, np.full(width - len(a), v)])  # noqa: E731
        return {
            "log_prob": np.array([r[1].sum() for r in rows]),
            "num_tokens": np.array([len(r[1]) for r in rows], dtype=np.int32),
            "perplexity": np.array([np.exp(-r[1].sum() / max(len(r[1]), 1)) for r in rows]),
            "token_log_probs": np.array([pad(r[1], 0.0) for r in rows]).reshape(len(rows), width),
            "tokens": np.array([pad(np.array([self.codec.vocabulary[i] for i in r[0]], dtype=object), "") for r in rows],
                               dtype=object).reshape(len(rows), width),
            "num_unknown": np.array([r[2] for r in rows], dtype=np.int32),
            "truncated": np.array([r[3] for r in rows], dtype=bool),
        }

    def next_tokens(self, prompt, k):
        tokens, log_probs, unknowns, read, cut = [], [], [], [], []
        k = int(np.clip(k, 1, self.codec.vocab_size - 2))
        for text in prompt:
            ids, unknown, truncated = self._ids(text, keep_last=True)
            p = self.ngram.distribution(ids)
            masked = p.copy()
            masked[:2] = -1.0
            top = np.argsort(-masked, kind="stable")[:k]
            tokens.append([self.codec.vocabulary[i] for i in top])
            log_probs.append(np.log(np.maximum(p[top], 1e-300)))
            unknowns.append(unknown)
            read.append(len(ids) - 1)
            cut.append(truncated)
        return {"tokens": np.array(tokens, dtype=object).reshape(len(prompt), k),
                "log_probs": np.array(log_probs).reshape(len(prompt), k),
                "num_prompt_tokens": np.array(read, dtype=np.int32), "num_unknown": np.array(unknowns, dtype=np.int32),
                "truncated": np.array(cut, dtype=bool)}
