"""Vocabularies: special ids, counting options, exact save/restore."""

import pytest
import keras
import numpy as np
import tensorflow as tf

from seqapps.data import build_char_vocabulary
from seqapps.data import build_token_lookup
from seqapps.data import build_token_vocabulary
from seqapps.data import build_word_vectorizer
from seqapps.data import char_vectorizer_from_vocabulary
from seqapps.data import load_vocabulary
from seqapps.data import save_vocabulary
from seqapps.data import vectorizer_from_vocabulary

TEXTS = ["The cat sat .", "the dog sat !", "a cat , a dog", "Über alles ."]


def test_special_ids_and_frequency_order():
    vectorizer = build_word_vectorizer(TEXTS)
    vocab = vectorizer.get_vocabulary()
    assert vocab[:2] == ["", "[UNK]"]
    # Most frequent first, ties broken by the token, Unicode-aware lowercase.
    assert vocab[2:] == [".", "a", "cat", "dog", "sat", "the", "!", ",", "alles", "über"]
    ids = vectorizer(tf.constant(["the CAT flew", "ÜBER"])).numpy()
    assert ids.tolist() == [[7, 4, 1], [11, 0, 0]]


def test_min_count_max_tokens_and_case():
    assert build_word_vectorizer(TEXTS, min_count=2).get_vocabulary()[2:] == [
        ".",
        "a",
        "cat",
        "dog",
        "sat",
        "the",
    ]
    assert len(build_word_vectorizer(TEXTS, max_tokens=5).get_vocabulary()) == 5
    cased = build_word_vectorizer(TEXTS, lowercase=False).get_vocabulary()
    assert "The" in cased and "the" in cased


def test_split_punctuation_for_raw_text():
    vectorizer = build_word_vectorizer(
        ["Two men, outside.", "Zwei Männer."], standardize="split_punctuation"
    )
    assert set(vectorizer.get_vocabulary()[2:]) == {
        "two",
        "men",
        ",",
        "outside",
        ".",
        "zwei",
        "männer",
    }


def test_save_load_round_trip_is_exact(tmp_path):
    vocab = [
        "",
        "[UNK]",
        "plain",
        "with space",
        "tab\there",
        "new\nline",
        "nel\x85",
        "sep\u2028",
        'quote"',
        "back\\slash",
        "émoji 🎬",
        "\ufeffbom",
    ]
    path = tmp_path / "vocab.jsonl"
    save_vocabulary(vocab, path)
    assert load_vocabulary(path) == vocab


def test_vectorizer_restores_identically(tmp_path):
    texts = ["a film , a gripping film", "a dull mess", "gripping !"]
    options = dict(min_count=1, max_tokens=6, output_sequence_length=5)
    original = build_word_vectorizer(texts, **options)
    path = tmp_path / "vocab.jsonl"
    save_vocabulary(original.get_vocabulary(), path)
    restored = vectorizer_from_vocabulary(load_vocabulary(path), **options)
    probe = tf.constant(["A gripping FILM", "unseen words here", ""])
    assert restored.get_vocabulary() == original.get_vocabulary()
    np.testing.assert_array_equal(restored(probe), original(probe))


def test_vectorizer_in_saved_model_and_keras_file(tmp_path):
    vectorizer = build_word_vectorizer(TEXTS, standardize="split_punctuation")

    class Tokenize(tf.Module):
        def __init__(self):
            self.vectorizer = vectorizer

        @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
        def __call__(self, text):
            return self.vectorizer(text)

    tf.saved_model.save(Tokenize(), str(tmp_path / "saved"))
    loaded = tf.saved_model.load(str(tmp_path / "saved"))
    probe = tf.constant(["The cat, sat!", "über dog"])
    np.testing.assert_array_equal(loaded(probe), vectorizer(probe))

    inputs = keras.Input(shape=(), dtype="string")
    keras.Model(inputs, vectorizer(inputs)).save(tmp_path / "model.keras")
    reloaded = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_array_equal(reloaded(probe), vectorizer(probe))


def test_char_vocabulary_and_lookup_round_trip():
    text = "hello, wörld\n"
    vocab = build_char_vocabulary(text)
    assert vocab[:2] == ["", "[UNK]"] and vocab[2:] == sorted(set(text))
    lookup, inverse = build_token_lookup(vocab), build_token_lookup(vocab, invert=True)
    ids = lookup(tf.constant(list(text)))
    assert lookup.get_vocabulary() == vocab
    assert ids.numpy().min() >= 2
    assert "".join(t.decode() for t in inverse(ids).numpy()) == text
    assert int(lookup(tf.constant("§"))) == 1
    chars = char_vectorizer_from_vocabulary(vocab)
    np.testing.assert_array_equal(chars(tf.constant(text)), ids)


def test_token_vocabulary_for_word_language_models():
    tokens = "the cat <eos> the dog <eos> a <unk> <eos>".split()
    vocab = build_token_vocabulary(tokens)
    assert vocab[:5] == ["", "[UNK]", "<eos>", "the", "<unk>"]
    assert build_token_vocabulary(tokens, min_count=2) == ["", "[UNK]", "<eos>", "the"]


@pytest.mark.parametrize("raw, tokens", [
    ("The food was good, not bad at all.", "the food was good , not bad at all ."),
    ("It's great! Doesn't it? I can't, won't.", "it 's great ! does n't it ? i ca n't , wo n't ."),
    ("Émile's café (très) bon…", "émile 's café ( très ) bon …"),
    # SST's own tokens come through unchanged
    ("jonathan parker 's re-imagining -lrb- sic -rrb- `` wo n't '' '70s o'fallon",
     "jonathan parker 's re-imagining -lrb- sic -rrb- `` wo n't '' '70s o'fallon"),
])
def test_treebank_standardize_splits_raw_text_like_the_corpus(raw, tokens):
    from seqapps.data.vocab import treebank_text

    assert treebank_text(tf.constant(raw)).numpy().decode().split() == tokens.split()
