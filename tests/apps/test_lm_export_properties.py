"""Property-based tests of every signature of the LM export (hypothesis).

One tiny character model and one tiny word model are trained for a few windows and exported
once per session, with the default caps (1000 tokens read per text, 1000 generated); the
signatures are called through `tf.saved_model.load`, as a serving client would. Inputs are
arbitrary: Unicode and raw bytes (invalid UTF-8), empty batches and batches of a few hundred,
texts up to 10,000 tokens; numeric arguments anywhere, NaN and infinities included. Every call
must answer within a bounded time with outputs of the documented structure, or fail with an
`InvalidArgumentError` naming the argument exactly when the documented rule (apps/lm/README.md,
apps/lm/serving.py) says the argument is out of range.
"""

import math
import os
import re
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from apps.lm import commands  # noqa: E402
from apps.lm.serving import DEFAULT_MAX_INPUT_TOKENS, DEFAULT_MAX_TOKENS_CAP, MAX_TEMPERATURE  # noqa: E402

CAP_IN, CAP_OUT = DEFAULT_MAX_INPUT_TOKENS, DEFAULT_MAX_TOKENS_CAP
SECONDS = 60.0  # the most one call may take on a loaded 2-core machine (they take ~0.01-3 s)
PROPERTIES = settings(max_examples=12, deadline=None, print_blob=True,
                      suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                             HealthCheck.function_scoped_fixture])  # `export` only picks a session fixture
ASCII_SPACE = re.compile(rb"[ \t\n\v\f\r]+")


def _export(tmp_path_factory, level):
    folder = tmp_path_factory.mktemp(f"lm_{level}")
    if level == "char":
        data = folder / "verse.txt"
        data.write_text("to be, or not to be: that is the question.\n" * 30)
    else:
        data = folder / "toy"
        data.mkdir()
        for split in ("train", "valid", "test"):
            (data / f"toy.{split}.txt").write_text("the dog saw the cat\na cat liked the bird\n" * 30)
    run_dir = folder / "run"
    commands.train(run_dir, str(data), units=8, layers=1, embedding_dim=8, bptt=10, batch_size=4, epochs=1,
                   steps_per_epoch=2, dropout=0.0, patience=0, seed=0, tensorboard=False, quiet=True)
    path = commands.export(run_dir, folder / "export")
    loaded = tf.saved_model.load(str(path))
    return {"level": level, "signatures": loaded.signatures, "loaded": loaded,
            "vocabulary": commands.Codec.load(run_dir).vocabulary}


@pytest.fixture(scope="session")
def char_export(tmp_path_factory):
    return _export(tmp_path_factory, "char")


@pytest.fixture(scope="session")
def word_export(tmp_path_factory):
    return _export(tmp_path_factory, "word")


@pytest.fixture(params=["char", "word"])
def export(request):
    return request.getfixturevalue(f"{request.param}_export")


# --- inputs -------------------------------------------------------------------------------

pieces = st.one_of(st.text(max_size=12).map(lambda t: t.encode("utf-8")), st.binary(max_size=12))
long_texts = st.builds(
    lambda piece, n: (piece + b" ") * n, st.one_of(st.text(min_size=1, max_size=6).map(str.encode), st.binary(min_size=1, max_size=6)),
    st.integers(0, 10_000),
).map(lambda t: t[: 70_000])  # up to 10,000 words (and tens of thousands of characters)
texts = st.one_of(pieces, pieces, long_texts)
batches = st.one_of(
    st.lists(texts, max_size=5),
    st.builds(lambda text, n: [text] * n, pieces, st.integers(0, 300)),  # empty to a few hundred rows
    st.builds(lambda text, n: [text] * n, long_texts, st.integers(0, 40)),
)
floats = st.one_of(st.floats(allow_nan=True, allow_infinity=True, width=32),
                   st.sampled_from([0.0, -0.0, 1e-7, 0.5, 1.0, 1.5, MAX_TEMPERATURE * 10]))


def _timed(fn, **inputs):
    start = time.perf_counter()
    try:
        return fn(**inputs), None
    except tf.errors.InvalidArgumentError as error:
        return None, error
    finally:
        assert time.perf_counter() - start < SECONDS


def _reference_tokens(text, level):
    """The tokens of `text` by the documented rule, for valid UTF-8 only (None otherwise):
    characters, or words split at ASCII whitespace; what the export must count."""
    try:
        decoded = text.decode("utf-8")
    except UnicodeDecodeError:
        return None
    if level == "char":
        return list(decoded)
    return [w for w in ASCII_SPACE.split(text) if w]


def _check_strings(array, rows):
    assert array.dtype == object and array.shape[0] == rows


def _assert_refused(error, *names):
    assert error is not None, f"expected an argument error about {names}"
    assert any(f"{name} must be" in error.message for name in names), error.message


# --- score --------------------------------------------------------------------------------


@PROPERTIES
@given(batch=batches)
def test_score_answers_any_batch_in_bounded_time(export, batch):
    out, error = _timed(export["signatures"]["score"], sentences=tf.constant(batch, tf.string))
    assert error is None
    out = {k: v.numpy() for k, v in out.items()}
    assert set(out) == {"log_prob", "num_tokens", "perplexity", "token_log_probs", "tokens", "num_unknown", "truncated"}
    rows, word = len(batch), export["level"] == "word"
    width = out["token_log_probs"].shape[1]
    assert out["token_log_probs"].shape == out["tokens"].shape == (rows, width) and width >= 1
    assert width <= CAP_IN + 1
    for key in ("log_prob", "num_tokens", "perplexity", "num_unknown", "truncated"):
        assert out[key].shape == (rows,), key
    _check_strings(out["tokens"], rows)
    for i, text in enumerate(batch):
        n = out["num_tokens"][i]
        lp = out["token_log_probs"][i]
        assert 0 <= n <= CAP_IN + word
        assert np.all(np.isfinite(lp)) and np.all(lp <= 1e-6) and np.all(lp[n:] == 0)
        assert all(t == b"" for t in out["tokens"][i][n:]) and all(t != b"" for t in out["tokens"][i][:n])
        assert out["log_prob"][i] == pytest.approx(lp.sum(), rel=1e-4, abs=1e-3)
        assert out["perplexity"][i] == pytest.approx(math.exp(-out["log_prob"][i] / max(n, 1)), rel=1e-4)
        assert 0 <= out["num_unknown"][i] <= n
        reference = _reference_tokens(text, export["level"])
        if reference is not None:  # valid UTF-8: the counts follow the documented rule exactly
            truncated = len(reference) > CAP_IN
            assert out["truncated"][i] == truncated
            assert n == min(len(reference), CAP_IN) + (word and not truncated)


@settings(PROPERTIES, max_examples=6)
@given(text=long_texts, others=st.lists(pieces, max_size=3))
def test_score_of_a_long_text_is_the_score_of_its_first_tokens_whatever_the_batch(export, text, others):
    """The cap keeps the first tokens: a cut text scores exactly as its prefix of that many
    tokens does alone; and a row's scores do not depend on the other rows (the chunked
    softmax cuts the batch differently for every batch size)."""
    score = export["signatures"]["score"]
    together = score(sentences=tf.constant([text, *others], tf.string))
    alone = score(sentences=tf.constant([text], tf.string))
    n = int(alone["num_tokens"][0])
    np.testing.assert_allclose(together["token_log_probs"][0, :n], alone["token_log_probs"][0, :n], rtol=1e-4, atol=1e-4)
    reference = _reference_tokens(text, export["level"])
    if reference is not None and len(reference) > CAP_IN:
        prefix = "".join(reference[:CAP_IN]) if export["level"] == "char" else b" ".join(reference[:CAP_IN])
        cut = score(sentences=tf.constant([prefix.encode() if isinstance(prefix, str) else prefix], tf.string))
        assert bool(alone["truncated"][0]) and not bool(cut["truncated"][0])
        np.testing.assert_allclose(alone["token_log_probs"][0, :CAP_IN], cut["token_log_probs"][0, :CAP_IN],
                                   rtol=1e-4, atol=1e-4)


# --- generate and generate_filtered ---------------------------------------------------------


def _flushed(value):
    """A float32 as the CPU kernels see it: subnormals flushed to (signed) zero."""
    value = float(np.float32(value))
    return 0.0 * math.copysign(1.0, value) if 0 < abs(value) < np.finfo(np.float32).tiny else value


def _generate_refusals(max_tokens, temperature, top_k=0, top_p=1.0):
    temperature, top_p = _flushed(temperature), _flushed(top_p)
    names = []
    if max_tokens < 0:
        names.append("max_tokens")
    if not (math.isfinite(temperature) and temperature >= 0):
        names.append("temperature")
    if top_k < 0:
        names.append("top_k")
    if not 0 < top_p <= 1:
        names.append("top_p")
    return names


def _check_generated(export, batch, out, max_tokens):
    out = {k: v.numpy() for k, v in out.items()}
    assert set(out) == {"text", "tokens", "num_tokens", "num_prompt_tokens", "num_unknown", "truncated"}
    rows, length = len(batch), min(max_tokens, CAP_OUT)
    assert out["tokens"].shape == (rows, length)
    _check_strings(out["text"], rows)
    for key in ("num_tokens", "num_prompt_tokens", "num_unknown", "truncated"):
        assert out[key].shape == (rows,), key
    separator = b"" if export["level"] == "char" else b" "
    vocabulary = {t.encode() for t in export["vocabulary"][2:]}  # never padding or [UNK]
    for i, text in enumerate(batch):
        assert out["num_tokens"][i] == length  # no end token: always the (capped) max_tokens
        assert set(out["tokens"][i]) <= vocabulary
        assert out["text"][i] == separator.join(out["tokens"][i])
        read = out["num_prompt_tokens"][i]
        assert 0 <= out["num_unknown"][i] <= read <= CAP_IN
        reference = _reference_tokens(text, export["level"])
        if reference is not None:
            assert out["truncated"][i] == (len(reference) > CAP_IN)
            assert read == min(len(reference), CAP_IN)


@PROPERTIES
@given(batch=batches, max_tokens=st.integers(-3, 1500), temperature=floats,
       seed=st.integers(-(2**63), 2**63 - 1))
def test_generate_answers_or_refuses_by_the_documented_rule(export, batch, max_tokens, temperature, seed):
    inputs = dict(prompt=tf.constant(batch, tf.string), max_tokens=tf.constant(max_tokens, tf.int32),
                  temperature=tf.constant(temperature, tf.float32), seed=tf.constant(seed, tf.int64))
    out, error = _timed(export["signatures"]["generate"], **inputs)
    refused = _generate_refusals(max_tokens, temperature)
    if refused:
        return _assert_refused(error, *refused)
    assert error is None, error.message
    _check_generated(export, batch, out, max_tokens)


@PROPERTIES
@given(batch=batches, max_tokens=st.integers(-2, 300), temperature=floats, seed=st.integers(0, 2**31),
       top_k=st.integers(-3, 10**6), top_p=floats)
def test_generate_filtered_answers_or_refuses_by_the_documented_rule(export, batch, max_tokens, temperature, seed,
                                                                     top_k, top_p):
    inputs = dict(prompt=tf.constant(batch, tf.string), max_tokens=tf.constant(max_tokens, tf.int32),
                  temperature=tf.constant(temperature, tf.float32), seed=tf.constant(seed, tf.int64),
                  top_k=tf.constant(top_k, tf.int32), top_p=tf.constant(top_p, tf.float32))
    out, error = _timed(export["signatures"]["generate_filtered"], **inputs)
    refused = _generate_refusals(max_tokens, temperature, top_k, top_p)
    if refused:
        return _assert_refused(error, *refused)
    assert error is None, error.message
    _check_generated(export, batch, out, max_tokens)


def test_the_default_signature_is_generate_and_greedy_is_the_top_next_token(export):
    signatures = export["signatures"]
    assert set(signatures) == {"serving_default", "generate", "generate_filtered", "score", "next_tokens"}
    prompts = tf.constant([b"", b"to be", b"the dog", b"\xff\xfe"], tf.string)
    greedy = signatures["generate"](prompt=prompts, max_tokens=tf.constant(1), temperature=tf.constant(0.0),
                                    seed=tf.constant(0, tf.int64))
    default = signatures["serving_default"](prompt=prompts, max_tokens=tf.constant(1), temperature=tf.constant(0.0),
                                            seed=tf.constant(0, tf.int64))
    top = signatures["next_tokens"](prompt=prompts, k=tf.constant(1))
    np.testing.assert_array_equal(greedy["tokens"].numpy(), top["tokens"].numpy())
    np.testing.assert_array_equal(default["tokens"].numpy(), greedy["tokens"].numpy())


# --- next_tokens ----------------------------------------------------------------------------


@PROPERTIES
@given(batch=batches, k=st.integers(-3, 10**6))
def test_next_tokens_answers_or_refuses_by_the_documented_rule(export, batch, k):
    out, error = _timed(export["signatures"]["next_tokens"], prompt=tf.constant(batch, tf.string), k=tf.constant(k))
    if k < 1:
        return _assert_refused(error, "k")
    assert error is None, error.message
    out = {key: v.numpy() for key, v in out.items()}
    assert set(out) == {"tokens", "log_probs", "num_prompt_tokens", "num_unknown", "truncated"}
    rows, real = len(batch), len(export["vocabulary"]) - 2
    assert out["tokens"].shape == out["log_probs"].shape == (rows, min(k, real))
    vocabulary = {t.encode() for t in export["vocabulary"][2:]}
    for i, text in enumerate(batch):
        lp = out["log_probs"][i]
        assert np.all(np.isfinite(lp)) and np.all(lp <= 1e-6) and np.all(np.diff(lp) <= 1e-6)  # best first
        assert len(set(out["tokens"][i])) == len(out["tokens"][i]) and set(out["tokens"][i]) <= vocabulary
        if k >= real:  # every real token listed: their probabilities sum to at most 1
            assert np.exp(lp).sum() <= 1 + 1e-4
        reference = _reference_tokens(text, export["level"])
        if reference is not None:
            assert out["truncated"][i] == (len(reference) > CAP_IN)
            assert out["num_prompt_tokens"][i] == min(len(reference), CAP_IN)


def test_a_long_prompt_is_read_from_its_end(export):
    """generate / next_tokens keep the prompt's last CAP_IN tokens: a prompt and its last
    CAP_IN tokens give the same next-token distribution."""
    unit = b"to be, or not " if export["level"] == "char" else b"the dog saw the cat "
    tokens = _reference_tokens(unit * 400, export["level"])
    assert len(tokens) > CAP_IN
    tail = "".join(tokens[-CAP_IN:]).encode() if export["level"] == "char" else b" ".join(tokens[-CAP_IN:])
    out = export["signatures"]["next_tokens"](prompt=tf.constant([unit * 400, tail]), k=tf.constant(3))
    assert out["truncated"].numpy().tolist() == [True, False]
    assert out["num_prompt_tokens"].numpy().tolist() == [CAP_IN, CAP_IN]
    np.testing.assert_array_equal(out["tokens"][0].numpy(), out["tokens"][1].numpy())
    np.testing.assert_allclose(out["log_probs"][0].numpy(), out["log_probs"][1].numpy(), rtol=1e-5, atol=1e-5)


def test_a_nul_does_not_end_a_lowercased_text(word_export):
    """TF's UTF-8 lowercasing stops at a NUL; the export reads NUL as U+FFFD instead, so the
    words after it still count (found by the properties above)."""
    out = word_export["signatures"]["score"](sentences=tf.constant([b"the\x00 dog SAW", b"The dog saw"]))
    assert out["num_tokens"].numpy().tolist() == [4, 4]  # three words and <eos>
    tokens = out["tokens"].numpy()
    assert tokens[1].tolist() == [b"the", b"dog", b"saw", b"<eos>"]
    assert tokens[0][1:].tolist() == tokens[1][1:].tolist() and out["num_unknown"].numpy().tolist() == [1, 0]
