"""The recurrent language model: embedding -> stacked RNN -> softmax over the vocabulary.

    ids [B, T] -> Embedding (E) -> dropout -> [RNN(units) -> dropout] x layers
               -> (Dense(E) when tied and units != E) -> logits = h E^T + b   (tied)
                                                        logits = h W + b      (untied)

Three builds of the same weights (layer names match, so weights copy by name):
  * training:  stateful, fixed batch size: truncated BPTT carries h across windows;
  * state:     not stateful, states in and out explicitly, id 0 masked (padding):
               evaluation, scoring, prompts and the export;
  * step:      `step(model, tokens, states)` runs the cells directly, one token at a time,
               for the decoding loops of `seqapps.decoding`.
Strings never enter these models; ids come from the tf.data pipeline or the export wrapper.
"""

import keras
import tensorflow as tf
from keras import ops

from seqapps.layers import GRU, LSTM, SimpleRNN

RNN_LAYERS = {"lstm": LSTM, "gru": GRU, "simple": SimpleRNN}
MODEL_KEYS = ("vocab_size", "cell", "units", "layers", "embedding_dim", "dropout", "tie_weights")


@keras.saving.register_keras_serializable(package="seqapps_lm")
class TokenEmbedding(keras.layers.Layer):
    """Input embedding and output softmax layer in one, so the two can share E (tying,
    Press & Wolf 2017): `layer(ids)` embeds, `layer(h, reverse=True)` gives logits."""

    def __init__(self, vocab_size, dim, tie_weights=True, hidden_dim=None, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True  # the state build's padding mask passes through to the logits
        self.vocab_size, self.dim, self.tie_weights = vocab_size, dim, tie_weights
        self.hidden_dim = dim if tie_weights else (hidden_dim or dim)  # the rows of the output kernel

    def build(self, input_shape=None):
        init = keras.initializers.RandomUniform(-0.1, 0.1)
        self.embeddings = self.add_weight(shape=(self.vocab_size, self.dim), initializer=init, name="embeddings")
        if not self.tie_weights:
            self.output_kernel = self.add_weight(shape=(self.hidden_dim, self.vocab_size), initializer=init, name="output_kernel")
        self.output_bias = self.add_weight(shape=(self.vocab_size,), initializer="zeros", name="output_bias")

    def call(self, inputs, reverse=False):
        if not reverse:
            return ops.take(self.embeddings, ops.cast(inputs, "int32"), axis=0)
        kernel = ops.transpose(self.embeddings) if self.tie_weights else self.output_kernel
        return ops.matmul(inputs, kernel) + self.output_bias

    def get_config(self):
        return {**super().get_config(), "vocab_size": self.vocab_size, "dim": self.dim, "tie_weights": self.tie_weights,
                "hidden_dim": self.hidden_dim}


def model_config(config):
    """The keys of a run's config that define the network."""
    return {k: config[k] for k in MODEL_KEYS}


def _embedding_dim(config):
    return config.get("embedding_dim") or config["units"]


def build_model(config, *, batch_size=None, stateful=False, state_io=False):
    """Builds the network from a config (see MODEL_KEYS).

    stateful: the training build (needs `batch_size`). state_io: inputs `[ids, *states]`,
    outputs `[logits, *states]`, with id 0 masked so right-padded rows keep their state.
    """
    if config["cell"] not in RNN_LAYERS:
        raise ValueError(f"cell must be one of {sorted(RNN_LAYERS)}; got {config['cell']!r}")
    dim, units, dropout = _embedding_dim(config), config["units"], config["dropout"]
    ids = keras.Input(batch_shape=(batch_size, None), dtype="int32", name="ids")
    embedding = TokenEmbedding(config["vocab_size"], dim, config["tie_weights"], units, name="embedding")
    x = keras.layers.Dropout(dropout, name="dropout_0")(embedding(ids))
    inputs, states_out = [ids], []
    mask = ops.not_equal(ids, 0) if state_io else None
    for i in range(1, config["layers"] + 1):
        rnn = RNN_LAYERS[config["cell"]](
            units, return_sequences=True, return_state=state_io, stateful=stateful, name=f"rnn_{i}"
        )
        if state_io:
            states_in = [keras.Input(batch_shape=(batch_size, units), name=f"rnn_{i}_state_{j}") for j in range(num_states(config))]
            x, *states = rnn(x, initial_state=states_in, mask=mask)
            inputs += states_in
            states_out += states
        else:
            x = rnn(x)
        x = keras.layers.Dropout(dropout, name=f"dropout_{i}")(x)
    if config["tie_weights"] and units != dim:
        x = keras.layers.Dense(dim, name="projection")(x)
    logits = embedding(x, reverse=True)
    name = "lm_state" if state_io else "lm"
    return keras.Model(inputs, [logits, *states_out] if state_io else logits, name=name)


def num_states(config):
    return 2 if config["cell"] == "lstm" else 1


def zero_states(config, batch_size):
    """Initial states of the state build: `layers * num_states` tensors `[B, units]`."""
    return [tf.zeros([batch_size, config["units"]]) for _ in range(config["layers"] * num_states(config))]


def copy_weights(source, target):
    """Copies weights layer by layer by name (training build <-> state build)."""
    for layer in target.layers:
        if layer.weights:
            layer.set_weights(source.get_layer(layer.name).get_weights())
    return target


def reset_states(model):
    """Zeroes the carried state of every stateful RNN layer of `model`."""
    for layer in model.layers:
        if getattr(layer, "stateful", False):
            layer.reset_state()


def step(model, tokens, states):
    """One decoding step with the cells: `tokens [N]`, flat states -> `(logits [N, V], states)`.

    Works on any build of the network (it reads the layers, not the graph)."""
    embedding = model.get_layer("embedding")
    x, new_states, k = embedding(tokens), [], 0
    layer_index = 1
    while True:
        try:
            rnn = model.get_layer(f"rnn_{layer_index}")
        except ValueError:
            break
        n = 2 if isinstance(rnn, LSTM) else 1
        x, cell_states = rnn.cell(x, list(states[k : k + n]))
        new_states += list(cell_states)
        k, layer_index = k + n, layer_index + 1
    if any(layer.name == "projection" for layer in model.layers):
        x = model.get_layer("projection")(x)
    return embedding(x, reverse=True), new_states
