"""The sentiment model: embedding → recurrent layers → pooling over time → softmax.

    ids [B, T] ─ Embedding(mask_zero) ─ word dropout ─ Dropout ─ [Bi](LSTM|GRU|SimpleRNN) × layers
        ─ pooling (last | max | mean | attention) ─ Dropout ─ Dense(classes, softmax)

Regularisation: `embedding_dropout` is word dropout: while training, each token becomes
[UNK] with this probability (`WordDropout`), which also trains the [UNK] vector that unseen
test words map to (without it [UNK] never occurs when every training word is in the vocabulary, as
on the phrase sets);
`dropout` drops units of the embeddings and of the pooled features, `rnn_dropout` is the
recurrent layers' input dropout (one mask for all steps, so between stacked layers too; on
the fused path), `recurrent_dropout` drops the recurrent state (the reference step loop:
slower). Weight decay and label smoothing are the optimizer's and the loss's
(`compile_classifier`).

Token ids come from a `TextVectorization` (words) or a `SubwordVectorizer` (SentencePiece
pieces) kept outside the Keras model (strings cannot be compiled with XLA); the model reads
either, ids 0 and 1 being padding and unknown in both. `SentimentPipeline` joins vectorizers
and model for prediction and export.
"""

import keras
import tensorflow as tf

from seqapps.export import clean_utf8
from seqapps.layers import GRU, LSTM, SimpleRNN
from seqapps.pooling import AttentionPooling, SequencePooling

RECURRENT_LAYERS = {"simple": SimpleRNN, "lstm": LSTM, "gru": GRU}
POOLINGS = ("last", "max", "mean", "attention")


@keras.saving.register_keras_serializable(package="seqapps_sentiment")
class WordDropout(keras.layers.Layer):
    """While training, replaces each token id > 1 by the [UNK] id (1) with probability
    `rate`; padding (0) stays. At inference the identity."""

    def __init__(self, rate, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.rate = float(rate)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, ids, training=False):
        if not training or not self.rate:
            return ids
        drop = keras.random.uniform(keras.ops.shape(ids), seed=self.seed_generator) < self.rate
        return keras.ops.where(keras.ops.logical_and(drop, ids > 1), keras.ops.ones_like(ids), ids)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "rate": self.rate, "seed": self.seed}


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
    embedding_dropout=0.0,
    rnn_dropout=0.0,
):
    if cell not in RECURRENT_LAYERS:
        raise ValueError(f"cell must be one of {sorted(RECURRENT_LAYERS)}, got {cell!r}")
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, got {pooling!r}")
    ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    tokens = WordDropout(embedding_dropout, name="word_dropout")(ids) if embedding_dropout else ids
    x = keras.layers.Embedding(vocab_size, embedding_dim, mask_zero=True, name="embedding")(tokens)
    x = keras.layers.Dropout(dropout)(x)
    for i in range(layers):
        last = i == layers - 1
        rnn = RECURRENT_LAYERS[cell](
            units,
            return_sequences=not (last and pooling == "last"),
            dropout=rnn_dropout,
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


@keras.saving.register_keras_serializable(package="seqapps_sentiment")
class SmoothedSparseCrossentropy(keras.losses.Loss):
    """Sparse categorical cross-entropy against labels smoothed by `label_smoothing`:
    the true class gets 1 - s + s/K, every class s/K (Keras' sparse loss has no smoothing)."""

    def __init__(self, label_smoothing=0.0, name="smoothed_sparse_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.label_smoothing = float(label_smoothing)

    def call(self, y_true, y_pred):
        num_classes = keras.ops.shape(y_pred)[-1]
        y_true = keras.ops.one_hot(keras.ops.cast(keras.ops.reshape(y_true, [-1]), "int32"), num_classes)
        return keras.losses.categorical_crossentropy(
            y_true, y_pred, label_smoothing=self.label_smoothing
        )

    def get_config(self):
        return {**super().get_config(), "label_smoothing": self.label_smoothing}


def make_optimizer(learning_rate, clipnorm, weight_decay=0.0):
    """Adam, or AdamW (decoupled weight decay; biases exempt) when `weight_decay` > 0."""
    if not weight_decay:
        return keras.optimizers.Adam(learning_rate=learning_rate, global_clipnorm=clipnorm or None)
    optimizer = keras.optimizers.AdamW(
        learning_rate=learning_rate, weight_decay=weight_decay, global_clipnorm=clipnorm or None
    )
    optimizer.exclude_from_weight_decay(var_names=["bias"])
    return optimizer


def compile_classifier(model, optimizer, label_smoothing=0.0):
    model.compile(
        optimizer=optimizer,
        loss=SmoothedSparseCrossentropy(label_smoothing) if label_smoothing
        else "sparse_categorical_crossentropy",
        metrics=["accuracy"],
    )
    return model


class SentimentPipeline:
    """Raw strings → class probabilities, the same way in `predict` and in the export.

    `vectorizer`: a word `TextVectorization` or a `SubwordVectorizer`; or, for a model with
    several inputs (an ensemble whose members read different vocabularies), a dict
    `{input name: vectorizer}` in the model's input order. Token counts (`token_counts`) come
    from the first.
    Inputs longer than `max_length` tokens are truncated (an RNN reads them fine, but an
    unbounded request must not be able to stall a server); an empty or whitespace-only
    string becomes one padding step, which the mask turns into an all-padding sequence.
    """

    def __init__(self, vectorizer, model, label_names, max_length=400):
        self.vectorizers = dict(vectorizer) if isinstance(vectorizer, dict) else {"token_ids": vectorizer}
        self.vectorizer = next(iter(self.vectorizers.values()))
        self.model = model
        self.label_names = list(label_names)
        self.max_length = int(max_length)
        self.probabilities(tf.constant(["", "built"]))  # builds the vectorizers and model

    def encode(self, strings):
        return self._model_inputs(self._token_ids(strings))

    def _token_ids(self, strings):
        """`{input name: [B, T] ids}`, whole (before the `max_length` cut)."""
        strings = clean_utf8(strings)
        return {name: vectorizer(strings) for name, vectorizer in self.vectorizers.items()}

    def _model_inputs(self, token_ids):
        inputs = {name: self._cut(ids) for name, ids in token_ids.items()}
        return next(iter(inputs.values())) if len(inputs) == 1 else inputs

    def _cut(self, ids):
        ids = tf.cast(ids[:, : self.max_length], tf.int32)
        pad = tf.maximum(1 - tf.shape(ids)[1], 0)  # keep at least one time step
        return tf.pad(ids, [[0, 0], [0, pad]])

    def probabilities(self, strings):
        return self.model(self.encode(strings), training=False)

    def token_counts(self, strings):
        """`(num_tokens [B], num_unknown [B], truncated [B])`: the tokens each text has
        after standardization (before the `max_length` cut), how many of those are out of
        the vocabulary ([UNK], id 1), and whether the cut dropped any."""
        return self._counts(self.vectorizer(clean_utf8(strings)))

    def _counts(self, ids):
        num_tokens = tf.reduce_sum(tf.cast(ids > 0, tf.int32), axis=-1)
        num_unknown = tf.reduce_sum(tf.cast(tf.equal(ids, 1), tf.int32), axis=-1)
        return num_tokens, num_unknown, num_tokens > self.max_length

    def serve(self, strings):
        """The export signature: {probabilities [B, C], label [B] string, class_id [B],
        num_tokens [B], num_unknown [B], truncated [B]}. `num_tokens == num_unknown` (0 for
        an empty or blank text) means the answer rests on no known word. Each text is
        tokenized once, for the model and the counts alike."""
        token_ids = self._token_ids(strings)
        probs = self.model(self._model_inputs(token_ids), training=False)
        class_id = tf.argmax(probs, axis=-1, output_type=tf.int32)
        labels = tf.gather(tf.constant(self.label_names), class_id)
        num_tokens, num_unknown, truncated = self._counts(next(iter(token_ids.values())))
        return {"probabilities": probs, "label": labels, "class_id": class_id,
                "num_tokens": num_tokens, "num_unknown": num_unknown, "truncated": truncated}
