"""The sentiment model: embedding → recurrent layers → pooling over time → softmax.

    ids [B, T] ─ Embedding(mask_zero) ─ Dropout ─ [Bi](LSTM|GRU|SimpleRNN) × layers
        ─ pooling (last | max | mean | attention) ─ Dropout ─ Dense(classes, softmax)

Token ids come from a `TextVectorization` kept outside the Keras model (strings cannot be
compiled with XLA); `SentimentPipeline` joins the two for prediction and export.
"""

import keras
import tensorflow as tf

from seqapps.export import clean_utf8
from seqapps.layers import GRU, LSTM, SimpleRNN
from seqapps.pooling import AttentionPooling, SequencePooling

RECURRENT_LAYERS = {"simple": SimpleRNN, "lstm": LSTM, "gru": GRU}
POOLINGS = ("last", "max", "mean", "attention")


def build_model(
    vocab_size,
    num_classes,
    *,
    cell="lstm",
    units=64,
    layers=1,
    bidirectional=True,
    embedding_dim=128,
    dropout=0.6,
    recurrent_dropout=0.0,
    pooling="max",
):
    if cell not in RECURRENT_LAYERS:
        raise ValueError(f"cell must be one of {sorted(RECURRENT_LAYERS)}, got {cell!r}")
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    x = keras.layers.Embedding(vocab_size, embedding_dim, mask_zero=True, name="embedding")(ids)
    x = keras.layers.Dropout(dropout)(x)
    for i in range(layers):
        last = i == layers - 1
        rnn = RECURRENT_LAYERS[cell](
            units,
            return_sequences=not (last and pooling == "last"),
            recurrent_dropout=recurrent_dropout,
            name=f"{cell}_{i}",
        )
        x = keras.layers.Bidirectional(rnn, name=f"bi_{cell}_{i}")(x) if bidirectional else rnn(x)
    if pooling in ("max", "mean"):
        x = SequencePooling(pooling, name=f"{pooling}_pool")(x)
    elif pooling == "attention":
        x = AttentionPooling(units, name="attention_pool")(x)
    x = keras.layers.Dropout(dropout)(x)
    # float32 even under mixed precision: a float16 softmax rounds small probabilities to 0
    probs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="classifier")(x)
    return keras.Model(ids, probs, name=f"sentiment_{cell}")


def compile_classifier(model, optimizer):
    model.compile(
        optimizer=optimizer,
        loss="sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


class SentimentPipeline:
    """Raw strings → class probabilities, the same way in `predict` and in the export.

    Inputs longer than `max_length` tokens are truncated (an RNN reads them fine, but an
    unbounded request must not be able to stall a server); an empty or whitespace-only
    string becomes one padding step, which the mask turns into an all-padding sequence.
    """

    def __init__(self, vectorizer, model, label_names, max_length=400):
        self.vectorizer = vectorizer
        self.model = model
        self.label_names = list(label_names)
        self.max_length = int(max_length)
        self.probabilities(tf.constant(["", "built"]))  # builds the vectorizer and model

    def encode(self, strings):
        ids = self.vectorizer(clean_utf8(strings))
        ids = tf.cast(ids[:, : self.max_length], tf.int32)
        pad = tf.maximum(1 - tf.shape(ids)[1], 0)  # keep at least one time step
        return tf.pad(ids, [[0, 0], [0, pad]])

    def probabilities(self, strings):
        return self.model(self.encode(strings), training=False)

    def serve(self, strings):
        """The export signature: {probabilities [B, C], label [B] string, class_id [B]}."""
        probs = self.probabilities(strings)
        class_id = tf.argmax(probs, axis=-1, output_type=tf.int32)
        labels = tf.gather(tf.constant(self.label_names), class_id)
        return {"probabilities": probs, "label": labels, "class_id": class_id}
