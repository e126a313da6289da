"""Strings in, answers out: generate, score and next-token top-k as TensorFlow functions.

`LanguageModelServer` holds the state build of the network, the vocabulary as a lookup
table and the tokenization as TF ops. The CLI calls these functions in memory and `export`
writes the very same functions as SavedModel signatures, so the two cannot disagree.

Generation (`seqapps.decoding.sample_decode`): the prompt, after the boundary token, is run
through the network up to its last token; decoding starts from that last token with the
state it left. The decoding step runs the cells directly. At temperature T the next token
is drawn from softmax(logits / T) (the seeds' alpha = 1/T: lower T, sharper); T = 0 is
greedy (argmax at every step). Padding (id 0) and "[UNK]" (id 1) are never generated.

Bad input has a defined answer, never an unbounded loop:
  * unknown words/characters -> the unknown token ("<unk>" for PTB), counted in `num_unknown`;
  * an empty prompt -> generation starts after the boundary token (a sentence start);
  * temperature <= 0 or NaN -> greedy; above MAX_TEMPERATURE -> MAX_TEMPERATURE (uniform
    for all practical purposes);
  * max_tokens < 0 -> 0 (empty text); above the cap (default 1000, set at export) -> the cap;
  * top_k outside 0..V -> clipped; top_p outside (0, 1] -> 1 (off).
"""

import numpy as np
import tensorflow as tf

from apps.lm import model as lm_model
from seqapps.decoding import sample_decode
from seqapps.export import clean_utf8

MAX_TEMPERATURE = 1e4
DEFAULT_MAX_TOKENS_CAP = 1000
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


class LanguageModelServer:
    def __init__(self, state_model, config, codec, *, max_tokens_cap=DEFAULT_MAX_TOKENS_CAP, top_k=0, top_p=1.0, score_end=True):
        self.model, self.config, self.codec = state_model, lm_model.model_config(config), codec
        self.max_tokens_cap, self.default_top_k, self.default_top_p = int(max_tokens_cap), int(top_k), float(top_p)
        self.score_end = bool(score_end)
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
            text = tf.strings.lower(text, encoding="utf-8")
        return tf.strings.split(text)

    def _ids(self, text, end=False):
        """Ragged ids: boundary token, the text's tokens (and the end token if `end`)."""
        tokens = self._tokens(text)
        ids = tf.ragged.map_flat_values(self.table.lookup, tokens)
        unknown = tf.reduce_sum(tf.cast(tf.equal(ids, self.codec.unk_id), tf.int32), axis=1)
        known = tf.reduce_sum(tf.cast(tf.equal(tokens, self.codec.vocabulary[self.codec.unk_id]), tf.int32), axis=1)
        batch = tf.shape(text)[0]
        pieces = [tf.RaggedTensor.from_tensor(tf.fill([batch, 1], self.codec.boundary_id)), ids]
        if end:
            pieces.append(tf.RaggedTensor.from_tensor(tf.fill([batch, 1], self.codec.end_id)))
        return tf.concat(pieces, axis=1), unknown - known

    def _strings(self, ids):
        return tf.gather(tf.constant(self.codec.vocabulary), ids)

    def _join(self, ragged_ids):
        return tf.strings.reduce_join(self._strings(ragged_ids), axis=1, separator=self.codec.separator)

    # --- the network ----------------------------------------------------------------

    def _run(self, dense_ids):
        """Logits [B, T, V] and final states, from zero states; id 0 is masked."""
        batch = tf.shape(dense_ids)[0]
        states = [tf.zeros([batch, self.config["units"]]) for _ in lm_model.zero_states(self.config, 1)]
        logits, *states = self.model([dense_ids, *states], training=False)
        return tf.cast(logits, tf.float32), states

    def _prompt_state(self, ids):
        """States after all but the last token of each row, and that last token."""
        lengths = ids.row_lengths(axis=1)
        dense = ids.to_tensor()
        last = tf.gather(dense, lengths - 1, batch_dims=1)
        positions = tf.range(tf.shape(dense, out_type=tf.int64)[1])[tf.newaxis]
        _, states = self._run(tf.where(positions < lengths[:, tf.newaxis] - 1, dense, 0))
        return states, last

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
        top_k = tf.clip_by_value(top_k, 0, self.codec.vocab_size)
        top_p = tf.where(tf.logical_and(top_p > 0.0, top_p <= 1.0), top_p, 1.0)
        return self._generate(prompt, max_tokens, temperature, seed, top_k, top_p)

    def _generate(self, prompt, max_tokens, temperature, seed, top_k, top_p):
        ids, unknown = self._ids(prompt)
        states, last = self._prompt_state(ids)
        max_tokens = tf.clip_by_value(max_tokens, 0, self.max_tokens_cap)
        temperature = tf.where(tf.math.is_nan(temperature), 0.0, tf.minimum(temperature, MAX_TEMPERATURE))
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
            "num_unknown": unknown,
        }

    def score_fn(self, sentences):
        """Log-probability (natural log) of each sentence after the boundary token (and, at
        word level, of the end token after it), per token and in total, and perplexity."""
        ids, unknown = self._ids(sentences, end=self.score_end and self.codec.end_id is not None)
        lengths = ids.row_lengths(axis=1)
        dense = ids.to_tensor()
        dense = tf.pad(dense, [[0, 0], [0, tf.maximum(0, 2 - tf.shape(dense)[1])]])  # >= 1 step
        x, y = dense[:, :-1], dense[:, 1:]
        valid = tf.range(tf.shape(y, out_type=tf.int64)[1])[tf.newaxis] < lengths[:, tf.newaxis] - 1
        logits, _ = self._run(x)
        token_lp = tf.gather(tf.nn.log_softmax(logits), y, batch_dims=2)
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
        }

    def next_tokens_fn(self, prompt, k):
        """The k most likely next tokens after each prompt, with their log-probabilities."""
        ids, unknown = self._ids(prompt)
        lengths = ids.row_lengths(axis=1)
        logits, _ = self._run(ids.to_tensor())
        last = tf.nn.log_softmax(tf.gather(logits, lengths - 1, batch_dims=1))
        k = tf.clip_by_value(k, 1, self.codec.vocab_size - 2)
        _, top = tf.math.top_k(self._mask_special(last), k=k)
        return {"tokens": self._strings(top), "log_probs": tf.gather(last, top, batch_dims=1), "num_unknown": unknown}


class NgramServer:
    """The same three answers from a Kneser–Ney model, in NumPy (not exportable)."""

    def __init__(self, ngram, codec, *, max_tokens_cap=DEFAULT_MAX_TOKENS_CAP, score_end=True, **_):
        self.ngram, self.codec, self.max_tokens_cap, self.score_end = ngram, codec, int(max_tokens_cap), score_end

    def _ids(self, text):
        tokens = self.codec.tokenize(text)
        ids = self.codec.encode(tokens)
        unknown = int(np.sum(ids == self.codec.unk_id)) - tokens.count(self.codec.vocabulary[self.codec.unk_id])
        return np.concatenate([[self.codec.boundary_id], ids]).astype(np.int64), unknown

    def _distribution(self, context):
        p = self.ngram.distribution(context)
        p[:2] = 0.0  # never padding or [UNK]
        return p / p.sum()

    def generate_filtered(self, prompt, max_tokens, temperature, seed, top_k, top_p):
        n = int(np.clip(max_tokens, 0, self.max_tokens_cap))
        rng = np.random.default_rng(seed)
        texts, all_tokens, unknowns = [], [], []
        for text in prompt:
            ids, unknown = self._ids(text)
            out = []
            for _ in range(n):
                p = self._distribution(ids)
                if not temperature or temperature <= 0 or not np.isfinite(temperature):
                    nxt = int(np.argmax(p))
                else:
                    logits = np.log(np.maximum(p, 1e-300)) / min(temperature, MAX_TEMPERATURE)
                    logits[p == 0] = -np.inf
                    q = np.exp(logits - logits.max())
                    order = np.argsort(-q, kind="stable")
                    keep = np.zeros_like(q, bool)
                    keep[order[: top_k if top_k and top_k > 0 else len(q)]] = True
                    q = np.where(keep, q, 0.0)
                    q /= q.sum()
                    if 0 < top_p < 1:
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
                "num_tokens": np.array([len(t) for t in all_tokens]), "num_unknown": np.array(unknowns)}

    def score(self, sentences):
        rows = []
        for text in sentences:
            ids, unknown = self._ids(text)
            if self.score_end and self.codec.end_id is not None:
                ids = np.append(ids, self.codec.end_id)
            lp = self.ngram.stream_log_probs(ids) if len(ids) > 1 else np.zeros(0)
            rows.append((ids[1:], lp, unknown))
        width = max([len(r[1]) for r in rows] + [1])
        pad = lambda a, v: np.concatenate([a, np.full(width - len(a), v)])  # noqa: E731
        return {
            "log_prob": np.array([r[1].sum() for r in rows]),
            "num_tokens": np.array([len(r[1]) for r in rows]),
            "perplexity": np.array([np.exp(-r[1].sum() / max(len(r[1]), 1)) for r in rows]),
            "token_log_probs": np.array([pad(r[1], 0.0) for r in rows]),
            "tokens": np.array([pad(np.array([self.codec.vocabulary[i] for i in r[0]], dtype=object), "") for r in rows], dtype=object),
            "num_unknown": np.array([r[2] for r in rows]),
        }

    def next_tokens(self, prompt, k):
        tokens, log_probs, unknowns = [], [], []
        k = int(np.clip(k, 1, self.codec.vocab_size - 2))
        for text in prompt:
            ids, unknown = self._ids(text)
            p = self.ngram.distribution(ids)
            masked = p.copy()
            masked[:2] = -1.0
            top = np.argsort(-masked, kind="stable")[:k]
            tokens.append([self.codec.vocabulary[i] for i in top])
            log_probs.append(np.log(np.maximum(p[top], 1e-300)))
            unknowns.append(unknown)
        return {"tokens": np.array(tokens, dtype=object), "log_probs": np.array(log_probs), "num_unknown": np.array(unknowns)}
