"""Bag-of-words baseline: the mean of the word embeddings, then softmax (fastText-style).

It sees which words occur, never their order — so "good, not bad" and "bad, not good"
get identical scores (the seeds' point about word order; a test asserts it).
"""

import keras

from seqapps.pooling import SequencePooling


def build_bow_model(vocab_size, num_classes, *, embedding_dim=128, dropout=0.6, embedding_dropout=0.0, **_):
    """`embedding_dropout`: word dropout to [UNK], as the recurrent model's (a fair comparison)."""
    from apps.sentiment.model import WordDropout

    ids = keras.Input(shape=(None,), dtype="int32", name="token_ids")
    tokens = WordDropout(embedding_dropout, name="word_dropout")(ids) if embedding_dropout else ids
    x = keras.layers.Embedding(vocab_size, embedding_dim, mask_zero=True, name="embedding")(tokens)
    x = SequencePooling("mean", name="mean_pool")(x)
    x = keras.layers.Dropout(dropout)(x)
    # float32 even under mixed precision: a float16 softmax rounds small probabilities to 0
    probs = keras.layers.Dense(num_classes, activation="softmax", dtype="float32", name="classifier")(x)
    return keras.Model(ids, probs, name="sentiment_bow")
