"""Property-based tests of every signature of the translation export (issue #17).

One tiny (untrained) model is exported once per session and loaded back with
`tf.saved_model.load`; hypothesis then throws arbitrary Unicode, arbitrary bytes (invalid
UTF-8 included), empty batches, batches of a few hundred and sentences of up to 10,000
tokens at `serving_default` (beam search) and `greedy`. Every call must answer in bounded
time with well-formed outputs of the right shapes; only a wrongly typed or shaped argument
may raise, and then a clear argument error. An untrained model rarely emits the end token,
so outputs run to their bounds: the worst case for time.

The expected source lengths come from the inputs' construction (n words of the
vocabulary separated by spaces: n tokens), not from the graph's own tokenizer.
"""

import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.translation.model import build_model
from apps.translation.text import make_vectorizer
from apps.translation.translator import Translator
from tests.apps.export_properties import SECONDS_PER_CALL, SETTINGS

WORDS = ["ein", "mann", "hund", "rennt", "zwei", "frauen", "auf", "dem", "gras"]
SOURCE_VOCAB = ["", "[UNK]"] + WORDS
TARGET_VOCAB = ["", "[UNK]", "[start]", "[end]"] + ["a", "man", "dog", "runs", "two", "women"]
MAX_SOURCE, MAX_OUTPUT = 200, 60
SIGNATURES = ("serving_default", "greedy")


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = build_model(len(SOURCE_VOCAB), len(TARGET_VOCAB), units=8, embedding_dim=8,
                        dropout=0.0, attention="bahdanau")
    model((np.ones((1, 3), "int32"), np.ones((1, 2), "int32")))  # build the weights
    translator = Translator(model, make_vectorizer(SOURCE_VOCAB), TARGET_VOCAB, beam_width=3,
                            max_source_length=MAX_SOURCE, max_output_length=MAX_OUTPUT)
    folder = translator.export(tmp_path_factory.mktemp("export") / "mt")
    loaded = tf.saved_model.load(str(folder))
    assert set(loaded.signatures) == set(SIGNATURES)
    return loaded


def call(loaded, name, sources):
    start = time.perf_counter()
    out = loaded.signatures[name](sources=tf.constant(sources, tf.string, shape=[len(sources)]))
    seconds = time.perf_counter() - start
    assert seconds < SECONDS_PER_CALL, (name, len(sources), seconds)
    return {k: v.numpy() for k, v in out.items()}


def check_well_formed(out, n):
    assert set(out) == {"translation", "tokens", "length", "source_length", "truncated"}
    for key, value in out.items():
        assert value.shape == (n,), key
    assert out["truncated"].dtype == bool
    assert np.issubdtype(out["length"].dtype, np.integer)
    assert np.issubdtype(out["source_length"].dtype, np.integer)
    assert np.all(out["source_length"] >= 0) and np.all(out["source_length"] <= MAX_SOURCE)
    bound = np.minimum(2 * out["source_length"] + 10, MAX_OUTPUT)
    assert np.all(out["length"] >= 0) and np.all(out["length"] <= bound)
    for translation, tokens, length, source_length in zip(
            out["translation"], out["tokens"], out["length"], out["source_length"]):
        translation, tokens = translation.decode("utf-8"), tokens.decode("utf-8")  # valid UTF-8
        assert len(tokens.split()) == length
        assert all(t in TARGET_VOCAB[4:] + ["[UNK]"] for t in tokens.split())
        if source_length == 0:
            assert translation == "" and length == 0


texts = st.one_of(st.text(max_size=60).map(lambda s: s.encode("utf-8", "surrogatepass")),
                  st.binary(max_size=60))


@pytest.mark.parametrize("name", SIGNATURES)
@SETTINGS
@given(batch=st.lists(texts, max_size=8))
def test_arbitrary_unicode_and_bytes(exported, name, batch):
    check_well_formed(call(exported, name, batch), len(batch))


@pytest.mark.parametrize("name", SIGNATURES)
def test_an_empty_batch(exported, name):
    check_well_formed(call(exported, name, []), 0)


def words(n, seed):
    return " ".join(np.random.default_rng(seed).choice(WORDS, n))


@pytest.mark.parametrize("name", SIGNATURES)
@settings(SETTINGS, max_examples=6)
@given(n=st.integers(0, 10_000), seed=st.integers(0, 2**16), extra=st.integers(0, 3))
def test_long_sentences_are_cut_and_still_bounded(exported, name, n, seed, extra):
    batch = [words(n, seed)] + [words(k, seed + k) for k in range(extra)]
    out = call(exported, name, batch)
    check_well_formed(out, len(batch))
    lengths = [n] + list(range(extra))
    assert out["source_length"].tolist() == [min(k, MAX_SOURCE) for k in lengths]
    assert out["truncated"].tolist() == [k > MAX_SOURCE for k in lengths]


@pytest.mark.parametrize("name", SIGNATURES)
@settings(SETTINGS, max_examples=4)
@given(size=st.integers(1, 300), seed=st.integers(0, 2**16))
def test_batches_of_a_few_hundred_answer_row_by_row(exported, name, size, seed):
    rng = np.random.default_rng(seed)
    lengths = rng.integers(0, 30, size)
    batch = [words(int(k), seed + i) for i, k in enumerate(lengths)]
    out = call(exported, name, batch)
    check_well_formed(out, size)
    assert out["source_length"].tolist() == lengths.tolist()
    # Each row's bound is its own: the first sentence translates the same alone.
    alone = call(exported, name, batch[:1])
    assert alone["tokens"][0] == out["tokens"][0]


@pytest.mark.parametrize("name", SIGNATURES)
def test_wrong_arguments_raise_a_clear_argument_error(exported, name):
    signature = exported.signatures[name]
    for bad in (tf.constant([1, 2]), tf.constant("one sentence"), tf.constant([["a"], ["b"]])):
        with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
            signature(sources=bad)
    with pytest.raises(TypeError):
        signature(text=tf.constant(["a"]))
