"""Property-based tests of the sentiment export's signature (issue #17), and its start-up.

One tiny (untrained) model is exported once per session and loaded back with
`tf.saved_model.load`; hypothesis throws arbitrary Unicode, arbitrary bytes (invalid UTF-8
included), empty batches, batches of a few hundred and texts of up to 10,000 tokens at
`serving_default`. Every call must answer in bounded time with well-formed outputs of the
right shapes; only a wrongly typed or shaped argument may raise, and then a clear argument
error. The expected token counts come from the inputs' construction (n words of the
vocabulary, or of words outside it, separated by spaces), not from the graph's tokenizer.
"""

import json
import os
import subprocess
import sys
import time

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import given, settings
from hypothesis import strategies as st

from apps.sentiment.model import SentimentPipeline, build_model
from seqapps.data import vectorizer_from_vocabulary
from seqapps.export import export_saved_model
from tests.apps.export_properties import SECONDS_PER_CALL, SETTINGS

WORDS = ["good", "bad", "film", "story", "not", "never", "dull", "great"]
UNKNOWN = ["zyzzyva", "qwxq", "blorft"]
VOCAB = ["", "[UNK]"] + WORDS
MAX_LENGTH = 50
LABELS = ["negative", "positive"]
OUTPUTS = {"probabilities", "label", "class_id", "num_tokens", "num_unknown", "truncated"}


@pytest.fixture(scope="module")
def export_dir(tmp_path_factory):
    keras.utils.set_random_seed(0)
    model = build_model(len(VOCAB), len(LABELS), units=8, embedding_dim=8, dropout=0.0)
    pipeline = SentimentPipeline(vectorizer_from_vocabulary(VOCAB, standardize="treebank"), model,
                                 LABELS, MAX_LENGTH)
    return export_saved_model(
        tmp_path_factory.mktemp("export") / "sentiment",
        {"serving_default": (pipeline.serve, [tf.TensorSpec([None], tf.string, name="text")])},
        track=[pipeline.vectorizer, pipeline.model],
    )


@pytest.fixture(scope="module")
def exported(export_dir):
    loaded = tf.saved_model.load(str(export_dir))
    assert set(loaded.signatures) == {"serving_default"}
    return loaded


def call(loaded, texts):
    start = time.perf_counter()
    out = loaded.signatures["serving_default"](text=tf.constant(texts, tf.string, shape=[len(texts)]))
    seconds = time.perf_counter() - start
    assert seconds < SECONDS_PER_CALL, (len(texts), seconds)
    return {k: v.numpy() for k, v in out.items()}


def check_well_formed(out, n):
    assert set(out) == OUTPUTS
    assert out["probabilities"].shape == (n, len(LABELS))
    for key in OUTPUTS - {"probabilities"}:
        assert out[key].shape == (n,), key
    assert np.all(np.isfinite(out["probabilities"])) and np.all(out["probabilities"] >= 0)
    np.testing.assert_allclose(out["probabilities"].sum(-1), 1.0, atol=1e-5)
    assert out["truncated"].dtype == bool
    assert np.all(out["class_id"] == out["probabilities"].argmax(-1))
    assert [l.decode() for l in out["label"]] == [LABELS[i] for i in out["class_id"]]
    assert np.all(out["num_unknown"] >= 0) and np.all(out["num_unknown"] <= out["num_tokens"])
    assert out["truncated"].tolist() == (out["num_tokens"] > MAX_LENGTH).tolist()


texts = st.one_of(st.text(max_size=60).map(lambda s: s.encode("utf-8", "surrogatepass")),
                  st.binary(max_size=60))


@SETTINGS
@given(batch=st.lists(texts, max_size=8))
def test_arbitrary_unicode_and_bytes(exported, batch):
    check_well_formed(call(exported, batch), len(batch))


def test_an_empty_batch(exported):
    check_well_formed(call(exported, []), 0)


def test_no_evidence_is_told_apart_from_an_answer(exported):
    out = call(exported, ["", "   \t ", "zyzzyva qwxq", "a good film"])
    assert out["num_tokens"].tolist() == [0, 0, 2, 3]
    assert out["num_unknown"].tolist() == [0, 0, 2, 1]  # "a" is not in the vocabulary


def sentence(known, unknown, seed):
    rng = np.random.default_rng(seed)
    words = list(rng.choice(WORDS, known)) + list(rng.choice(UNKNOWN, unknown))
    rng.shuffle(words)
    return " ".join(words)


@settings(SETTINGS, max_examples=6)
@given(n=st.integers(0, 10_000), unknown=st.integers(0, 20), seed=st.integers(0, 2**16),
       extra=st.integers(0, 3))
def test_long_texts_are_counted_cut_and_still_bounded(exported, n, unknown, seed, extra):
    batch = [sentence(n, unknown, seed)] + [sentence(k, 0, seed + k) for k in range(extra)]
    out = call(exported, batch)
    check_well_formed(out, len(batch))
    lengths = [n + unknown] + list(range(extra))
    assert out["num_tokens"].tolist() == lengths
    assert out["num_unknown"].tolist() == [unknown] + [0] * extra
    assert out["truncated"].tolist() == [k > MAX_LENGTH for k in lengths]


@settings(SETTINGS, max_examples=4)
@given(size=st.integers(1, 300), seed=st.integers(0, 2**16))
def test_batches_of_a_few_hundred_answer_row_by_row(exported, size, seed):
    lengths = np.random.default_rng(seed).integers(0, 30, size)
    batch = [sentence(int(k), 0, seed + i) for i, k in enumerate(lengths)]
    out = call(exported, batch)
    check_well_formed(out, size)
    assert out["num_tokens"].tolist() == lengths.tolist()
    alone = call(exported, batch[:1])  # a row's answer does not depend on its batch
    np.testing.assert_allclose(alone["probabilities"][0], out["probabilities"][0], atol=1e-5)


def test_wrong_arguments_raise_a_clear_argument_error(exported):
    signature = exported.signatures["serving_default"]
    for bad in (tf.constant([1, 2]), tf.constant("one sentence"), tf.constant([["a"], ["b"]])):
        with pytest.raises((TypeError, ValueError, tf.errors.InvalidArgumentError)):
            signature(text=bad)
    with pytest.raises(TypeError):
        signature(sentences=tf.constant(["a"]))


def clean_env():
    """A fresh shell's environment: none of our or TensorFlow's variables set."""
    keep = ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR")
    return {k: v for k, v in os.environ.items() if k in keep}


def test_loading_the_export_emits_no_warning(export_dir):
    code = (
        "import warnings, json\n"
        "import tensorflow as tf\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        f"    f = tf.saved_model.load({str(export_dir)!r}).signatures['serving_default']\n"
        "    f(text=tf.constant(['a good film']))\n"
        "print(json.dumps([str(w.message) for w in caught]))\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/",
                          env=clean_env(), check=True)
    assert json.loads(proc.stdout.strip().splitlines()[-1]) == []
    # nor a logged one (absl), such as "Importing a function ... with ops with custom gradients"
    assert "WARNING:absl" not in proc.stderr and "custom gradient" not in proc.stderr, proc.stderr


def test_predict_with_an_export_in_a_fresh_shell_writes_nothing_to_stderr(export_dir):
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    proc = subprocess.run(
        [sys.executable, "-m", "apps.sentiment", "predict", "--export", str(export_dir), "a good film"],
        capture_output=True, text=True, cwd=root, env=clean_env(),
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.splitlines() == []
    assert "3 tokens, 1 unknown" in proc.stdout
