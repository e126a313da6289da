"""End to end: the sentiment app trains, resumes, exports, serves, tunes — on tiny data."""

import json
import pathlib
import random
import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

from apps.sentiment import run
from apps.sentiment.bow import build_bow_model
from apps.sentiment.model import build_model

POSITIVE = ["good", "great", "superb", "lovely", "fine"]
NEGATIVE = ["bad", "awful", "dull", "boring", "poor"]
FILLER = ["the", "film", "was", "really", "quite", "a", "story", "and", "plot"]


def write_toy_data(path, n=240, seed=0):
    """A learnable `label sentence` file: the label is whether a positive word occurs."""
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        label = i % 2
        words = rng.sample(FILLER, 4) + [rng.choice(POSITIVE if label else NEGATIVE)]
        rng.shuffle(words)
        lines.append(f"{label} {' '.join(words)}")
    path.write_text("\n".join(lines) + "\n")
    return path


TINY = ["--units", "16", "--embedding-dim", "16", "--batch-size", "16", "--dropout", "0.1",
        "--learning-rate", "0.01", "--quiet", "--seed", "1"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("sentiment")
    data = write_toy_data(root / "toy.txt")
    run_dir = root / "run"
    report = run(["train", "--data", str(data), "--run-dir", str(run_dir), "--epochs", "4", "--patience", "0", *TINY])
    return root, data, run_dir, report


def history(run_dir):
    import csv

    with open(run_dir / "history.csv") as f:
        return list(csv.DictReader(f))


def test_bag_of_words_ignores_word_order_but_rnn_does_not():
    from seqapps.data import build_word_vectorizer

    # The seeds' example, raw as a user types it: the same words, opposite meanings.
    sentences = ["The food was good, not bad at all.", "The food was bad, not good at all."]
    vectorizer = build_word_vectorizer(["the food was good , not bad at all ."], standardize="treebank")
    ids = tf.cast(vectorizer(tf.constant(sentences)), tf.int32)
    assert 1 not in ids.numpy()  # no [UNK]: "good," and "all." were split like the corpus
    assert sorted(ids[0].numpy()) == sorted(ids[1].numpy()) and list(ids[0]) != list(ids[1])
    bow = build_bow_model(20, 2, embedding_dim=8)
    p = bow(ids, training=False).numpy()
    np.testing.assert_allclose(p[0], p[1], rtol=0, atol=1e-7)
    rnn = build_model(20, 2, cell="lstm", units=8, embedding_dim=8, bidirectional=False, pooling="last")
    # What the classifier sees: the final hidden state differs between the two orders.
    features = keras.Model(rnn.inputs, rnn.get_layer("lstm_0").output)(ids).numpy()
    assert np.abs(features[0] - features[1]).max() > 1e-3, features


def test_training_learns_and_writes_the_run_folder(trained):
    _, _, run_dir, report = trained
    rows = history(run_dir)
    losses = [float(r["loss"]) for r in rows]
    assert len(rows) == 4 and losses[-1] < losses[0]
    assert report["test"]["accuracy"] >= 0.8, report["test"]
    for name in ["config.json", "vocab.txt", "labels.json", "best.keras", "metrics.json", "curves.png"]:
        assert (run_dir / name).exists(), name
    assert any((run_dir / "logs").iterdir())
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert set(metrics["test"]) >= {"accuracy", "macro_f1", "confusion_matrix"}


def test_evaluate_and_predict(trained, capsys):
    _, data, run_dir, report = trained
    again = run(["evaluate", "--run-dir", str(run_dir)])
    assert again["accuracy"] == pytest.approx(report["test"]["accuracy"])
    results = run(["predict", "--run-dir", str(run_dir), "--json", "the film was superb", "the plot was awful"])
    assert [r["label"] for r in results] == ["1", "0"]  # a plain `label text` file names classes by label
    for r in results:
        assert sum(r["probabilities"]) == pytest.approx(1.0, abs=1e-4)


def test_evaluate_on_any_file_scores_every_line(trained, tmp_path, capsys):
    _, _, run_dir, _ = trained
    # raw text (capitals, punctuation attached), one class only: all of it is scored
    lines = [f"1 The film was {w}!" for w in POSITIVE] + ["1 A lovely, fine story."]
    (tmp_path / "mine.txt").write_text("\n".join(lines) + "\n")
    report = run(["evaluate", "--run-dir", str(run_dir), "--data", str(tmp_path / "mine.txt")])
    assert report["examples"] == len(lines) and report["accuracy"] > 0.5
    (tmp_path / "bad.txt").write_text("7 the film\n")
    with pytest.raises(SystemExit, match="bad.txt: label '7' is not one of the model's classes"):
        run(["evaluate", "--run-dir", str(run_dir), "--data", str(tmp_path / "bad.txt")])


def test_export_answers_like_the_model_without_seqapps(trained, tmp_path):
    _, _, run_dir, _ = trained
    out = run(["export", "--run-dir", str(run_dir), "--out", str(tmp_path / "export")])
    assert out == tmp_path / "export" / "1"
    assert (out / "signatures.md").exists() and (out / "metadata.json").exists()
    sentences = ["the film was superb", "the plot was awful", "", "   ", "unknownword " * 3,
                 "word " * 10000, "emoji 😀 story", "\udcff\udcfe broken"]
    in_memory = run(["predict", "--run-dir", str(run_dir), *sentences])
    # A fresh interpreter in which importing seqapps or apps is impossible.
    code = (
        "import sys, json; sys.modules['seqapps'] = None; sys.modules['apps'] = None\n"
        "import tensorflow as tf\n"
        f"f = tf.saved_model.load({str(out)!r}).signatures['serving_default']\n"
        "texts = [s.encode('utf-8', 'surrogateescape') for s in json.loads(sys.argv[1])]\n"
        "r = f(text=tf.constant(texts))\n"
        "print(json.dumps(r['probabilities'].numpy().tolist()))\n"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, json.dumps(sentences)],
        capture_output=True, text=True, cwd="/", check=True,
    )
    served = json.loads(proc.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(served, [r["probabilities"] for r in in_memory], atol=1e-5)


def test_saved_model_cli_runs_the_export(trained, tmp_path):
    _, _, run_dir, _ = trained
    out = run(["export", "--run-dir", str(run_dir), "--out", str(tmp_path / "export")])
    cli = pathlib.Path(sys.executable).parent / "saved_model_cli"
    show = subprocess.run([str(cli), "show", "--dir", str(out), "--all"], capture_output=True, text=True, check=True)
    assert "serving_default" in show.stdout and "probabilities" in show.stdout
    ran = subprocess.run(
        [str(cli), "run", "--dir", str(out), "--tag_set", "serve", "--signature_def", "serving_default",
         "--input_exprs", "text=['the film was superb', '']"],
        capture_output=True, text=True, check=True,
    )
    assert "probabilities" in ran.stdout


def test_interrupted_training_resumes_at_the_next_epoch(tmp_path, monkeypatch):
    import keras

    from seqapps import training

    data = write_toy_data(tmp_path / "toy.txt", n=64)
    run_dir = tmp_path / "run"
    args = ["train", "--data", str(data), "--run-dir", str(run_dir), "--epochs", "4", "--patience", "0", *TINY]

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt

    original = training.standard_callbacks
    monkeypatch.setattr(training, "standard_callbacks", lambda *a, **k: original(*a, **k) + [Interrupt()])
    with pytest.raises(SystemExit, match="resume"):
        run(args)
    assert [r["epoch"] for r in history(run_dir)] == ["0", "1"]
    monkeypatch.setattr(training, "standard_callbacks", original)
    run(args)
    assert [r["epoch"] for r in history(run_dir)] == ["0", "1", "2", "3"]
    # The same command never interrupted: the same dropout and batch order, the same history.
    straight = tmp_path / "straight"
    run([a if a != str(run_dir) else str(straight) for a in args])
    for resumed, uninterrupted in zip(history(run_dir), history(straight)):
        for key in ("loss", "val_loss", "val_accuracy"):
            assert float(resumed[key]) == pytest.approx(float(uninterrupted[key]), rel=1e-4), key


def test_resuming_with_other_settings_is_refused(trained):
    _, data, run_dir, _ = trained
    with pytest.raises(SystemExit, match="other settings"):
        run(["train", "--data", str(data), "--run-dir", str(run_dir), "--units", "64", "--quiet"])


def test_bad_data_path_is_a_clear_error(tmp_path):
    missing = tmp_path / "nope.txt"
    with pytest.raises(SystemExit) as info:
        run(["train", "--data", str(missing), "--run-dir", str(tmp_path / "run"), "--quiet"])
    assert str(missing) in str(info.value)


def test_tuner_runs_two_trials(trained, tmp_path):
    _, data, _, _ = trained
    table = run(["tune", "--data", str(data), "--run-dir", str(tmp_path / "tune"), "--max-trials", "2",
                 "--epochs", "1", "--batch-size", "32", "--quiet", "--no-retrain"])
    assert len(table) == 2
    assert all(row["status"] == "COMPLETED" and row["score"] is not None for row in table)
    assert (tmp_path / "tune" / "results.csv").exists()


def test_tune_retrains_the_best_on_train_and_validation_and_exports(trained, tmp_path):
    _, data, _, _ = trained
    root = tmp_path / "tune"
    table = run(["tune", "--data", str(data), "--run-dir", str(root), "--max-trials", "2",
                 "--epochs", "3", "--patience", "3", "--batch-size", "32", "--units", "8", "--quiet"])
    best_trial = table[0]
    config = json.loads((root / "best" / "config.json").read_text())
    assert config["include_validation"] is True
    for name in ("units", "embedding_dim", "cell", "learning_rate"):
        assert config[name] == best_trial[name], name
    # As many epochs as the best trial needed (the oracle's record of its best epoch);
    # nothing validated (the validation split is training data here).
    trial = json.loads((root / "search" / f"trial_{best_trial['trial_id']}" / "trial.json").read_text())
    rows = history(root / "best")
    assert len(rows) == trial["best_step"] + 1
    assert all(value == "NA" for row in rows for key, value in row.items() if key.startswith("val_"))
    metrics = json.loads((root / "best" / "metrics.json").read_text())
    assert "validation" not in metrics and metrics["test"]["accuracy"] > 0.5
    assert list((root / "export").glob("*/saved_model.pb"))


def test_static_shapes_with_xla_trains(tmp_path):
    """The TPU-ready mode: fixed padded length, no partial batches, an XLA-compiled step."""
    data = write_toy_data(tmp_path / "toy.txt", n=160)
    run_dir = tmp_path / "run"
    report = run(["train", "--data", str(data), "--run-dir", str(run_dir), "--epochs", "2",
                  "--patience", "0", "--static-shapes", "--max-length", "12", "--jit", *TINY])
    rows = history(run_dir)
    assert len(rows) == 2 and float(rows[1]["loss"]) < float(rows[0]["loss"])
    assert report["test"]["accuracy"] > 0.5


@pytest.mark.parametrize("verb", ["train", "evaluate", "predict", "tune", "export"])
def test_every_verb_has_help(verb, capsys):
    with pytest.raises(SystemExit) as info:
        run([verb, "--help"])
    assert info.value.code == 0
    assert "--run-dir" in capsys.readouterr().out


def test_console_script_reads_sentences_from_stdin(trained):
    # The installed `seqapps-sentiment` command (pip install -e .), one sentence per line.
    _, _, run_dir, _ = trained
    script = pathlib.Path(sys.executable).parent / "seqapps-sentiment"
    if not script.exists():
        pytest.skip(f"{script} is not installed (pip install -e .)")
    done = subprocess.run([str(script), "predict", "--run-dir", str(run_dir), "--json"], input="the film was superb\nthe plot was awful\n",
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert [json.loads(line)["label"] for line in done.stdout.splitlines()] == ["1", "0"]
