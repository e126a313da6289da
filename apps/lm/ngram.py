"""Interpolated Kneser–Ney n-gram language model (Chen & Goodman's modified discounts).

The seeds' n-th order Markov model, p(w_t | w_{t-n+1} .. w_{t-1}), smoothed the way that
works best for n-grams, so the n-gram vs RNN comparison is against a strong baseline:

    p_k(w | h) = max(c_k(hw) - D_k(c_k(hw)), 0) / S_k(h) + gamma_k(h) p_{k-1}(w | h')
    gamma_k(h) = (D_k1 N1(h.) + D_k2 N2(h.) + D_k3 N3+(h.)) / S_k(h),   S_k(h) = sum_w c_k(hw)

where h' drops the oldest word of h, c_n are raw counts at the top order and continuation
counts N1+(. hw) (how many distinct words precede hw) below it, N1/N2/N3+ count the words
seen after h once, twice, three times or more, and p_0 is uniform over the vocabulary (ids
1..V-1: id 0 is padding). A context never seen in training falls back to the order below.
The three discounts per order come from the count-of-counts: Y = n1 / (n1 + 2 n2),
D1 = 1 - 2Y n2/n1, D2 = 2 - 3Y n3/n2, D3+ = 3 - 4Y n4/n3. Since D_r <= r, every
distribution sums to 1 exactly.

The corpus is one stream of ids (as for the RNN): n-grams cross line ends (`<eos>` is a
token), and the stream's first token counts as preceded by a unique start symbol.

Storage: an order-k n-gram is the int64 key `index of its (k-1)-gram prefix * V + w` in a
sorted array, so lookups are `searchsorted` over the whole test stream at once (numpy,
no Python loop over tokens). PTB's 5-gram trains in seconds.
"""

import numpy as np

FILE = "ngram.npz"


def _lookup(sorted_keys, queries):
    """Index of each query in `sorted_keys`, -1 where absent (queries < 0 stay absent)."""
    pos = np.searchsorted(sorted_keys, queries)
    pos = np.minimum(pos, len(sorted_keys) - 1)
    found = (queries >= 0) & (sorted_keys[pos] == queries)
    return np.where(found, pos, -1)


def _discounts(counts):
    n = [np.count_nonzero(counts == r) for r in (1, 2, 3, 4)]
    if min(n) == 0:
        d = np.array([0.5, 1.0, 1.5])  # too little data for the estimate: plain absolute
    else:
        y = n[0] / (n[0] + 2 * n[1])
        d = np.array([1 - 2 * y * n[1] / n[0], 2 - 3 * y * n[2] / n[1], 3 - 4 * y * n[3] / n[2]])
    return np.clip(d, 0.0, [1.0, 2.0, 3.0])


class KneserNey:
    """`fit(ids)`, then `stream_log_probs(ids)` / `distribution(context)` / `save` / `load`."""

    kind = "ngram"

    def __init__(self, order=5, vocab_size=None):
        if order < 1:
            raise ValueError(f"order must be >= 1; got {order}")
        self.order, self.vocab_size = int(order), vocab_size
        self.keys, self.counts, self.discount, self.stats = {}, {}, {}, {}

    # --- training -------------------------------------------------------------------

    def fit(self, ids):
        ids = np.asarray(ids, dtype=np.int64)
        if self.vocab_size is None:
            self.vocab_size = int(ids.max()) + 1
        v, n, top = self.vocab_size, len(ids), self.order
        if n < top:
            raise ValueError(f"a corpus of {n} tokens is too short for a {top}-gram model")
        pos_id, first, raw = {}, {}, {}
        for k in range(1, top + 1):
            # The k-gram starting at i: (its (k-1)-gram prefix, the word at i + k - 1).
            key = ids if k == 1 else pos_id[k - 1][: n - k + 1] * v + ids[k - 1 :]
            self.keys[k], first[k], pos_id[k], raw[k] = np.unique(
                key, return_index=True, return_inverse=True, return_counts=True
            )
        for k in range(1, top + 1):
            if k == top:
                counts = raw[k]
            else:  # continuation counts: distinct left neighbours of each k-gram
                suffix = pos_id[k][first[k + 1] + 1]
                counts = np.bincount(suffix, minlength=len(self.keys[k]))
                counts[pos_id[k][0]] += 1  # the stream's first k-gram follows the start
            self.counts[k] = counts.astype(np.int64)
            self.discount[k] = _discounts(self.counts[k])
            self.stats[k] = self._context_stats(k)
        return self

    def _context_stats(self, k):
        """S(h), N1(h.), N2(h.), N3+(h.) per context (the (k-1)-gram index)."""
        c = self.counts[k]
        ctx = self.keys[k] // self.vocab_size if k > 1 else np.zeros(len(c), np.int64)
        size = len(self.keys[k - 1]) if k > 1 else 1
        count = lambda w: np.bincount(ctx, weights=w, minlength=size)  # noqa: E731
        return np.stack([count(c), count(c == 1), count(c == 2), count(c >= 3)])

    # --- probabilities --------------------------------------------------------------

    def _interpolate(self, k, ctx, gram, lower):
        """p_k from p_{k-1} (`lower`) given context and n-gram indices (-1: unseen)."""
        total, n1, n2, n3 = self.stats[k]
        safe_ctx = np.maximum(ctx, 0)
        s = total[safe_ctx]
        seen = (ctx >= 0) & (s > 0)
        c = np.where(gram >= 0, self.counts[k][np.maximum(gram, 0)], 0)
        d1, d2, d3 = self.discount[k]
        d = np.select([c == 0, c == 1, c == 2], [0.0, d1, d2], d3)
        mass = d1 * n1[safe_ctx] + d2 * n2[safe_ctx] + d3 * n3[safe_ctx]
        s = np.where(seen, s, 1.0)
        return np.where(seen, (np.maximum(c - d, 0.0) + mass * lower) / s, lower)

    def _gram_ids(self, ids):
        """gid[k][e]: index of the k-gram ending at position e (-1: unseen or too early)."""
        gid = {1: _lookup(self.keys[1], ids)}
        for k in range(2, self.order + 1):
            prefix = np.concatenate([[-1], gid[k - 1][:-1]])
            gid[k] = _lookup(self.keys[k], np.where(prefix >= 0, prefix * self.vocab_size + ids, -1))
        return gid

    def stream_log_probs(self, ids):
        """log p(ids[t] | ids[:t]) for t = 1 .. n-1, natural log (the RNN's contract)."""
        ids = np.asarray(ids, dtype=np.int64)
        gid = self._gram_ids(ids)
        p = np.full(len(ids), 1.0 / (self.vocab_size - 1))
        for k in range(1, self.order + 1):
            ctx = np.zeros(len(ids), np.int64) if k == 1 else np.concatenate([[-1], gid[k - 1][:-1]])
            p = self._interpolate(k, ctx, gid[k], p)
        return np.log(p[1:])

    def distribution(self, context):
        """p(w | context) for every id w (p[0] = 0); sums to 1."""
        context = np.asarray(context, dtype=np.int64)[-(self.order - 1) :] if self.order > 1 else np.zeros(0, np.int64)
        gid = self._gram_ids(context) if len(context) else {}
        words = np.arange(self.vocab_size, dtype=np.int64)
        p = np.full(self.vocab_size, 1.0 / (self.vocab_size - 1))
        p[0] = 0.0
        for k in range(1, self.order + 1):
            if k == 1:
                ctx = 0
            elif len(context) >= k - 1:
                ctx = gid[k - 1][-1]
            else:
                break  # no longer history available
            ctx = np.full(self.vocab_size, ctx, np.int64)
            queries = words if k == 1 else np.where(ctx >= 0, ctx * self.vocab_size + words, -1)
            p = self._interpolate(k, ctx, _lookup(self.keys[k], queries), p)
            p[0] = 0.0
        return p

    def sequence_log_probs(self, sequences):
        """Per-token log-probs of each id sequence (its first id is the given context)."""
        return [self.stream_log_probs(s) for s in sequences]

    # --- storage --------------------------------------------------------------------

    def save(self, path):
        arrays = {"order": self.order, "vocab_size": self.vocab_size}
        for k in range(1, self.order + 1):
            arrays.update({f"keys_{k}": self.keys[k], f"counts_{k}": self.counts[k], f"discount_{k}": self.discount[k]})
        np.savez_compressed(path, **arrays)

    @classmethod
    def load(cls, path):
        data = np.load(path)
        model = cls(int(data["order"]), int(data["vocab_size"]))
        for k in range(1, model.order + 1):
            model.keys[k], model.counts[k], model.discount[k] = data[f"keys_{k}"], data[f"counts_{k}"], data[f"discount_{k}"]
        for k in range(1, model.order + 1):
            model.stats[k] = model._context_stats(k)
        return model

    def num_ngrams(self):
        return {k: int(len(self.keys[k])) for k in range(1, self.order + 1)}
