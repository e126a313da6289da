"""The translation app: the seq2seq machinery learns, decodes, exports and survives bad input.

Synthetic task: reverse a sequence of 1-6 digits ("3 1 4" -> "4 1 3"), learned to >= 95%
exact match by each decoder variant in seconds; then the command line end to end on a few
dozen Multi30k-like pairs.
"""

import csv
import functools
import json
import pathlib
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from apps.translation.__main__ import run
from apps.translation.model import build_model
from apps.translation.text import detokenize_strings, make_vectorizer, tokenize
from apps.translation.translator import Translator
from tests.apps.export_properties import served_answer, serving_process

SOURCE_VOCAB = ["", "[UNK]"] + [str(d) for d in range(10)]
TARGET_VOCAB = ["", "[UNK]", "[start]", "[end]"] + [str(d) for d in range(10)]
MAX_DIGITS = 6
# (units, training steps, batch size, peak learning rate): the bottleneck variant needs
# more. The learning rate decays (cosine) to settle on exact answers.
RECIPES = {"none": (64, 1000, 64, 1e-2), "bahdanau": (32, 300, 32, 1e-2), "luong": (32, 300, 32, 1e-2)}


def digit_sequences(n, seed):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 10, rng.integers(1, MAX_DIGITS + 1)) for _ in range(n)]


def reversal_arrays(sequences):
    """`((source ids, target_in), target_out)`, padded, in the vocabularies above."""
    n = len(sequences)
    source = np.zeros((n, MAX_DIGITS), "int32")
    target_in = np.zeros((n, MAX_DIGITS + 1), "int32")
    target_out = np.zeros((n, MAX_DIGITS + 1), "int32")
    for i, digits in enumerate(sequences):
        k, reversed_ids = len(digits), digits[::-1] + 4
        source[i, :k] = digits + 2
        target_in[i, 0], target_in[i, 1:k + 1] = 2, reversed_ids
        target_out[i, :k], target_out[i, k] = reversed_ids, 3
    return (source, target_in), target_out


def as_text(digits):
    return " ".join(str(d) for d in digits)


@functools.lru_cache(maxsize=None)
def trained(attention):
    """A Translator trained on the reversal task (cached: several tests share it)."""
    units, steps, batch, lr = RECIPES[attention]
    keras.utils.set_random_seed(0)
    inputs, targets = reversal_arrays(digit_sequences(steps * batch, seed=0))
    schedule = keras.optimizers.schedules.CosineDecay(lr, steps, alpha=0.05)
    model = build_model(len(SOURCE_VOCAB), len(TARGET_VOCAB), attention=attention, units=units,
                        embedding_dim=16, dropout=0.0, learning_rate=schedule)
    model.fit(inputs, targets, batch_size=batch, epochs=1, verbose=0, shuffle=False)
    return Translator(model, make_vectorizer(SOURCE_VOCAB), TARGET_VOCAB, beam_width=3)


HELD_OUT = digit_sequences(300, seed=1)


@pytest.mark.parametrize("attention", ["none", "bahdanau", "luong"])
def test_learns_to_reverse_digit_sequences(attention):
    translator = trained(attention)
    sources = [as_text(s) for s in HELD_OUT]
    expected = [as_text(s[::-1]) for s in HELD_OUT]
    for width in (1, 3):
        got = translator.translate(sources, beam_width=width, tokens=True, batch_size=300)
        exact = np.mean([g == e for g, e in zip(got, expected)])
        assert exact >= 0.95, (attention, width, exact)


@pytest.mark.parametrize("attention", ["bahdanau", "luong"])
def test_beam_width_one_is_greedy_on_the_real_model(attention):
    from seqapps.decoding import beam_search, greedy_decode

    translator = trained(attention)
    sources = [as_text(s) for s in HELD_OUT[:50]] + ["7 7 7 7 7 7 7 7 7 7 7 7", "1 x 2", ""]
    ids, lengths, _ = translator.source_ids(tf.constant(sources))

    def initial_state():
        state = translator.model.initial_decoder_state(ids)
        limit = tf.where(lengths > 0, tf.minimum(2 * lengths + 10, 200), 0)
        state.update(steps=tf.zeros_like(limit), limit=limit)
        return state, tf.reduce_max(limit) + 1

    state, max_length = initial_state()
    options = dict(start_token=2, end_token=3, max_length=max_length)
    greedy_tokens, greedy_lengths = greedy_decode(translator.step_fn, state, **options)
    beam_tokens, beam_lengths, _ = beam_search(translator.step_fn, state, beam_width=1, **options)
    np.testing.assert_array_equal(beam_tokens, greedy_tokens)
    np.testing.assert_array_equal(beam_lengths, greedy_lengths)
    # And through the string interface: --beam 1 gives the greedy decoder's words.
    vocab = translator.target_vocabulary
    expected = [" ".join(vocab[t] for t in row[:n]) for row, n in zip(np.asarray(greedy_tokens), np.asarray(greedy_lengths))]
    assert translator.translate(sources, beam_width=1, tokens=True) == expected


@pytest.mark.parametrize("cell", ["gru", "lstm"])
@pytest.mark.parametrize("attention", ["none", "bahdanau", "luong"])
def test_step_by_step_decoder_matches_teacher_forcing(attention, cell):
    """The inference step (cells + attention + output layer) is the training model."""
    keras.utils.set_random_seed(0)
    model = build_model(20, 15, attention=attention, cell=cell, units=16, embedding_dim=8,
                        num_layers=2, dropout=0.0)
    source = np.array([[3, 4, 5, 6, 0, 0], [7, 8, 9, 3, 4, 5]], "int32")
    target_in = np.array([[2, 5, 6, 7], [2, 8, 9, 10]], "int32")
    logits = model((source, target_in)).numpy()
    state = model.initial_decoder_state(tf.constant(source))
    for t in range(target_in.shape[1]):
        step_logits, state, _ = model.decode_step(tf.constant(target_in[:, t]), state)
        np.testing.assert_allclose(step_logits, logits[:, t], atol=1e-5)


@pytest.mark.parametrize("attention", ["bahdanau", "luong"])
def test_attention_weights_sum_to_one_and_are_zero_on_padding(attention):
    model = trained(attention).model
    source = tf.constant([[3, 4, 5, 0, 0, 0], [6, 7, 8, 9, 10, 11], [5, 0, 0, 0, 0, 0]])
    state = model.initial_decoder_state(source)
    tokens = tf.constant([2, 2, 2])
    for _ in range(4):
        logits, state, weights = model.decode_step(tokens, state)
        weights = weights.numpy()
        np.testing.assert_allclose(weights.sum(-1), 1.0, atol=1e-5)
        assert np.all(weights[source.numpy() == 0] == 0.0)
        tokens = tf.argmax(logits, -1, output_type=tf.int32)
    # Reversal is learned by looking at the right place: the first output attends most to
    # the last source digit.
    _, _, matrix = trained(attention).attention_matrix("1 2 3 4 5", ["5", "4", "3", "2", "1"])
    assert matrix.shape == (6, 5)
    assert matrix[0].argmax() == 4


def test_a_sentence_translates_the_same_alone_or_in_a_padded_batch():
    translator = trained("bahdanau")
    sentences = ["1 2", "9 8 7 6 5 4", "3 1 4 1 5", ""]
    together = translator.translate(sentences, tokens=True)
    alone = [translator.translate([s], tokens=True)[0] for s in sentences]
    assert together == alone
    assert together[-1] == ""


def test_bad_inputs_get_a_translation_or_nothing_never_a_crash():
    translator = trained("luong")
    sources = [b"", b"   ", b"hello world", b"1 2 \xff\xfe 3", " ".join(["5"] * 1000).encode(),
               "emoji \U0001f600 4 2".encode(), b"\x00\x01"]
    out = translator.translate_full(sources)
    assert out["translation"][0] == "" and out["translation"][1] == ""
    assert out["length"][0] == 0
    assert out["truncated"] == [False, False, False, False, True, False, False]
    assert out["source_length"][4] == translator.max_source_length
    # Every row is bounded: at most 2 x its source length + 10, and max_output_length.
    for length, source_length in zip(out["length"], out["source_length"]):
        assert length <= min(2 * source_length + 10, translator.max_output_length)
    assert translator.translate([]) == []
    with pytest.raises(ValueError, match="beam width"):
        translator.translate(["1 2"], beam_width=0)


def test_tokenizer_reads_raw_and_tokenized_text_alike():
    raw = ['A man\'s dog, "Rex", runs.', "Zwei Männer stehen am Herd.", "„Hallo“ – sagte er…"]
    tokenized = ["a man &apos;s dog , &quot; rex &quot; , runs .", "zwei männer stehen am herd .",
                 "&quot; hallo &quot; - sagte er ..."]
    assert tokenize(raw) == tokenized
    assert tokenize(tokenized) == tokenized  # Multi30k's tokenized files stay as they are
    assert tokenize(["st. louis , u.s.a. ."]) == ["st. louis , u.s.a. ."]
    assert detokenize_strings(tokenized[:2]) == ['A man\'s dog, "rex", runs.', "Zwei männer stehen am herd."]


def test_export_answers_like_the_translator_without_seqapps(tmp_path):
    translator = trained("bahdanau")
    out = translator.export(tmp_path / "export")
    assert out == tmp_path / "export" / "1"
    sources = ["1 2 3", "9 8 7 6 5 4", "", "hello", "4 " * 500, "\udcff\udcfe 3 4", "5 5 \U0001f600"]
    encoded = [s.encode("utf-8", "surrogateescape") for s in sources]
    expected = translator.translate_full(encoded)
    expected_greedy = translator.translate_full(encoded, beam_width=1)
    code = (
        "import tensorflow as tf\n"
        "m = tf.saved_model.load(sys.argv[1])\n"
        "texts = [s.encode('utf-8', 'surrogateescape') for s in json.loads(sys.argv[2])]\n"
        "result = {}\n"
        "for name in ('serving_default', 'greedy'):\n"
        "    r = m.signatures[name](sources=tf.constant(texts, tf.string))\n"
        "    result[name] = {k: [x.decode() if isinstance(x, bytes) else x for x in v.numpy().tolist()]\n"
        "                    for k, v in r.items()}\n"
        "print(json.dumps(result))\n"
    )
    served = served_answer(serving_process(code, out, json.dumps(sources), cwd=tmp_path))
    for name, reference in (("serving_default", expected), ("greedy", expected_greedy)):
        for key in ("translation", "tokens", "length", "truncated"):
            assert served[name][key] == reference[key], (name, key)
    assert served["serving_default"]["tokens"][0] == "3 2 1"
    metadata = json.loads((out / "metadata.json").read_text())
    assert metadata["beam_width"] == 3


# --- the command line, on a few dozen Multi30k-like pairs --------------------------------

SUBJECTS = [("a man", "ein mann"), ("a woman", "eine frau"), ("a dog", "ein hund"),
            ("a child", "ein kind"), ("two men", "zwei männer")]
VERBS = [("runs", "rennt"), ("sits", "sitzt"), ("smiles", "lächelt"), ("jumps", "springt")]
PLACES = [("outside", "draußen"), ("on the grass", "auf dem gras"), ("at home", "zu hause")]


def write_parallel_folder(folder):
    pairs = [(f"{s} {v} {p} .", f"{ts} {tv} {tp} .")
             for s, ts in SUBJECTS for v, tv in VERBS for p, tp in PLACES]
    rng = np.random.default_rng(0)
    pairs = [pairs[i] for i in rng.permutation(len(pairs))]
    splits = {"train": pairs[:44], "val": pairs[44:52], "test": pairs[52:60]}
    folder.mkdir(parents=True, exist_ok=True)
    for split, chunk in splits.items():
        for side, lang in enumerate(("en", "de")):
            (folder / f"{split}.{lang}").write_text("".join(p[side] + "\n" for p in chunk))
    return folder


TINY = ["--vocab", "word", "--units", "16", "--embedding-dim", "16", "--batch-size", "8", "--min-count", "1",
        "--learning-rate", "0.01", "--val-bleu-sentences", "8", "--quiet", "--seed", "1",
        "--attention", "bahdanau", "--beam", "2"]


def history(run_dir):
    with open(run_dir / "history.csv") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("translation")
    data = write_parallel_folder(root / "data")
    run_dir = root / "run"
    report = run(["train", "--data", str(data), "--run-dir", str(run_dir), "--epochs", "1", *TINY])
    return root, data, run_dir, report


def test_train_writes_the_run_folder_and_extends_a_finished_run(cli_run):
    root, data, run_dir, report = cli_run
    for name in ("config.json", "vocab.source.txt", "vocab.target.txt", "best.keras",
                 "history.csv", "metrics.json", "curves.png", "test.greedy.txt", "test.beam2.txt"):
        assert (run_dir / name).exists(), name
    assert [r["epoch"] for r in history(run_dir)] == ["0"]
    assert "val_bleu" in history(run_dir)[0]
    test = report["test"]
    assert set(test) == {"greedy", "beam2"}
    for scores in test.values():
        assert {"bleu_tok_lc", "bleu_detok", "chrf", "by_source_length"} <= set(scores)
        assert scores["bleu_detok_signature"].startswith("nrefs:1|case:mixed")
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["epochs_finished"] == 1 and "test" in metrics
    # A finished run trained further continues at the next epoch, from its own weights.
    run(["train", "--data", str(data), "--run-dir", str(run_dir), "--epochs", "3", *TINY])
    assert [r["epoch"] for r in history(run_dir)] == ["0", "1", "2"]


def test_interrupted_training_resumes_at_the_next_epoch(tmp_path, monkeypatch):
    from seqapps import training

    data = write_parallel_folder(tmp_path / "data")
    run_dir = tmp_path / "run"
    args = ["train", "--data", str(data), "--run-dir", str(run_dir), "--epochs", "3",
            "--no-evaluate", *TINY]

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 1:
                raise KeyboardInterrupt

    original = training.standard_callbacks
    monkeypatch.setattr(training, "standard_callbacks", lambda *a, **k: original(*a, **k) + [Interrupt()])
    with pytest.raises(SystemExit, match="resume"):
        run(args)
    assert [r["epoch"] for r in history(run_dir)] == ["0"]
    monkeypatch.setattr(training, "standard_callbacks", original)
    run(args)
    assert [r["epoch"] for r in history(run_dir)] == ["0", "1", "2"]
    # The same command never interrupted: the same dropout and batch order, the same history.
    straight = tmp_path / "straight"
    run([a if a != str(run_dir) else str(straight) for a in args])
    for resumed, uninterrupted in zip(history(run_dir), history(straight)):
        for key in ("loss", "val_loss"):
            assert float(resumed[key]) == pytest.approx(float(uninterrupted[key]), rel=1e-4), key


def test_translate_evaluate_export_from_the_command_line(cli_run, capsys):
    root, _, run_dir, _ = cli_run
    plot = root / "attention.png"
    results = run(["translate", "--run-dir", str(run_dir), "--beam", "2", "--plot-attention", str(plot),
                   "A man runs outside.", "", "zebra unicorn"])
    assert len(results) == 3 and results[1]["translation"] == ""
    assert plot.stat().st_size > 0
    reports = run(["evaluate", "--run-dir", str(run_dir), "--beam", "1"])
    assert set(reports) == {"greedy"}
    out = run(["export", "--run-dir", str(run_dir), "--out", str(root / "export"), "--beam", "2"])
    capsys.readouterr()
    served = run(["translate", "--export", str(root / "export"), "--json", "A man runs outside.", ""])
    assert served[0]["translation"] == results[0]["translation"]
    assert served[1]["translation"] == ""
    assert json.loads(capsys.readouterr().out.splitlines()[0])["source"] == "A man runs outside."
    assert (out / "signatures.md").exists()


def test_saved_model_cli_runs_the_export(cli_run):
    root, _, run_dir, _ = cli_run
    out = run(["export", "--run-dir", str(run_dir), "--out", str(root / "export_cli")])
    cli = pathlib.Path(sys.executable).parent / "saved_model_cli"
    ran = subprocess.run(
        [str(cli), "run", "--dir", str(out), "--tag_set", "serve", "--signature_def", "serving_default",
         "--input_exprs", "sources=['a dog sits at home .', '']"],
        capture_output=True, text=True, check=True)
    assert "translation" in ran.stdout


def test_clear_errors(cli_run, tmp_path):
    _, data, run_dir, _ = cli_run
    with pytest.raises(SystemExit, match="other settings"):
        run(["train", "--data", str(data), "--run-dir", str(run_dir), *TINY[2:], "--units", "32"])
    missing = tmp_path / "nope"
    with pytest.raises(SystemExit, match="nope"):
        run(["train", "--data", str(missing), "--run-dir", str(tmp_path / "r1"), *TINY])
    (tmp_path / "a.en").write_text("one\ntwo\n")
    (tmp_path / "a.de").write_text("eins\n")
    with pytest.raises(SystemExit, match="line-aligned"):
        run(["train", "--data", f"{tmp_path / 'a.en'},{tmp_path / 'a.de'}",
             "--run-dir", str(tmp_path / "r2"), *TINY])
    with pytest.raises(SystemExit, match="not a run folder"):
        run(["evaluate", "--run-dir", str(tmp_path)])
    with pytest.raises(SystemExit, match="val-bleu-sentences"):
        run(["train", "--data", str(data), "--run-dir", str(tmp_path / "r3"), *TINY,
             "--monitor", "val_bleu", "--val-bleu-sentences", "0"])
    none_dir = tmp_path / "none"
    run(["train", "--data", str(data), "--run-dir", str(none_dir), "--epochs", "1", "--no-evaluate",
         "--val-bleu-sentences", "0", "--monitor", "val_loss", *TINY[:8], "--quiet",
         "--attention", "none"])
    with pytest.raises(SystemExit, match="no attention"):
        run(["translate", "--run-dir", str(none_dir), "--plot-attention", str(tmp_path / "x.png"), "a dog"])


@pytest.mark.parametrize("verb", ["train", "evaluate", "translate", "tune", "export"])
def test_every_verb_has_help(verb, capsys):
    with pytest.raises(SystemExit) as info:
        run([verb, "--help"])
    assert info.value.code == 0
    assert "--" in capsys.readouterr().out


def test_tuner_runs_two_trials_then_retrains_on_train_and_validation(cli_run, tmp_path):
    _, data, _, _ = cli_run
    root = tmp_path / "tune"
    table = run(["tune", "--data", str(data), "--run-dir", str(root), "--max-trials", "2",
                 "--epochs", "1", "--batch-size", "16", "--min-count", "1", "--quiet"])
    assert len(table) == 2
    assert all(row["status"] == "COMPLETED" and row["score"] is not None for row in table)
    assert (root / "results.csv").exists()
    config = json.loads((root / "best" / "config.json").read_text())
    assert config["include_validation"] is True
    assert config["attention"] == table[0]["attention"] and config["units"] == table[0]["units"]
    assert len(history(root / "best")) == 1  # the best trial's epoch count
    assert list((root / "export").glob("*/saved_model.pb"))
