"""Exact perplexity over a whole token stream, the same code for the RNN and the n-gram.

Both models answer one question, `stream_log_probs(ids)`: log p(ids[t] | ids[:t]) for
every t >= 1 (the first token has no history and is not scored). The report is then

    nll = -mean(log p)    perplexity = exp(nll)    bits per character = nll / ln 2

over the n - 1 scored tokens: every token counted once, nothing padded, nothing dropped.

The RNN reads the stream the way truncated BPTT trains on it: split into B contiguous
streams (B = 1 by default: one pass, the chain rule exactly), `window` steps at a time,
the state carried from each window to the next and zero at the start; the tokens that
do not fill the B streams (at most B - 1) are read after the last stream, from its state.
"""

import math

import numpy as np
import tensorflow as tf

from apps.lm import model as lm_model


def perplexity_report(log_probs, level="word"):
    """{tokens, nll, perplexity[, bpc]} from per-token natural-log probabilities."""
    log_probs = np.asarray(log_probs, dtype=np.float64)
    if log_probs.size == 0:
        raise ValueError("no tokens to evaluate: the stream needs at least 2 tokens")
    nll = float(-log_probs.mean())
    report = {"tokens": int(log_probs.size), "nll": nll, "perplexity": math.exp(min(nll, 700.0))}
    if level == "char":
        report["bpc"] = nll / math.log(2)
    return report


def evaluate_stream(lm, ids, level="word"):
    return perplexity_report(lm.stream_log_probs(ids), level)


class RecurrentLM:
    """The RNN behind the evaluation/scoring interface the n-gram also implements."""

    kind = "rnn"

    def __init__(self, state_model, config, *, batch_size=1, window=256):
        self.model, self.config = state_model, config
        self.batch_size, self.window = int(batch_size), int(window)
        num = len(lm_model.zero_states(config, 1))
        spec = [tf.TensorSpec([None, None], tf.int32), tf.TensorSpec([None, None], tf.int32)]
        spec.append([tf.TensorSpec([None, config["units"]], tf.float32)] * num)
        self._window_fn = tf.function(self._window_log_probs, input_signature=spec)

    def _window_log_probs(self, x, y, states):
        logits, *states = self.model([x, *states], training=False)
        log_probs = tf.nn.log_softmax(tf.cast(logits, tf.float32))
        return tf.gather(log_probs, y, batch_dims=2), states

    def _run(self, x, y, states):
        """Windows over `[B, L]` inputs/targets, carrying `states`; returns ([B, L], states)."""
        out = []
        for start in range(0, x.shape[1], self.window):
            lp, states = self._window_fn(x[:, start : start + self.window], y[:, start : start + self.window], states)
            out.append(lp.numpy())
        return (np.concatenate(out, axis=1) if out else np.zeros((x.shape[0], 0))), states

    def stream_log_probs(self, ids):
        ids = np.asarray(ids, dtype=np.int32)
        n = len(ids)
        b = max(1, min(self.batch_size, n - 1))
        length = (n - 1) // b
        x = ids[: b * length].reshape(b, length)
        y = ids[1 : b * length + 1].reshape(b, length)
        lp, states = self._run(x, y, lm_model.zero_states(self.config, b))
        parts = [lp.reshape(-1)]
        tail = n - 1 - b * length
        if tail:  # continue the last stream, from its state, to the end of the corpus
            last = [s[-1:] for s in states]
            tail_lp, _ = self._run(ids[b * length : n - 1][None], ids[b * length + 1 :][None], last)
            parts.append(tail_lp.reshape(-1))
        return np.concatenate(parts)

    def sequence_log_probs(self, sequences):
        """Per-token log-probs of each id sequence given its first id (one padded batch)."""
        lengths = [len(s) for s in sequences]
        width = max(max(lengths) - 1, 1)
        x = np.zeros((len(sequences), width), np.int32)
        y = np.zeros((len(sequences), width), np.int32)
        for i, s in enumerate(sequences):
            x[i, : len(s) - 1], y[i, : len(s) - 1] = s[:-1], s[1:]
        lp, _ = self._run(x, y, lm_model.zero_states(self.config, len(sequences)))
        return [lp[i, : n - 1] for i, n in enumerate(lengths)]
