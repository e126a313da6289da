"""The encoder-decoder, in three variants: no attention, Bahdanau, Luong.

    source ids ──► embedding ──► encoder RNNs (bidirectional) ──► outputs h_1..h_S, final states
                                                                            │ bridge (Dense, tanh)
    <start> y_1 .. y_{T-1} ──► embedding ──► decoder RNN ◄───────────────────┘ initial state
                                                 │  s_t (+ attention context c_t over h_1..h_S)
                                                 ▼
                                   tanh(W_c [c_t; s_t]) ──► Dense ──► logits over the target vocab

- `attention="none"` is the seeds' encoder-decoder: the decoder sees the source only through
  the encoder's final state (the fixed-size bottleneck). Logits come from `s_t` directly.
- `attention="luong"` (Luong et al. 2015, "general" score): attention sits *on top of* the
  decoder RNN, so with teacher forcing it runs over all target steps at once, after one
  fused RNN pass. The scores are scaled by 1/sqrt(encoder output size) (`scale_scores`, as in
  scaled dot-product attention): Adam grows the bilinear score's 2*units^2 weights
  coherently, and unscaled scores saturate the softmax onto one source position within the
  first epoch, after which attention stops learning.
- `attention="bahdanau"` (Bahdanau et al. 2015, additive score): the query is the previous
  decoder state s_{t-1} and the context c_t is fed into the RNN's input with the embedding
  ("input feeding"), so every step depends on the attention of the step before: it needs a
  step loop even in training. `AttentiveDecoderCell` is that step, run by `keras.layers.RNN`
  (training) and called directly by the decoding loops (inference). Keras 3's RNN has no
  `constants`, so the encoder outputs reach the cell as an attribute set just before the RNN
  runs, inside the same traced function.

Inference shares every weight: `initial_decoder_state()` encodes, and `decode_step()` takes
one token per row through the same cells, attention and output layers, for
`seqapps.decoding.greedy_decode` / `beam_search` (see `apps.translation.translator`).
"""

import keras
from keras import layers, ops

from seqapps.attention import BahdanauAttention, LuongAttention
from seqapps.layers import GRU, LSTM, GRUCell, LSTMCell

ATTENTIONS = ("none", "bahdanau", "luong")
CELLS = {"gru": (GRU, GRUCell), "lstm": (LSTM, LSTMCell)}


# Unit-variance embeddings (as torch.nn.Embedding): on Multi30k 3000 pairs, Bahdanau, lr 1e-3,
# label smoothing 0.1, train loss over 3 epochs goes 6.09 5.45 5.42 with Keras' default
# uniform(-0.05, 0.05) and 5.87 5.07 4.72 with this (3 x 47 steps, batch 64).
def _embedding_init():
    return keras.initializers.RandomNormal(mean=0.0, stddev=1.0)


@keras.saving.register_keras_serializable(package="seqapps_translation")
class AttentiveDecoderCell(layers.Layer):
    """One Bahdanau decoder step over a stack of cells: attend with s_{t-1}, feed [y; c_t].

    State: the flat list of the stacked cells' states. Output: `[s_t; c_t]`.
    """

    def __init__(self, cells, attention, memory_dim, **kwargs):
        super().__init__(**kwargs)
        self.cells, self.attention, self.memory_dim = cells, attention, memory_dim
        self.per_cell = len(cells[0].state_size) if isinstance(cells[0].state_size, list) else 1
        self.state_size = [cells[0].units] * (self.per_cell * len(cells))
        self.output_size = cells[-1].units + memory_dim
        object.__setattr__(self, "memory", None)  # (values, keys, mask), set per batch

    def build(self, input_shape):
        dim = input_shape[-1] + self.memory_dim
        for cell in self.cells:
            cell.build((None, dim))
            dim = cell.units
        self.attention.build((None, self.cells[-1].units), (None, None, self.memory_dim))
        self.built = True

    def step(self, inputs, states, memory, training=False):
        values, keys, mask = memory
        query = states[-self.per_cell]  # the top cell's h_{t-1}
        context, weights = self.attention(query, values, mask=mask, keys=keys)
        h, new_states = ops.concatenate([inputs, context], axis=-1), []
        for i, cell in enumerate(self.cells):
            h, s = cell(h, list(states[i * self.per_cell:(i + 1) * self.per_cell]), training=training)
            new_states += list(s)
        return ops.concatenate([h, context], axis=-1), new_states, weights

    def call(self, inputs, states, training=False):
        output, new_states, _ = self.step(inputs, states, self.memory, training=training)
        return output, new_states


@keras.saving.register_keras_serializable(package="seqapps_translation")
class Seq2Seq(keras.Model):
    """`model((source_ids [B, S], target_in [B, T]))` -> logits `[B, T, target_vocab_size]`."""

    def __init__(self, source_vocab_size, target_vocab_size, cell="gru", units=256,
                 embedding_dim=256, num_layers=1, bidirectional=True, attention="bahdanau",
                 dropout=0.2, scale_scores=True, **kwargs):
        super().__init__(**kwargs)
        if attention not in ATTENTIONS:
            raise ValueError(f"attention must be one of {ATTENTIONS}; got {attention!r}")
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}; got {cell!r}")
        self.settings = dict(source_vocab_size=source_vocab_size, target_vocab_size=target_vocab_size,
                             cell=cell, units=units, embedding_dim=embedding_dim,
                             num_layers=num_layers, bidirectional=bidirectional,
                             attention=attention, dropout=dropout, scale_scores=scale_scores)
        self.attention_type = attention
        Rnn, Cell = CELLS[cell]
        self.states_per_layer = 2 if cell == "lstm" else 1
        # N(0, 1) embeddings, not Keras' default uniform(-0.05, 0.05): with those tiny vectors
        # the GRUs barely see which token came in (x W has std ~0.02), the decoder sits on a
        # unigram plateau (loss ~5.4, accuracy ~0.09) for hundreds of steps, and the tanh
        # `combine` layer saturates before the token signal grows. See `_embedding_init`.
        self.source_embedding = layers.Embedding(source_vocab_size, embedding_dim, name="source_embedding",
                                                 embeddings_initializer=_embedding_init())
        self.target_embedding = layers.Embedding(target_vocab_size, embedding_dim, name="target_embedding",
                                                 embeddings_initializer=_embedding_init())
        self.encoder = []
        for i in range(num_layers):
            rnn = Rnn(units, return_sequences=True, return_state=True, name=f"encoder_{i}")
            self.encoder.append(layers.Bidirectional(rnn, name=f"encoder_{i}_bi") if bidirectional else rnn)
        memory_dim = units * (2 if bidirectional else 1)
        # Encoder final state of layer l -> initial state of decoder layer l (h with tanh, c linear).
        self.bridge = [[layers.Dense(units, activation="tanh" if k == 0 else None, name=f"bridge_{i}_{k}")
                        for k in range(self.states_per_layer)] for i in range(num_layers)]
        self.dropout = layers.Dropout(dropout)
        if attention == "bahdanau":
            self.attention = BahdanauAttention(units, name="attention")
            cells = [Cell(units, name=f"decoder_{i}") for i in range(num_layers)]
            self.decoder_cell = AttentiveDecoderCell(cells, self.attention, memory_dim, name="decoder_cell")
            self.decoder = [layers.RNN(self.decoder_cell, return_sequences=True, name="decoder")]
        else:
            self.attention = (LuongAttention("general", scale_scores=scale_scores, name="attention")
                              if attention == "luong" else None)
            self.decoder = [Rnn(units, return_sequences=True, name=f"decoder_{i}") for i in range(num_layers)]
        self.combine = None if attention == "none" else layers.Dense(units, activation="tanh", name="combine")
        self.generator = layers.Dense(target_vocab_size, name="generator")

    def build(self, input_shape=None):
        # Every weight's shape follows from the settings: build them all on a 1-token batch.
        tokens = ops.ones((1, 2), "int32")
        self.call((tokens, tokens))

    # --- encoder ---------------------------------------------------------------------------

    def encode(self, source, training=False):
        """Returns `(values [B, S, E], mask [B, S], decoder initial states [[B, H], ...])`."""
        mask = ops.not_equal(source, 0)
        x = self.dropout(self.source_embedding(source), training=training)
        states = []
        for i, rnn in enumerate(self.encoder):
            out = rnn(x, mask=mask, training=training)
            x, finals = out[0], out[1:]
            if len(finals) == 2 * self.states_per_layer:  # bidirectional: concat fw and bw
                n = self.states_per_layer
                finals = [ops.concatenate([f, b], axis=-1) for f, b in zip(finals[:n], finals[n:])]
            states += [dense(s) for dense, s in zip(self.bridge[i], finals)]
            if i + 1 < len(self.encoder):
                x = self.dropout(x, training=training)
        return x, mask, states

    # --- training: teacher forcing over whole target sequences -----------------------------

    def call(self, inputs, training=False):
        source, target_in = inputs
        values, mask, states = self.encode(source, training=training)
        y = self.dropout(self.target_embedding(target_in), training=training)
        n = self.states_per_layer
        if self.attention_type == "bahdanau":
            keys = self.attention.precompute_keys(values)
            object.__setattr__(self.decoder_cell, "memory", (values, keys, mask))
            out = self.decoder[0](y, initial_state=states, training=training)  # [B, T, H + E]
            h = self.combine(out)
        else:
            h = y
            for i, rnn in enumerate(self.decoder):
                if i:
                    h = self.dropout(h, training=training)
                h = rnn(h, initial_state=states[i * n:(i + 1) * n], training=training)
            if self.attention_type == "luong":  # all target steps attend in parallel
                context, _ = self.attention(h, values, mask=mask)
                h = self.combine(ops.concatenate([h, context], axis=-1))
        return self.generator(self.dropout(h, training=training))

    # --- inference: one token at a time, same weights --------------------------------------

    def initial_decoder_state(self, source):
        """The decoding state for `decode_step`: a dict of tensors with leading dim B."""
        values, mask, states = self.encode(source)
        state = {"states": states, "values": values, "mask": mask}
        if self.attention_type == "bahdanau":
            state["keys"] = self.attention.precompute_keys(values)
        return state

    def decode_step(self, tokens, state):
        """`(logits [N, V], new state, attention weights [N, S])` for the previous tokens `[N]`."""
        y = self.target_embedding(tokens)
        states, n = state["states"], self.states_per_layer
        if self.attention_type == "bahdanau":
            memory = (state["values"], state["keys"], state["mask"])
            out, states, weights = self.decoder_cell.step(y, states, memory)
            h = self.combine(out)
        else:
            h, new_states = y, []
            for i, rnn in enumerate(self.decoder):
                h, s = rnn.cell(h, list(states[i * n:(i + 1) * n]))
                new_states += list(s)
            states = new_states
            if self.attention_type == "luong":
                context, weights = self.attention(h, state["values"], mask=state["mask"])
                h = self.combine(ops.concatenate([h, context], axis=-1))
            else:  # no attention: report zeros, the decoder never looks at the source
                weights = ops.zeros_like(ops.cast(state["mask"], h.dtype))
        return self.generator(h), {**state, "states": states}, weights

    def get_config(self):
        return {**super().get_config(), **self.settings}


def masked_loss(label_smoothing=0.0):
    """Token-level cross-entropy over non-padding targets (id 0 is padding)."""

    def loss(y_true, logits):
        y_true = ops.cast(y_true, "int32")
        log_probs = ops.log_softmax(ops.cast(logits, "float32"), axis=-1)
        nll = -ops.take_along_axis(log_probs, ops.expand_dims(y_true, -1), axis=-1)[..., 0]
        if label_smoothing:
            nll = (1.0 - label_smoothing) * nll - label_smoothing * ops.mean(log_probs, axis=-1)
        mask = ops.cast(ops.not_equal(y_true, 0), "float32")
        return ops.sum(nll * mask) / ops.maximum(ops.sum(mask), 1.0)

    loss.__name__ = "masked_loss"
    return loss


def masked_accuracy(y_true, logits):
    y_true = ops.cast(y_true, "int32")
    hit = ops.cast(ops.equal(ops.argmax(logits, axis=-1), y_true), "float32")
    mask = ops.cast(ops.not_equal(y_true, 0), "float32")
    return ops.sum(hit * mask) / ops.maximum(ops.sum(mask), 1.0)


def build_model(source_vocab_size, target_vocab_size, *, learning_rate=1e-3, clipnorm=5.0,
                label_smoothing=0.0, jit_compile=False, **config):
    """A compiled `Seq2Seq`; `config` holds `Seq2Seq`'s keyword arguments."""
    model = Seq2Seq(source_vocab_size, target_vocab_size, **config)
    model.compile(
        optimizer=keras.optimizers.Adam(learning_rate, global_clipnorm=clipnorm or None),
        loss=masked_loss(label_smoothing),
        metrics=[masked_accuracy],
        jit_compile=jit_compile,
    )
    model.build()  # every weight now: BackupAndRestore and load_weights need them
    return model
