"""The thin layer shared by SimpleRNN, LSTM and GRU: picks the fast path or the reference loop.

`keras.layers.RNN` already implements everything around the loop that users rely on
(initial/stateful states, masks in and out, return_sequences/return_state, dropout mask
caching, Bidirectional support); we subclass it and replace only `inner_loop`.

Paths, chosen per call:
  * "reference": Keras' generic loop over our cell's `call` — the seeds' equations written
    one step at a time. Used for non-default activations, recurrent dropout, `unroll`, and
    whenever `implementation="reference"`.
  * fused: the hand-written BPTT loops of `seqapps.layers.fused` (input projection and
    weight gradients one matmul per chunk of steps). `checkpoint_every=K` keeps only every
    K-th state in the forward pass and recomputes inside each segment in the backward pass
    (memory O(T/K + K) steps for very long sequences; same gradients).
  * cuDNN: on a GPU, for LSTM/GRU configurations the kernel supports, the fused cuDNN kernel
    fed with our weights (same layout as Keras). `cudnn_allowed(False)` turns it off, e.g.
    while tracing an export that must run on CPU-only serving.
"""

import contextlib

import keras
from keras import activations, ops

_CUDNN_ALLOWED = [True]

IMPLEMENTATIONS = ("auto", "fused", "reference")


@contextlib.contextmanager
def cudnn_allowed(allowed):
    """Temporarily allow/forbid the cuDNN kernel (e.g. `with cudnn_allowed(False): export()`)."""
    previous = _CUDNN_ALLOWED[0]
    _CUDNN_ALLOWED[0] = bool(allowed)
    try:
        yield
    finally:
        _CUDNN_ALLOWED[0] = previous


def is_default_activation(fn, name):
    return fn is activations.get(name) or getattr(fn, "__name__", None) == name


class FusedRNN(keras.layers.RNN):
    """Base for our recurrent layers: `keras.layers.RNN` + the fast paths.

    Subclasses set `cell_class`, and the cell implements `fused_supported()`,
    `fused_recurrence(x, states, mask, checkpoint_every) -> (hs, last_states)` and optionally `cudnn_recurrence(...)`.
    """

    cell_class = None
    # Constructor arguments that belong to the cell (Keras exposes them on the layer too).
    cell_args = ()

    def __init__(
        self,
        cell,
        return_sequences=False,
        return_state=False,
        go_backwards=False,
        stateful=False,
        unroll=False,
        implementation="auto",
        use_cudnn="auto",
        checkpoint_every=None,
        **kwargs,
    ):
        if checkpoint_every is not None and (
            isinstance(checkpoint_every, bool) or not isinstance(checkpoint_every, int)
            or checkpoint_every < 1
        ):
            raise ValueError(
                f"checkpoint_every must be None or a positive integer, got {checkpoint_every!r}"
            )
        if implementation in (1, 2):  # Keras' cell-level switch: both map to our default.
            implementation = "auto"
        if implementation not in IMPLEMENTATIONS:
            raise ValueError(
                f"implementation must be one of {IMPLEMENTATIONS}, got {implementation!r}"
            )
        if use_cudnn not in ("auto", True, False):
            raise ValueError(f"use_cudnn must be 'auto', True or False, got {use_cudnn!r}")
        super().__init__(
            cell,
            return_sequences=return_sequences,
            return_state=return_state,
            go_backwards=go_backwards,
            stateful=stateful,
            unroll=unroll,
            **kwargs,
        )
        self.input_spec = keras.layers.InputSpec(ndim=3)
        self.implementation = implementation
        self.use_cudnn = use_cudnn
        self.checkpoint_every = checkpoint_every

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        # `layer.units`, `layer.dropout`, ... read through to the cell, as in Keras.
        for name in cls.cell_args:
            setattr(cls, name, property(lambda self, name=name: getattr(self.cell, name)))

    def fast_path_allowed(self, training):
        if self.implementation == "reference" or self.unroll:
            return False
        if training and self.cell.recurrent_dropout > 0:
            return False  # the per-step recurrent mask needs the reference step
        return self.cell.fused_supported()

    def call(self, sequences, initial_state=None, mask=None, training=False):
        return super().call(
            sequences, mask=mask, training=training, initial_state=initial_state
        )

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if isinstance(mask, (list, tuple)):
            mask = mask[0]
        if not self.fast_path_allowed(training):
            if self.implementation == "fused":
                raise ValueError(
                    f"{self.name}: implementation='fused' needs default activations, no "
                    "recurrent dropout while training, and unroll=False."
                )
            return super().inner_loop(sequences, initial_state, mask, training=training)

        if training and self.cell.dropout > 0:
            # Same mask at every step (variational dropout), like Keras' cuDNN path.
            dp_mask = self.cell.get_dropout_mask(sequences[:, 0, :])
            sequences = sequences * ops.expand_dims(dp_mask, 1)

        if self.use_cudnn in ("auto", True) and _CUDNN_ALLOWED[0]:
            out = self.cell.cudnn_recurrence(
                sequences, initial_state, mask, self.go_backwards, self.return_sequences
            )
            if out is not None:
                self.supports_jit = False  # cuDNN ops do not compile under XLA
                return out
        if self.use_cudnn is True:
            raise ValueError(f"{self.name}: use_cudnn=True but cuDNN cannot run here.")

        return self._fused_loop(sequences, initial_state, mask)

    def _fused_loop(self, sequences, initial_state, mask):
        import tensorflow as tf

        # Batch-major in and out: the recurrence cuts x into chunks of steps and makes each
        # chunk time-major itself, so no whole-sequence transposed copy of x, of the outputs
        # or of their gradients is ever held. The input projection x W + b happens inside
        # the recurrence, one chunk of steps at a time.
        mask_tm = mask_bm = None
        if mask is not None:
            mask_bm = tf.cast(mask, sequences.dtype)[..., None]  # [B, T, 1]
        if self.go_backwards:
            sequences = tf.reverse(sequences, [1])
            mask_bm = None if mask_bm is None else tf.reverse(mask_bm, [1])
        if mask_bm is not None:
            mask_tm = tf.transpose(mask_bm, [1, 0, 2])  # [T, B, 1], B*T values

        hs, last_states = self.cell.fused_recurrence(
            sequences, list(initial_state), mask_tm, self.checkpoint_every
        )
        # Output at a padded step: zeros, or the last real step's output (Keras semantics:
        # the previous output, which is zero before the first real step).
        if mask is None:
            outputs = hs
        elif self.zero_output_for_mask:
            outputs = hs * mask_bm
        else:
            seen_real = tf.cast(tf.math.cumsum(mask_bm, axis=1) > 0, hs.dtype)
            outputs = hs * seen_real
        return outputs[:, -1], outputs, list(last_states)

    def get_config(self):
        config = super().get_config()
        del config["cell"]
        cell_config = self.cell.get_config()
        for key in ("name", "trainable", "dtype"):
            cell_config.pop(key, None)
        config.update(cell_config)
        config["implementation"] = self.implementation
        config["use_cudnn"] = self.use_cudnn
        config["checkpoint_every"] = self.checkpoint_every
        return config

    @classmethod
    def from_config(cls, config):
        return cls(**config)
