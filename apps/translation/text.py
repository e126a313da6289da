"""Tokenization, vocabularies and tf.data pipelines for translation.

Strings never enter the Keras model: the vectorizers below run in tf.data (training) and in
the export wrapper (serving), and both use the very same layers, rebuilt from the
vocabularies saved in the run folder.

Tokenization follows the Multi30k files the benchmark is quoted on (lowercased,
Moses-tokenized, with Moses' HTML escapes `&apos;` `&quot;` `&amp;`). `standardize` turns
raw text into that form and leaves already tokenized text unchanged, so one vectorizer
serves the tokenized training files and raw sentences typed by a user:

    "A man's dog, \"Rex\"."  ->  "a man &apos;s dog , &quot; rex &quot; ."

`detokenize` is the way back, for people and for sacrebleu's standard (detokenized) BLEU.
All of it is `tf.strings` ops, so it traces into the SavedModel.
"""

import re

import keras
import tensorflow as tf

from apps.translation import SUBWORD_VOCAB_SIZE  # the default pieces per language (why: there)
from seqapps.data import count_tokens, padded_batches, vectorizer_from_vocabulary, vocabulary_from_counts
from seqapps.data import subword
from seqapps.data.subword import (  # noqa: F401 (the translation app's names for them)
    END_ID, PAD_ID, START_ID, UNK_ID, SubwordVectorizer, python_subword_tokenize, subword_standardize)

START_TOKEN, END_TOKEN = "[start]", "[end]"

# Moses escapes, in the order they must be undone (&amp; last: "&amp;apos;" is "&apos;").
_ESCAPES = [("&apos;", "'"), ("&quot;", '"'), ("&lt;", "<"), ("&gt;", ">"),
            ("&#91;", "["), ("&#93;", "]"), ("&#124;", "|"), ("&amp;", "&")]
# Typographic punctuation Moses' normalize-punctuation maps to ASCII (the ".norm." files).
_NORMALIZE = [("[„“”«»]", '"'), ("[‘’‚`´]", "'"), ("[–—]", " - "), ("…", "...")]


def _unescape(text):
    for escaped, char in _ESCAPES:
        text = tf.strings.regex_replace(text, escaped, char, replace_global=True)
    return text


@keras.saving.register_keras_serializable(package="seqapps_translation")
def standardize(text):
    """Raw or Moses-tokenized text -> lowercased Moses-style tokens separated by spaces."""
    text = _unescape(tf.strings.lower(text, encoding="utf-8"))
    for pattern, replacement in _NORMALIZE:
        text = tf.strings.regex_replace(text, pattern, replacement)
    # Split off every character that is not a letter, digit, mark, space, hyphen, period or
    # apostrophe; an apostrophe starts a token ("man's" -> "man 's", Moses' English rule).
    text = tf.strings.regex_replace(text, r"([^\pL\pN\pM\s\-'.])", r" \1 ")
    # Periods: Moses keeps them inside abbreviations ("st.", "bzw.", "s.c.u.b.a.") and splits
    # the sentence's final one; mid-sentence, a period after a word of 4+ letters ends it.
    text = tf.strings.regex_replace(text, r"(\pL{4,})\.(\s)", r"\1 .\2")
    text = tf.strings.regex_replace(text, r"([^.\s])(\.+)\s*$", r"\1 \2")
    text = tf.strings.regex_replace(text, "'", " '")
    # Escape as Moses does; the escapes' own "&" and ";" come after the split above.
    text = tf.strings.regex_replace(text, "&", "&amp;")
    for escaped, char in _ESCAPES[:-1]:
        text = tf.strings.regex_replace(text, re.escape(char), escaped)
    return text


def detokenize(tokens):
    """Space-separated tokens -> readable text: "a man &apos;s dog ." -> "A man's dog."."""
    text = _unescape(tokens)
    text = tf.strings.regex_replace(text, r" ([.,!?;:%)\]}'])", r"\1")
    text = tf.strings.regex_replace(text, r"([(\[{]) ", r"\1")
    text = tf.strings.regex_replace(text, r'" ([^"]*) "', r'"\1"')  # paired double quotes
    length = tf.strings.length(text, unit="UTF8_CHAR")
    one = tf.minimum(length, 1)  # 0 for an empty string
    first = tf.strings.substr(text, one * 0, one, unit="UTF8_CHAR")
    rest = tf.strings.substr(text, one, length, unit="UTF8_CHAR")
    return tf.strings.join([tf.strings.upper(first, encoding="utf-8"), rest])


def tokenize(texts):
    """Python strings -> standardized token strings (what tokenized BLEU compares)."""
    if not texts:
        return []
    out = standardize(tf.constant(list(texts)))
    return [" ".join(t.decode("utf-8").split()) for t in out.numpy()]


def detokenize_strings(token_strings):
    if not token_strings:
        return []
    return [t.decode("utf-8") for t in detokenize(tf.constant(list(token_strings))).numpy()]


# --- vocabularies ------------------------------------------------------------------------


def build_vocabularies(pairs, *, min_count=2, max_tokens=None):
    """`(source vocabulary, target vocabulary)` counted on training pairs.

    Both start with "" (padding, id 0) and "[UNK]" (id 1); the target one continues with
    "[start]" (id 2) and "[end]" (id 3), which no standardized text can contain.
    """
    sources, targets = zip(*pairs)
    source = vocabulary_from_counts(count_tokens(sources, standardize), min_count=min_count,
                                    max_tokens=max_tokens)
    counts = count_tokens(targets, standardize)
    target = vocabulary_from_counts(counts, min_count=min_count,
                                    max_tokens=None if max_tokens is None else max_tokens - 2)
    target = target[:2] + [START_TOKEN, END_TOKEN] + target[2:]
    return source, target


def make_vectorizer(vocabulary):
    """The one string -> ids layer, for training, evaluation and the export."""
    return vectorizer_from_vocabulary(vocabulary, standardize=standardize)


# --- datasets ----------------------------------------------------------------------------


def encode_pairs(pairs, source_vectorizer, target_vectorizer, *, max_length=None):
    """`tf.data` of `((source ids, target_in), target_out)`, int32, one example each.

    target_in is `[start] y_1 .. y_n`, target_out `y_1 .. y_n [end]`. With `max_length`,
    pairs whose source or target has more tokens are dropped (training only).
    """
    sources, targets = zip(*pairs)
    dataset = tf.data.Dataset.from_tensor_slices((list(sources), list(targets)))

    def encode(source, target):
        source_ids = tf.cast(source_vectorizer(source), tf.int32)
        target_ids = tf.cast(target_vectorizer(target), tf.int32)
        target_in = tf.concat([[START_ID], target_ids], axis=0)
        target_out = tf.concat([target_ids, [END_ID]], axis=0)
        return (source_ids, target_in), target_out

    dataset = dataset.map(encode, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    if max_length:
        dataset = dataset.filter(
            lambda inputs, target: tf.logical_and(tf.size(inputs[0]) <= max_length,
                                                  tf.size(target) <= max_length + 1))
    return dataset


BUCKETS = [8, 11, 14, 17, 21, 26, 33]  # source lengths: Multi30k's are 4..40, median 12


def _pad_to_multiple(x, multiple):
    extra = -tf.shape(x)[1] % multiple
    return tf.pad(x, [[0, 0], [0, extra]])


def batches(pairs, source_vectorizer, target_vectorizer, batch_size, *, shuffle=False,
            max_length=None, seed=0, multiple=8):
    """Length-bucketed padded batches for `model.fit` / `evaluate`.

    Lengths are padded up to a multiple of `multiple`: a handful of distinct batch shapes
    instead of one per length pair, so the XLA-compiled RNN loops (compiled once per
    shape) and Keras' traced train step are reused instead of rebuilt.
    """
    dataset = encode_pairs(pairs, source_vectorizer, target_vectorizer, max_length=max_length)
    dataset = padded_batches(dataset, batch_size, bucket_boundaries=BUCKETS if shuffle else None,
                             shuffle_buffer=len(pairs) if shuffle else None, seed=seed)
    if multiple > 1:
        dataset = dataset.map(lambda inputs, target: (
            (_pad_to_multiple(inputs[0], multiple), _pad_to_multiple(inputs[1], multiple)),
            _pad_to_multiple(target, multiple)))
    return dataset



# --- subword vocabularies (`train --vocab subword`) --------------------------------------
#
# A SentencePiece model per language, learned at `train` time on the raw cased training
# text and saved in the run folder (`subword.source.model`, `subword.target.model`); the
# tokenizer itself is `seqapps.data.subword` (shared with the sentiment app).

SUBWORD_MODELS = {"source": "subword.source.model", "target": "subword.target.model"}


def train_subword_model(texts, vocab_size=SUBWORD_VOCAB_SIZE, model_type="unigram"):
    """A SentencePiece model for one language of raw cased text (`seqapps.data.subword`)."""
    return subword.train_subword_model(texts, vocab_size, model_type)
