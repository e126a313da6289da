"""Attention over encoder outputs for RNN encoder-decoder models.

Both layers score a decoder state (the *query*) against every encoder output
(the *values*), softmax the scores over source positions, and return the
weighted sum of the values (the *context*) together with the weights.

The query may be one decoder step, `[B, H]` (a step-by-step decoder loop, as
in Bahdanau et al.), or every decoder step at once, `[B, Tq, H]` (teacher
forcing, as in Luong et al., where attention sits on top of the decoder RNN
and so can run over all steps in parallel). Both ranks share one code path:
a `[B, H]` query is treated as `Tq = 1` and squeezed back at the end.

Shapes:

- `query`: `[B, H]` or `[B, Tq, H]`.
- `values`: `[B, Ts, Hv]`.
- `mask`: optional `[B, Ts]`, True for real source tokens.
- returns `context` `[B, Hv]` / `[B, Tq, Hv]` and `weights` `[B, Ts]` /
  `[B, Tq, Ts]`.

The output carries no Keras mask: with a `[B, Tq, H]` query, mask the
decoder loss with the target mask yourself (or concatenate the context with
the masked decoder outputs, which carries their mask along).
"""

import keras
from keras import ops


def _large_negative(dtype):
    # -1e9 overflows to -inf in float16, and a fully masked row would then be
    # softmax(-inf, ..., -inf) = NaN. 65500 is just under float16's max.
    if keras.backend.standardize_dtype(dtype) == "float16":
        return -65500.0
    return -1e9


def _masked_softmax(scores, mask):
    """Softmax over the last axis of `[B, Tq, Ts]` scores, honouring `[B, Ts]`."""
    if mask is None:
        return ops.softmax(scores, axis=-1)
    mask = ops.expand_dims(ops.cast(mask, "bool"), axis=-2)  # [B, 1, Ts]
    scores = ops.where(mask, scores, _large_negative(scores.dtype))
    weights = ops.softmax(scores, axis=-1)
    # When a row has any real position, exp(-1e9 - max) already underflows to
    # exactly 0. The multiply covers the all-padding row (where softmax would
    # be uniform) and float16's smaller "large negative".
    return weights * ops.cast(mask, weights.dtype)


def _attend(scores, values, mask, single_step, return_attention_scores):
    """Shared tail of both layers: masked softmax, weighted sum, un-squeeze."""
    weights = _masked_softmax(scores, mask)  # [B, Tq, Ts]
    context = ops.matmul(weights, ops.cast(values, weights.dtype))  # [B, Tq, Hv]
    if single_step:
        context = ops.squeeze(context, axis=1)
        weights = ops.squeeze(weights, axis=1)
    if return_attention_scores:
        return context, weights
    return context


def _as_steps(query):
    """Returns `(query as [B, Tq, H], whether it was a single [B, H] step)`."""
    rank = len(query.shape)
    if rank == 2:
        return ops.expand_dims(query, axis=1), True
    if rank == 3:
        return query, False
    raise ValueError(
        f"`query` must be [batch, units] or [batch, steps, units]; "
        f"received shape {tuple(query.shape)}."
    )


@keras.saving.register_keras_serializable(package="seqapps")
class BahdanauAttention(keras.layers.Layer):
    """Additive attention: `score(s, h_j) = v^T tanh(W1 h_j + W2 s + b)`.

    `W1 h_j` (the *keys*) depends only on the encoder outputs, so a decoder
    loop can compute it once with `precompute_keys(values)` and pass it as
    `keys=` at every step instead of re-projecting the whole source each
    time. Inside a functional model, simply call the layer; `precompute_keys`
    is meant for hand-written step functions.

    Args:
        units: size of the hidden layer of the scoring MLP (`W1`, `W2`, `v`).
        **kwargs: standard `Layer` arguments (`name`, `dtype`, ...).

    Call arguments:
        query: `[B, H]` or `[B, Tq, H]` decoder state(s).
        values: `[B, Ts, Hv]` encoder outputs.
        mask: optional `[B, Ts]` bool, True for real source tokens.
        keys: optional `precompute_keys(values)`, reused across steps.
        return_attention_scores: if False, return only the context.

    Returns:
        `(context, weights)`: `[B, Hv]`/`[B, Ts]` for a `[B, H]` query,
        `[B, Tq, Hv]`/`[B, Tq, Ts]` for a `[B, Tq, H]` one.
    """

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units = int(units)
        # W1: no bias here, the single bias `b` lives in W2 (two would be
        # redundant, they are added together).
        self.key_dense = keras.layers.Dense(
            self.units, use_bias=False, dtype=self.dtype_policy, name="key_dense"
        )
        self.query_dense = keras.layers.Dense(
            self.units, dtype=self.dtype_policy, name="query_dense"
        )
        self.score_dense = keras.layers.Dense(
            1, use_bias=False, dtype=self.dtype_policy, name="score_dense"
        )

    def build(self, query_shape, values_shape):
        # `precompute_keys` may already have built W1 outside of `__call__`.
        if not self.key_dense.built:
            self.key_dense.build(values_shape)
        self.query_dense.build(query_shape)
        self.score_dense.build((None, self.units))
        self.built = True

    def precompute_keys(self, values):
        """`W1 h_j` for `[B, Ts, Hv]` values: `[B, Ts, units]`."""
        return self.key_dense(values)

    def call(
        self, query, values, mask=None, keys=None, return_attention_scores=True
    ):
        query, single_step = _as_steps(query)
        if keys is None:
            keys = self.key_dense(values)  # [B, Ts, U]
        projected = self.query_dense(query)  # [B, Tq, U]
        # Broadcast to [B, Tq, Ts, U]: every decoder step against every source
        # position.
        hidden = ops.tanh(
            ops.expand_dims(keys, axis=1) + ops.expand_dims(projected, axis=2)
        )
        scores = ops.squeeze(self.score_dense(hidden), axis=-1)  # [B, Tq, Ts]
        return _attend(scores, values, mask, single_step, return_attention_scores)

    def compute_mask(self, *args, **kwargs):
        # Overriding this marks the layer as mask-aware (the source mask is
        # consumed, not dropped by accident) and attaches no output mask.
        return None

    def get_config(self):
        config = super().get_config()
        config.update({"units": self.units})
        return config


@keras.saving.register_keras_serializable(package="seqapps")
class LuongAttention(keras.layers.Layer):
    """Multiplicative attention (Luong et al., 2015).

    - `score="dot"`: `score(s, h_j) = s . h_j` (needs `H == Hv`, no weights).
    - `score="general"`: `score(s, h_j) = s^T W h_j`, `W` of shape `[H, Hv]`.

    Args:
        score: `"general"` (default) or `"dot"`.
        scale_scores: divide the scores by `sqrt(Hv)`, as scaled dot-product attention does.
            Without it, a trained "general" score's bilinear weights grow until the softmax
            saturates onto one source position (seen on Multi30k); the translation app
            turns it on. Off by default, matching Luong et al.
        **kwargs: standard `Layer` arguments (`name`, `dtype`, ...).

    Call arguments and return value: as for `BahdanauAttention` (without
    `keys`: here the per-step work is a single matmul anyway).
    """

    def __init__(self, score="general", scale_scores=False, **kwargs):
        super().__init__(**kwargs)
        if score not in ("dot", "general"):
            raise ValueError(
                f"`score` must be 'dot' or 'general'; received {score!r}."
            )
        self.score = score
        self.scale_scores = bool(scale_scores)

    def build(self, query_shape, values_shape):
        query_dim, values_dim = query_shape[-1], values_shape[-1]
        if self.score == "dot":
            if None not in (query_dim, values_dim) and query_dim != values_dim:
                raise ValueError(
                    "LuongAttention(score='dot') needs query and values of the "
                    f"same size; received {query_dim} and {values_dim}. Use "
                    "score='general' to learn a projection between them."
                )
        else:
            self.kernel = self.add_weight(
                name="kernel",
                shape=(query_dim, values_dim),
                initializer="glorot_uniform",
            )
        self.built = True

    def call(self, query, values, mask=None, return_attention_scores=True):
        query, single_step = _as_steps(query)
        if self.score == "general":
            query = ops.matmul(query, self.kernel)  # s^T W: [B, Tq, Hv]
        scores = ops.matmul(query, ops.transpose(values, (0, 2, 1)))  # [B, Tq, Ts]
        if self.scale_scores:
            scores = scores * ops.cast(ops.shape(values)[-1], scores.dtype) ** -0.5
        return _attend(scores, values, mask, single_step, return_attention_scores)

    def compute_mask(self, *args, **kwargs):
        # See BahdanauAttention.compute_mask.
        return None

    def get_config(self):
        config = super().get_config()
        config.update({"score": self.score, "scale_scores": self.scale_scores})
        return config
