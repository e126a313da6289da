"""apps/lm: truncated BPTT, exact perplexity, Kneser-Ney, generation, scoring, export, CLI.

Everything trains on tiny corpora written into tmp folders, so the file runs in a couple
of minutes on two CPU cores. The overfitted character model is trained once per module.
"""

import csv
import json
import math
import os
import pathlib
import subprocess
import sys
import textwrap

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

from apps.lm import commands  # noqa: E402
from apps.lm import model as lm_model  # noqa: E402
from apps.lm.__main__ import main  # noqa: E402
from apps.lm.corpus import Codec, load_corpus  # noqa: E402
from apps.lm.evaluation import RecurrentLM, perplexity_report  # noqa: E402
from apps.lm.ngram import KneserNey  # noqa: E402
from seqapps.data import bptt_windows, stream_from_windows  # noqa: E402
from seqapps import training  # noqa: E402
from seqapps.cli import DATA_ERROR_STATUS, INTERRUPTED_STATUS  # noqa: E402

VERSE = "to be, or not to be: that is the question.\n"
QUIET = dict(tensorboard=False, quiet=True)


@pytest.fixture(scope="module")
def char_run(tmp_path_factory):
    """A character LSTM overfitted on one repeated line (it can recite it)."""
    folder = tmp_path_factory.mktemp("char")
    (folder / "verse.txt").write_text(VERSE * 80)
    run_dir = folder / "run"
    commands.train(run_dir, str(folder / "verse.txt"), units=64, layers=1, embedding_dim=16, bptt=40, batch_size=8,
                   epochs=12, learning_rate=1e-2, dropout=0.0, patience=0, seed=0, **QUIET)
    return run_dir


@pytest.fixture(scope="module")
def char_server(char_run):
    return commands.server_for(char_run)


SUBJECTS = ["the dog", "the cat", "a girl", "a boy", "the bird"]
VERBS = ["saw", "chased", "liked", "heard"]


@pytest.fixture(scope="module")
def word_corpus(tmp_path_factory):
    """Sentences of a tiny grammar (subject verb object), as a PTB-style folder."""
    rng = np.random.default_rng(0)
    folder = tmp_path_factory.mktemp("grammar")
    for split, n in (("train", 600), ("valid", 60), ("test", 60)):
        lines = [f"{SUBJECTS[rng.integers(5)]} {VERBS[rng.integers(4)]} {SUBJECTS[rng.integers(5)]}" for _ in range(n)]
        (folder / f"toy.{split}.txt").write_text("\n".join(lines) + "\n")
    return folder


# --- truncated BPTT ---------------------------------------------------------------------


def test_stream_batching_round_trips_the_corpus(char_run):
    corpus = load_corpus(json.loads((char_run / "config.json").read_text())["data"], codec=Codec.load(char_run))
    ids = corpus.train
    for batch, window in ((8, 40), (3, 7), (1, 1000)):
        stream = stream_from_windows(bptt_windows(ids, batch, window))
        length = (len(ids) - 1) // batch
        np.testing.assert_array_equal(stream, ids[: batch * length + 1])


def _copy_task(blocks, rng, window):
    """Blocks of `window` ids [g, copy of the previous block's key, f .. f, key]: the copy is
    predicted at the first step of a window from the last input of the window before."""
    g, f, keys = 2, 3, (4, 5)
    out, previous = [], keys[0]
    for _ in range(blocks):
        key = keys[rng.integers(2)]
        out += [g, previous] + [f] * (window - 3) + [key]
        previous = key
    return np.array(out + [g], np.int32)


class _ResetEveryWindow(keras.callbacks.Callback):
    def on_test_batch_begin(self, batch, logs=None):
        lm_model.reset_states(self.model)


def test_stateful_state_carries_across_windows():
    """A copy task whose answers sit one window after their cue: only a state carried from
    the previous window can give them. (Training uses windows of two blocks, so half of the
    copies are inside a window: truncated BPTT cannot learn a dependency none of whose
    instances it can backpropagate through; it can learn one and then use the carried
    state for it beyond the window, which is the point of carrying it.)"""
    window, batch = 5, 16
    rng = np.random.default_rng(0)
    train_ids = _copy_task(batch * 60, rng, window)  # each stream: 60 whole blocks
    config = commands.resolve_config("char", 6, cell="gru", units=24, layers=1, embedding_dim=8, dropout=0.0,
                                     tie_weights=False, bptt=2 * window, batch_size=batch, optimizer="adam",
                                     learning_rate=1e-2, clipnorm=5.0)
    keras.utils.set_random_seed(0)
    net = commands.build_training_model(config)
    net.fit(commands.windows(train_ids, config, drop_remainder=True), epochs=12, shuffle=False,
            callbacks=[commands.ResetStates()], verbose=0)

    # Windows of one block: every copy depends on the window before.
    test_ids = _copy_task(batch * 20, np.random.default_rng(1), window)
    test_windows = bptt_windows(test_ids, batch, window, drop_remainder=True)
    carried = net.evaluate(test_windows, callbacks=[commands.ResetStates()], verbose=0)
    reset = net.evaluate(test_windows, callbacks=[_ResetEveryWindow()], verbose=0)
    # per window: the copy (learned: ~0 nats with the state, ln 2 without) and a random key
    assert carried < 0.2 < 0.25 < reset

    state = lm_model.copy_weights(net, lm_model.build_model(lm_model.model_config(config), state_io=True))
    lm = RecurrentLM(state, config, batch_size=1, window=window)
    copies = np.arange(1, len(test_ids) - 1, window)[1:]  # targets that are copies
    carried = np.exp(lm.stream_log_probs(test_ids)[copies - 1])
    starts = range(0, len(test_ids) - 1, window)
    reset = np.exp(np.concatenate(lm.sequence_log_probs([test_ids[s : s + window + 1] for s in starts]))[copies - 1])
    assert carried.mean() > 0.9
    assert reset.mean() < 0.7


def test_reset_states_callback_zeroes_the_carried_state():
    config = commands.resolve_config("char", 9, units=4, layers=2, bptt=3, batch_size=2, dropout=0.0)
    net = commands.build_training_model(config)
    x = np.array([[2, 3, 4], [5, 6, 7]], np.int32)
    first = net([x]).numpy()
    assert not np.allclose(net([x]).numpy(), first)  # the state carried on
    callback = commands.ResetStates()
    callback.set_model(net)
    callback.on_epoch_begin(0)
    np.testing.assert_allclose(net([x]).numpy(), first, rtol=1e-6, atol=1e-6)


# --- exact perplexity -------------------------------------------------------------------


def _fixed_weight_model():
    config = dict(vocab_size=7, cell="simple", units=3, layers=1, embedding_dim=3, dropout=0.0, tie_weights=True)
    state = lm_model.build_model(config, state_io=True)
    rng = np.random.default_rng(42)
    state.set_weights([rng.normal(0, 0.8, w.shape).astype("float32") for w in state.get_weights()])
    return config, state


def _numpy_log_probs(state, ids, h):
    """log p of ids[1:] given ids[0], from state h, by the seeds' equations."""
    weights = {w.path: w.numpy() for w in state.weights}
    emb = weights["embedding/embeddings"]
    out_b = weights["embedding/output_bias"]
    w_x, w_h, b = (weights[f"rnn_1/simple_rnn_cell/{n}"] for n in ("kernel", "recurrent_kernel", "bias"))
    result = []
    for t in range(len(ids) - 1):
        h = np.tanh(emb[ids[t]] @ w_x + h @ w_h + b)
        logits = h @ emb.T + out_b
        log_softmax = logits - np.log(np.exp(logits - logits.max()).sum()) - logits.max()
        result.append(log_softmax[ids[t + 1]])
    return np.array(result), h


def test_perplexity_is_exp_of_the_hand_computed_mean_nll():
    config, state = _fixed_weight_model()
    ids = np.random.default_rng(0).integers(1, 7, size=50).astype(np.int32)
    expected, _ = _numpy_log_probs(state, ids, np.zeros(3))
    for window in (7, 100):
        got = RecurrentLM(state, config, batch_size=1, window=window).stream_log_probs(ids)
        np.testing.assert_allclose(got, expected, rtol=1e-4, atol=1e-5)
        report = perplexity_report(got, "char")
        assert report["tokens"] == 49
        assert report["perplexity"] == pytest.approx(math.exp(-expected.mean()), rel=1e-4)
        assert report["bpc"] == pytest.approx(-expected.mean() / math.log(2), rel=1e-4)

    # Three parallel streams: each starts from zero, the 1 leftover token continues the last.
    batch, length = 3, (len(ids) - 1) // 3
    parts, h = [], None
    for b in range(batch):
        lp, h = _numpy_log_probs(state, ids[b * length : (b + 1) * length + 1], np.zeros(3))
        parts.append(lp)
    tail, _ = _numpy_log_probs(state, ids[batch * length :], h)
    expected3 = np.concatenate(parts + [tail])
    got3 = RecurrentLM(state, config, batch_size=batch, window=5).stream_log_probs(ids)
    assert got3.shape == (49,)
    np.testing.assert_allclose(got3, expected3, rtol=1e-4, atol=1e-5)


# --- Kneser-Ney ---------------------------------------------------------------------------


@pytest.mark.parametrize("order", [1, 2, 3, 5])
def test_kneser_ney_distributions_sum_to_one(word_corpus, order):
    corpus = load_corpus(str(word_corpus))
    lm = KneserNey(order, corpus.codec.vocab_size).fit(corpus.train)
    rng = np.random.default_rng(order)
    for _ in range(20):
        start = rng.integers(0, len(corpus.test) - 6)
        context = corpus.test[start : start + rng.integers(0, 5)]
        if rng.random() < 0.3:  # contexts never seen in training, unknown ids included
            context = rng.integers(1, corpus.codec.vocab_size, size=len(context))
        p = lm.distribution(context)
        assert p[0] == 0 and np.all(p >= 0)
        assert p.sum() == pytest.approx(1.0, abs=1e-9)
        if len(context):  # the same number as the stream scorer's
            w = int(rng.integers(1, corpus.codec.vocab_size))
            stream = lm.stream_log_probs(np.append(context, w))
            assert np.exp(stream[-1]) == pytest.approx(p[w], rel=1e-9)


def test_kneser_ney_is_trained_and_evaluated_by_the_same_commands(word_corpus, tmp_path):
    metrics = commands.train(tmp_path / "kn", str(word_corpus), model="ngram", order=3)
    assert 1 < metrics["test"]["perplexity"] < 20
    again = commands.evaluate(tmp_path / "kn")
    assert again["test"]["perplexity"] == pytest.approx(metrics["test"]["perplexity"])
    ranked = commands.score(["the dog saw the cat", "cat the saw dog the"], run_dir=tmp_path / "kn")
    assert ranked[0]["sentence"] == "the dog saw the cat"


# --- generation and scoring ---------------------------------------------------------------


def test_overfitted_char_model_recites_its_text(char_server):
    [result] = commands.generate(["to be, or"], max_tokens=60, temperature=0, server=char_server)
    expected = (VERSE * 3)[len("to be, or") :][:60]
    assert result["text"] == expected


def test_temperature_to_zero_is_greedy(char_server):
    greedy = [s["chosen"] for s in commands.complete("to b", steps=25, k=1, server=char_server)]
    for temperature in (0.0, 1e-7):
        [r] = commands.generate(["to b"], max_tokens=25, temperature=temperature, seed=3, server=char_server)
        assert r["tokens"] == greedy
    # A tiny temperature (not below the greedy threshold) samples the argmax all the same.
    [r] = commands.generate(["to b"], max_tokens=25, temperature=1e-3, seed=5, server=char_server)
    assert r["tokens"] == greedy
    # Same seed, same text; all bounded by max_tokens.
    a = commands.generate(["t"] * 4, max_tokens=40, temperature=1.5, seed=1, server=char_server)
    b = commands.generate(["t"] * 4, max_tokens=40, temperature=1.5, seed=1, server=char_server)
    assert [r["text"] for r in a] == [r["text"] for r in b]
    assert all(r["num_tokens"] == 40 for r in a)


def test_scoring_ranks_a_grammatical_sentence_above_its_shuffle(word_corpus, tmp_path):
    commands.train(tmp_path / "rnn", str(word_corpus), units=32, layers=1, bptt=8, batch_size=8, epochs=8,
                   optimizer="adam", learning_rate=1e-2, clipnorm=5.0, dropout=0.0, patience=0, **QUIET)
    sentence, shuffled = "the dog saw the cat", "cat the saw dog the"
    ranked = commands.score([shuffled, sentence], run_dir=tmp_path / "rnn")
    assert [r["sentence"] for r in ranked] == [sentence, shuffled]
    top = ranked[0]
    assert top["tokens"] == ["the", "dog", "saw", "the", "cat", "<eos>"]  # the end of the sentence is scored
    assert top["log_prob"] == pytest.approx(sum(top["token_log_probs"]), rel=1e-5)
    assert top["perplexity"] == pytest.approx(math.exp(-top["log_prob"] / 6), rel=1e-4)
    # completion after "the dog" proposes a verb
    [first] = commands.complete("the dog", steps=1, k=3, run_dir=tmp_path / "rnn")
    assert first["chosen"] in VERBS


def test_bad_input_has_defined_bounded_answers(char_server):
    server = char_server
    out = server.generate_filtered(tf.constant(["", "zz\u00e9\u4e2d", "to"]), tf.constant(1_000_000), tf.constant(0.0),
                                   tf.constant(0, tf.int64), tf.constant(10**6), tf.constant(1.0))
    assert out["num_tokens"].numpy().tolist() == [server.max_tokens_cap] * 3  # capped
    assert out["num_unknown"].numpy().tolist() == [0, 4, 0]
    for t in (0.0, 1e30):  # greedy; capped at MAX_TEMPERATURE
        out = server.generate(tf.constant(["to"]), tf.constant(20), tf.constant(t), tf.constant(1, tf.int64))
        assert out["num_tokens"].numpy()[0] == 20
    # Out-of-range arguments are refused, naming the argument, never taken as greedy or "off".
    seed = tf.constant(1, tf.int64)
    for t in (-5.0, float("nan"), float("inf")):
        with pytest.raises(tf.errors.InvalidArgumentError, match="temperature must be a finite number >= 0"):
            server.generate(tf.constant(["to"]), tf.constant(20), tf.constant(t), seed)
    with pytest.raises(tf.errors.InvalidArgumentError, match="max_tokens must be >= 0"):
        server.generate(tf.constant(["to"]), tf.constant(-1), tf.constant(1.0), seed)
    for top_k, top_p, name in ((-3, 0.5, "top_k"), (0, 0.0, "top_p"), (0, -0.1, "top_p"), (0, 1.5, "top_p"),
                               (0, float("nan"), "top_p")):
        with pytest.raises(tf.errors.InvalidArgumentError, match=f"{name} must be"):
            server.generate_filtered(tf.constant(["to"]), tf.constant(5), tf.constant(1.0), seed,
                                     tf.constant(top_k), tf.constant(top_p))
    with pytest.raises(tf.errors.InvalidArgumentError, match="k must be >= 1"):
        server.next_tokens(tf.constant(["to"]), tf.constant(0))
    none = server.generate(tf.constant(["to", ""]), tf.constant(0), tf.constant(1.0), tf.constant(1, tf.int64))
    assert none["text"].numpy().tolist() == [b"", b""]
    with pytest.raises(ValueError, match="temperature"):
        commands.generate("to", temperature=-1, server=server)
    with pytest.raises(ValueError, match="max_tokens"):
        commands.generate("to", max_tokens=-1, server=server)
    scores = commands.score(["", "\u4e2d"], server=server)
    assert {r["num_tokens"] for r in scores} == {0, 1}
    assert all(math.isfinite(r["log_prob"]) for r in scores)


# --- export -----------------------------------------------------------------------------

_LOAD_WITHOUT_SEQAPPS = textwrap.dedent("""
    import json, sys
    sys.modules["seqapps"] = None  # any import of the package fails
    sys.modules["apps"] = None
    try:
        import seqapps  # noqa
        raise SystemExit("seqapps is importable")
    except ImportError:
        pass
    import tensorflow as tf
    export_dir, out_path = sys.argv[1:]
    loaded = tf.saved_model.load(export_dir)
    sig = loaded.signatures
    result = {"generate": [], "filtered": []}
    prompts = tf.constant(["to be", "", "zz"])
    for t, seed in ((0.0, 0), (1.0, 7), (0.5, 11), (1e30, 3)):
        out = sig["generate"](prompt=prompts, max_tokens=tf.constant(30), temperature=tf.constant(t),
                              seed=tf.constant(seed, tf.int64))
        result["generate"].append([x.decode() for x in out["text"].numpy()])
    try:
        sig["generate"](prompt=prompts, max_tokens=tf.constant(30), temperature=tf.constant(-1.0),
                        seed=tf.constant(3, tf.int64))
        result["negative_temperature"] = "answered"
    except tf.errors.InvalidArgumentError as error:
        result["negative_temperature"] = error.message
    out = sig["generate_filtered"](prompt=prompts, max_tokens=tf.constant(30), temperature=tf.constant(1.0),
                                   seed=tf.constant(5, tf.int64), top_k=tf.constant(3), top_p=tf.constant(0.9))
    result["filtered"] = [x.decode() for x in out["text"].numpy()]
    out = sig["score"](sentences=tf.constant(["to be, or not", "ton ot, ro eb", ""]))
    result["score"] = out["log_prob"].numpy().tolist()
    result["token_log_probs"] = out["token_log_probs"].numpy().tolist()
    out = sig["next_tokens"](prompt=tf.constant(["to be, or no"]), k=tf.constant(3))
    result["next"] = [[x.decode() for x in row] for row in out["tokens"].numpy()]
    result["next_lp"] = out["log_probs"].numpy().tolist()
    json.dump(result, open(out_path, "w"))
""")


def test_export_answers_without_seqapps_and_equals_in_memory(char_run, char_server, tmp_path):
    path = commands.export(char_run, tmp_path / "export")
    assert (path / "signatures.md").exists()
    metadata = json.loads((path / "metadata.json").read_text())
    assert metadata["level"] == "char" and metadata["max_tokens_cap"] == 1000
    script = tmp_path / "load.py"
    script.write_text(_LOAD_WITHOUT_SEQAPPS)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    loaded = subprocess.run([sys.executable, str(script), str(path), str(tmp_path / "out.json")], check=True,
                            env=env, cwd=str(tmp_path), capture_output=True, text=True)
    # Traced forward-only: no custom-gradient function in the SavedModel, so no absl warning.
    assert "WARNING:absl" not in loaded.stderr and "custom gradient" not in loaded.stderr, loaded.stderr
    exported = json.loads((tmp_path / "out.json").read_text())

    prompts = ["to be", "", "zz"]
    assert "temperature must be a finite number >= 0" in exported["negative_temperature"]
    for (t, seed), texts in zip(((0.0, 0), (1.0, 7), (0.5, 11), (1e30, 3)), exported["generate"]):
        out = char_server.generate(tf.constant(prompts), tf.constant(30), tf.constant(t), tf.constant(seed, tf.int64))
        assert [x.decode() for x in out["text"].numpy()] == texts
    out = char_server.generate_filtered(tf.constant(prompts), tf.constant(30), tf.constant(1.0), tf.constant(5, tf.int64),
                                        tf.constant(3), tf.constant(0.9))
    assert [x.decode() for x in out["text"].numpy()] == exported["filtered"]
    out = char_server.score(tf.constant(["to be, or not", "ton ot, ro eb", ""]))
    np.testing.assert_allclose(out["log_prob"].numpy(), exported["score"], rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out["token_log_probs"].numpy(), exported["token_log_probs"], rtol=1e-5, atol=1e-5)
    assert exported["score"][0] > exported["score"][1]
    out = char_server.next_tokens(tf.constant(["to be, or no"]), tf.constant(3))
    assert [[x.decode() for x in row] for row in out["tokens"].numpy()] == exported["next"]
    assert exported["next"][0][0] == "t"
    np.testing.assert_allclose(out["log_probs"].numpy(), exported["next_lp"], rtol=1e-5, atol=1e-5)

    # The CLI answers from the export too.
    results = commands.generate(["to be, or"], export_dir=tmp_path / "export", max_tokens=10, temperature=0)
    assert results[0]["text"] == " not to be"

    # And so does saved_model_cli, with a batch of strings of different lengths.
    cli = pathlib.Path(sys.executable).parent / "saved_model_cli"
    ran = subprocess.run(
        [str(cli), "run", "--dir", str(path), "--tag_set", "serve", "--signature_def", "score",
         "--input_exprs", "sentences=['to be, or not', 'a', '']"],
        capture_output=True, text=True, check=True, env=env,
    )
    assert "log_prob" in ran.stdout and "token_log_probs" in ran.stdout


# --- the CLI ------------------------------------------------------------------------------


def history(run_dir):
    with open(pathlib.Path(run_dir) / "history.csv") as f:
        return list(csv.DictReader(f))


class _Interrupt(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        if epoch == 1:
            raise KeyboardInterrupt


def test_train_cli_runs_and_resumes_at_the_right_epoch(tmp_path, capsys):
    text = tmp_path / "abc.txt"
    text.write_text("abcabd abcabd abcd\n" * 40)
    run_dir = tmp_path / "run"
    args = ["train", "--run-dir", str(run_dir), "--data", str(text), "--units", "16", "--layers", "1",
            "--bptt", "10", "--batch-size", "4", "--quiet", "--no-tensorboard"]
    with pytest.raises(KeyboardInterrupt):  # killed during the second epoch
        commands.train(run_dir, str(text), units=16, layers=1, bptt=10, batch_size=4, epochs=3,
                       callbacks=[_Interrupt()], **QUIET)
    assert [row["epoch"] for row in history(run_dir)] == ["0"]
    assert main(args + ["--epochs", "3"]) == 0  # resumes: epochs 2 and 3 only
    assert [row["epoch"] for row in history(run_dir)] == ["0", "1", "2"]
    assert main(args + ["--epochs", "4"]) == 0  # a finished run extends
    epochs = [row["epoch"] for row in history(run_dir)]
    assert epochs == ["0", "1", "2", "3"]
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs_finished"] == 4 and metrics["validation"]["bpc"] > 0
    for name in ("best.keras", "config.json", "vocab.txt", "codec.json", "curves.png"):
        assert (run_dir / name).exists(), name
    # another configuration in the same folder is refused, with a message
    assert main(args + ["--units", "32"]) == DATA_ERROR_STATUS
    assert "other settings" in capsys.readouterr().err
    # an earlier decay rule is a change too; unset, it is not written (older runs resume as they were)
    assert "lr_decay_min_delta" not in json.loads((run_dir / "config.json").read_text())
    assert main(args + ["--lr-decay-min-delta", "0.01"]) == DATA_ERROR_STATUS
    assert "lr_decay_min_delta: None -> 0.01" in capsys.readouterr().err
    assert main(["generate", "--run-dir", str(run_dir), "ab", "--temperature", "-1"]) == DATA_ERROR_STATUS
    assert main(["score", "--run-dir", str(run_dir), "abcabd", "dbacba"]) == 0
    capsys.readouterr()
    assert main(["generate", "--run-dir", str(run_dir), "ab", "--max-tokens", "5", "--seed", "1", "--json"]) == 0
    [generated] = json.loads(capsys.readouterr().out)
    assert generated["num_tokens"] == 5


def test_every_option_has_help():
    from apps.lm.__main__ import build_parser

    parser = build_parser()
    subparsers = next(a for a in parser._actions if isinstance(a, type(parser._subparsers._group_actions[0])))
    for name, sub in subparsers.choices.items():
        for action in sub._actions:
            if action.dest != "help":
                assert action.help, f"{name} {action.dest} has no help"


def test_tune_retrains_the_best_on_train_and_validation_and_exports(word_corpus, tmp_path):
    from apps.lm import tuning as lm_tuning

    root = tmp_path / "tune"
    table, metrics = lm_tuning.tune(root, str(word_corpus), max_trials=2, epochs=2, quiet=True)
    assert [row["status"] for row in table] == ["COMPLETED", "COMPLETED"]
    best_trial = table[0]
    config = json.loads((root / "best" / "config.json").read_text())
    assert config["include_validation"] is True
    for name in ("cell", "units", "layers", "bptt"):
        assert config[name] == best_trial[name], name
    trial = json.loads((root / "search" / f"trial_{best_trial['trial_id']}" / "trial.json").read_text())
    assert len(history(root / "best")) == trial["best_step"] + 1
    assert "validation" not in metrics and metrics["test"]["perplexity"] > 1
    assert list((root / "export").glob("*/saved_model.pb"))


def test_final_fit_is_refused_when_the_test_split_is_the_validation_split(tmp_path, capsys):
    folder = tmp_path / "no_test"  # split files without a test file: validation is all that is held out
    folder.mkdir()
    (folder / "x.train.txt").write_text("a b c a b d\n" * 40)
    (folder / "x.valid.txt").write_text("a b c\n" * 10)
    args = ["train", "--run-dir", str(tmp_path / "run"), "--data", str(folder), "--units", "8",
            "--layers", "1", "--bptt", "10", "--batch-size", "4", "--epochs", "1", "--quiet",
            "--no-tensorboard", "--include-validation"]
    assert main(args) == DATA_ERROR_STATUS
    assert "no test split of its own" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()


@pytest.mark.parametrize("half", ["float16", "bfloat16"])
def test_mixed_precision_training_evaluates_in_float32(tmp_path, half):
    text = tmp_path / "abc.txt"
    text.write_text("abcabd abcabd abcd\n" * 40)
    try:
        metrics = commands.train(tmp_path / "run", str(text), units=16, layers=1, bptt=10, batch_size=4,
                                 epochs=1, mixed_precision=half, **QUIET)
    finally:
        training.configure_precision(False)
    # the state model carries float32 states across windows; the same numbers as `evaluate`
    again = commands.evaluate(tmp_path / "run", data=str(text), splits=("validation",))
    assert np.isfinite(metrics["validation"]["perplexity"])
    assert metrics["validation"]["perplexity"] == pytest.approx(again["validation"]["perplexity"], rel=1e-5)


def test_each_level_defaults_to_its_bundled_corpus_and_ctrl_c_says_how_to_resume(tmp_path, capsys, monkeypatch):
    requested = []

    def load_corpus(data, **kwargs):  # stands in for the real loader: records what train asked for
        requested.append((data, kwargs.get("level")))
        raise ValueError("stop here")

    monkeypatch.setattr(commands, "load_corpus", load_corpus)
    for i, level in enumerate(["char", "word", None]):
        args = ["train", "--run-dir", str(tmp_path / f"run{i}"), "--quiet"] + (["--level", level] if level else [])
        assert main(args) == DATA_ERROR_STATUS
    assert requested == [("tinyshakespeare", "char"), ("ptb", "word"), ("ptb", None)]

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(commands, "train", interrupted)
    assert main(["train", "--run-dir", str(tmp_path / "run")]) == INTERRUPTED_STATUS
    assert "run the same command again to resume" in capsys.readouterr().err


def test_a_train_that_fails_on_its_data_writes_nothing_and_the_corrected_command_runs(tmp_path, capsys):
    text = tmp_path / "short.txt"
    text.write_text("abcabd abcd\n" * 5)  # 60 characters: 54 for training
    run_dir = tmp_path / "run"
    args = ["train", "--run-dir", str(run_dir), "--data", str(text), "--units", "8", "--layers", "1", "--epochs", "1",
            "--quiet", "--no-tensorboard"]
    assert main(args + ["--batch-size", "8", "--bptt", "20"]) == DATA_ERROR_STATUS  # 8 streams of 6 < 20 steps
    assert "too short for batch_size=8 and window=20" in capsys.readouterr().err
    assert not run_dir.exists()
    assert main(args + ["--batch-size", "2", "--bptt", "5"]) == 0  # not refused as "other settings"
    # A file in another encoding: refused with a hint, nothing written; read with --encoding,
    # which the run remembers (evaluate reads the file the same way).
    latin = tmp_path / "latin.txt"
    latin.write_bytes("caf\u00e9 cr\u00e8me br\u00fbl\u00e9e\n".encode("latin-1") * 20)
    other = tmp_path / "run_latin"
    base = ["train", "--run-dir", str(other), "--data", str(latin), "--units", "8", "--layers", "1", "--epochs", "1",
            "--batch-size", "2", "--bptt", "5", "--quiet", "--no-tensorboard"]
    assert main(base) == DATA_ERROR_STATUS
    assert "encoding" in capsys.readouterr().err
    assert not other.exists()
    assert main(base + ["--encoding", "latin-1"]) == 0
    assert json.loads((other / "config.json").read_text())["encoding"] == "latin-1"
    assert "\u00e9" in Codec.load(other).vocabulary
    capsys.readouterr()
    assert main(["evaluate", "--run-dir", str(other), "--split", "test"]) == 0
    assert json.loads(capsys.readouterr().out)["test"]["tokens"] > 0


def test_one_text_file_has_a_test_split_of_its_own_and_tinyshakespeare_says_it_has_none(tmp_path):
    text = tmp_path / "book.txt"
    text.write_text("".join(chr(ord("a") + i % 26) for i in range(2000)))
    corpus = load_corpus(str(text))
    assert (len(corpus.train), len(corpus.validation), len(corpus.test)) == (1800, 100, 100)
    np.testing.assert_array_equal(np.concatenate([corpus.train, corpus.validation, corpus.test]),
                                  corpus.codec.encode(list(text.read_text())))
    shakespeare = load_corpus("tinyshakespeare")
    assert not shakespeare.has_test and len(shakespeare.train) == int(1_115_394 * 0.9)
    with pytest.raises(ValueError, match="no test split"):
        shakespeare.split("test")


def test_command_line_arguments_that_are_not_utf8_are_read_with_replacement(char_run):
    """A real process given raw bytes (sys.argv then holds surrogate escapes): the answer,
    not a traceback; TensorFlow's start-up lines and library warnings stay hidden."""
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "SEQAPPS_VERBOSE")}
    ran = subprocess.run([sys.executable, "-m", "apps.lm", "score", "--run-dir", str(char_run), "--json",
                          b"to be\xff", "to be"], capture_output=True, env=env,
                         cwd=str(pathlib.Path(__file__).resolve().parents[2]), timeout=300)
    assert ran.returncode == 0, ran.stderr.decode(errors="replace")
    results = {r["sentence"]: r for r in json.loads(ran.stdout)}
    assert set(results) == {"to be\ufffd", "to be"}
    assert results["to be\ufffd"]["num_unknown"] == 1 and results["to be"]["num_unknown"] == 0
    assert results["to be\ufffd"]["tokens"][:5] == results["to be"]["tokens"][:5]
    stderr = ran.stderr.decode(errors="replace")
    assert "cuInit" not in stderr and "oneDNN" not in stderr and "Warning" not in stderr, stderr
    # the in-process path takes the same surrogate-escaped strings
    [result] = commands.generate(["to be\udcff"], max_tokens=3, temperature=0, run_dir=char_run)
    assert result["prompt"] == "to be\ufffd" and result["num_unknown"] == 1 and result["num_tokens"] == 3
