"""Many-to-one: turn a masked sequence of hidden states [B, T, H] into one vector [B, H]."""

import keras
from keras import ops


@keras.saving.register_keras_serializable(package="seqapps")
class SequencePooling(keras.layers.Layer):
    """Max or mean over the real (unmasked) time steps. A row with no real step gives zeros."""

    def __init__(self, mode="max", **kwargs):
        super().__init__(**kwargs)
        if mode not in ("max", "mean"):
            raise ValueError(f"mode must be 'max' or 'mean', got {mode!r}")
        self.mode = mode
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is None:
            mask = ops.ones(ops.shape(inputs)[:2], dtype="bool")
        m = ops.cast(ops.expand_dims(mask, -1), inputs.dtype)
        any_real = ops.cast(ops.sum(m, axis=1) > 0, inputs.dtype)
        if self.mode == "mean":
            return ops.sum(inputs * m, axis=1) / ops.maximum(ops.sum(m, axis=1), 1.0)
        lowest = ops.cast(-1e4 if inputs.dtype == "float16" else -1e9, inputs.dtype)
        return ops.max(ops.where(m > 0, inputs, lowest), axis=1) * any_real

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])

    def get_config(self):
        return {**super().get_config(), "mode": self.mode}


@keras.saving.register_keras_serializable(package="seqapps")
class AttentionPooling(keras.layers.Layer):
    """Learned weighted average over time (Yang et al. 2016):
    a_t = softmax_t(v · tanh(W h_t + b)),  out = Σ_t a_t h_t, padded steps weigh 0."""

    def __init__(self, units=64, **kwargs):
        super().__init__(**kwargs)
        self.units = units
        self.supports_masking = True
        self.project = keras.layers.Dense(units, activation="tanh", name="project")
        self.score = keras.layers.Dense(1, use_bias=False, name="score")

    def build(self, input_shape):
        self.project.build(input_shape)
        self.score.build(tuple(input_shape[:-1]) + (self.units,))

    def call(self, inputs, mask=None, return_weights=False):
        scores = ops.squeeze(self.score(self.project(inputs)), -1)  # [B, T]
        if mask is not None:
            scores = ops.where(mask, scores, ops.cast(-1e9 if scores.dtype != "float16" else -1e4, scores.dtype))
        weights = ops.softmax(scores, axis=-1)
        if mask is not None:
            weights = weights * ops.cast(mask, weights.dtype)
        pooled = ops.sum(inputs * ops.expand_dims(weights, -1), axis=1)
        return (pooled, weights) if return_weights else pooled

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[2])

    def get_config(self):
        return {**super().get_config(), "units": self.units}
