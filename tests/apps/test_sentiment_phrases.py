"""The sentiment app on treebank data (phrases), its reports, and the data options of #17."""

import json
import random
import subprocess
import sys

import numpy as np
import pytest

from apps.sentiment import run
from apps.sentiment.commands import classification_report, format_report, has_negation

POSITIVE = ["good", "great", "superb", "lovely"]
NEGATIVE = ["bad", "awful", "dull", "boring"]
FILLER = ["the", "film", "was", "really", "quite", "a", "story"]
TINY = ["--units", "16", "--embedding-dim", "16", "--batch-size", "32", "--dropout", "0.1",
        "--learning-rate", "0.01", "--quiet", "--seed", "1", "--embedding-dropout", "0",
        "--lr-decay", "0.5", "--ensemble", "1", "--vocab", "word"]


def toy_tree(rng, label):
    """A right-branching tree over 4 filler words and one sentiment word: the nodes that
    hold the sentiment word carry the sentence's label (0 or 4), the others 2."""
    word = rng.choice(POSITIVE if label == 4 else NEGATIVE)
    words = rng.sample(FILLER, 4) + [word]
    rng.shuffle(words)

    def build(ws):
        node_label = label if word in ws else 2
        if len(ws) == 1:
            return f"({node_label} {ws[0]})"
        return f"({node_label} {build(ws[:1])} {build(ws[1:])})"

    return build(words)


def write_tree_folder(folder, sizes=(120, 20, 20), seed=0):
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    for name, n in zip(("train", "dev", "test"), sizes):
        trees = [toy_tree(rng, 4 if i % 2 else 0) for i in range(n)]
        (folder / f"{name}.txt").write_text("\n".join(trees) + "\n")
    return folder


@pytest.fixture(scope="module")
def phrase_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("phrases")
    data = write_tree_folder(root / "trees")
    run_dir = root / "run"
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = run(["train", "--data", str(data), "--run-dir", str(run_dir), "--epochs", "3",
                      "--patience", "0", *TINY])
    report["caught_warnings"] = [f"{w.category.__name__}: {w.message}" for w in caught
                                 if issubclass(w.category, UserWarning)]
    return root, data, run_dir, report


def test_training_leaks_no_library_user_warning(phrase_run):
    # e.g. Keras' "`shuffle=True` was passed, but will be ignored" when fit gets a dataset
    assert phrase_run[3]["caught_warnings"] == []


def test_a_tree_folder_trains_on_its_phrases_and_tests_on_sentences(phrase_run):
    _, data, run_dir, report = phrase_run
    config = json.loads((run_dir / "config.json").read_text())
    assert config["lr_decay"] == 0.5 and config["embedding_dropout"] == 0
    # five classes; the test split is the 20 test sentences (not their phrases)
    assert report["test"]["examples"] == 20
    assert report["test"]["labels"] == ["very negative", "negative", "neutral", "positive", "very positive"]
    assert report["test"]["accuracy"] >= 0.8, report["test"]
    # macro-F1 averages over the two classes the test sentences hold
    assert report["test"]["macro_f1_classes"] == ["very negative", "very positive"]


def test_evaluate_on_a_tree_file_reports_sentences_and_all_phrases(phrase_run, capsys):
    _, data, run_dir, _ = phrase_run
    report = run(["evaluate", "--run-dir", str(run_dir), "--data", str(data / "test.txt")])
    # 20 trees of 5 words: 20 roots, 9 nodes each
    assert report["sentences"]["examples"] == 20 and report["phrases"]["examples"] == 180
    assert report["sentences"]["accuracy"] == report["accuracy"]
    out = capsys.readouterr().out
    assert "sentences (roots): accuracy" in out and "all phrases (every node): accuracy" in out


def test_a_phrase_trained_model_exports_and_predicts(phrase_run, tmp_path):
    _, _, run_dir, _ = phrase_run
    out = run(["export", "--run-dir", str(run_dir), "--out", str(tmp_path / "export")])
    served = run(["predict", "--export", str(out), "--json", "the film was superb", "a dull story"])
    local = run(["predict", "--run-dir", str(run_dir), "--json", "the film was superb", "a dull story"])
    assert [r["label"] for r in served] == [r["label"] for r in local] == ["very positive", "very negative"]
    np.testing.assert_allclose([r["probabilities"] for r in served], [r["probabilities"] for r in local], atol=1e-5)


def test_binary_models_score_tree_files_without_the_neutral_nodes(tmp_path):
    # an SST-2-style model (labels negative/positive) on a tree file: 0-1 -> 0, 3-4 -> 1, 2 dropped
    data = write_tree_folder(tmp_path / "trees", sizes=(40, 10, 10))
    lines = []
    rng = random.Random(3)
    for i in range(60):
        label = i % 2
        words = rng.sample(FILLER, 3) + [rng.choice(POSITIVE if label else NEGATIVE)]
        lines.append(f"{label} {' '.join(words)}")
    (tmp_path / "toy.train").write_text("\n".join(lines[:40]) + "\n")
    (tmp_path / "toy.dev").write_text("\n".join(lines[40:50]) + "\n")
    (tmp_path / "toy.test").write_text("\n".join(lines[50:]) + "\n")
    sentences = tmp_path / "sentences"
    sentences.mkdir()
    for split in ("train", "dev", "test"):
        (tmp_path / f"toy.{split}").rename(sentences / f"toy.{split}")
    run_dir = tmp_path / "run"
    run(["train", "--data", str(sentences), "--run-dir", str(run_dir), "--epochs", "1", *TINY])
    report = run(["evaluate", "--run-dir", str(run_dir), "--data", str(data / "test.txt")])
    # 10 trees of 5 words: the 10 roots; non-neutral nodes are those above the sentiment word
    text = (data / "test.txt").read_text()
    non_neutral = text.count("(0 ") + text.count("(4 ")
    assert report["sentences"]["examples"] == 10
    assert report["phrases"]["examples"] == non_neutral


def test_confusion_matrix_columns_stay_apart_and_macro_f1_uses_present_classes():
    y_true = [0] * 55445 + [1] * 3
    y_pred = [0] * 55440 + [1] * 5 + [1] * 3
    report = classification_report(y_true, y_pred, ["0", "1", "2"])
    assert report["confusion_matrix"] == [[55440, 5, 0], [0, 3, 0], [0, 0, 0]]
    # F1 of class 0: P = 1, R = 55440/55445; class 1: P = 3/8, R = 1; class 2 absent
    f1_0 = 2 * (55440 / 55445) / (1 + 55440 / 55445)
    f1_1 = 2 * (3 / 8) / (3 / 8 + 1)
    assert report["macro_f1"] == pytest.approx((f1_0 + f1_1) / 2)
    assert report["macro_f1_classes"] == ["0", "1"]
    text = format_report(report)
    assert "over the classes present (0, 1)" in text
    rows = text.splitlines()[-3:]
    assert rows[0].split() == ["0", "55440", "5", "0"]  # no counts run together
    assert len({len(r) for r in rows}) == 1


def test_negation_finder():
    assert has_negation("it does n't work") and has_negation("It doesn't work")
    assert has_negation("never again") and has_negation("nothing to see")
    assert not has_negation("a notable film , nobody 's fool") and not has_negation("nono")


def test_a_three_line_file_names_the_data_and_the_folds_option(tmp_path):
    data = tmp_path / "three.txt"
    data.write_text("1 good film\n0 bad film\n1 great film\n")
    with pytest.raises(SystemExit):
        run(["train", "--data", str(data), "--run-dir", str(tmp_path / "run"), *TINY])
    proc = subprocess.run(
        [sys.executable, "-m", "apps.sentiment", "train", "--data", str(data), "--run-dir",
         str(tmp_path / "run")], capture_output=True, text=True,
    )
    assert proc.returncode != 0
    assert str(data) in proc.stderr and "--folds" in proc.stderr, proc.stderr
    # nothing was written: the corrected command is not refused as "other settings"
    assert not (tmp_path / "run" / "config.json").exists()


def test_a_failed_train_writes_nothing_and_the_corrected_command_runs(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("1 good film\nnot a label line\n")
    with pytest.raises(SystemExit):
        run(["train", "--data", str(bad), "--run-dir", str(tmp_path / "run"), *TINY])
    assert not (tmp_path / "run").exists() or not any((tmp_path / "run").iterdir())
    good = write_tree_folder(tmp_path / "trees", sizes=(20, 6, 6))
    report = run(["train", "--data", str(good), "--run-dir", str(tmp_path / "run"), "--epochs", "1", *TINY])
    assert report["epochs_finished"] == 1


def test_any_pos_neg_pair_in_a_folder_is_read_like_rt_polarity(tmp_path):
    from seqapps.data import DataError, load_sentiment

    folder = tmp_path / "reviews"
    folder.mkdir()
    (folder / "mine.pos").write_text("".join(f"good film {i}\n" for i in range(20)))
    (folder / "mine.neg").write_text("".join(f"bad film {i}\n" for i in range(20)))
    data = load_sentiment(folder, fold=1, num_folds=4)
    assert data.label_names == ["negative", "positive"]
    assert len(data.test) == 10 and len(data.train) + len(data.validation) == 30
    assert {y for t, y in data.test if t.startswith("good")} == {1}
    (folder / "mine.neg").unlink()
    with pytest.raises(DataError, match=r"mine.pos: no mine.neg beside it"):
        load_sentiment(folder)


def test_an_ensemble_serves_the_mean_of_its_members(tmp_path):
    import keras
    import tensorflow as tf

    from apps.sentiment.commands import load_pipeline

    data = write_tree_folder(tmp_path / "trees", sizes=(40, 10, 10))
    run_dir = tmp_path / "run"
    report = run(["train", "--data", str(data), "--run-dir", str(run_dir), "--epochs", "1",
                  *TINY, "--ensemble", "2"])
    assert report["epochs_finished"] == 2  # one epoch each
    members = [keras.models.load_model(run_dir / "best.keras"),
               keras.models.load_model(run_dir / "members" / "1" / "best.keras")]
    pipeline, _ = load_pipeline(run_dir)
    texts = tf.constant(["the film was superb", "a dull story", ""])
    ids = pipeline.encode(texts)
    expected = (members[0](ids).numpy() + members[1](ids).numpy()) / 2
    assert np.abs(members[0](ids).numpy() - members[1](ids).numpy()).max() > 1e-4  # two seeds
    np.testing.assert_allclose(pipeline.probabilities(texts).numpy(), expected, atol=1e-6)


def test_encoding_skip_bad_lines_and_folds_reach_the_data(tmp_path, capsys):
    from apps.sentiment.__main__ import parser
    from apps.sentiment.commands import load_data, model_config, resolve_defaults
    from seqapps.data import DataError
    from seqapps.data.readers import skipping_bad_lines

    path = tmp_path / "reviews.txt"
    lines = [f"{i % 2} caf\u00e9 \u2019film\u2019 {i}" for i in range(40)] + ["oops"]
    path.write_bytes(("\n".join(lines) + "\n").encode("cp1252"))

    def data_of(*options):
        args = parser().parse_args(["train", "--data", str(path), "--run-dir", str(tmp_path / "r"), *options])
        return load_data(model_config(resolve_defaults(args)))

    with pytest.raises(DataError, match="--encoding cp1252"):
        data_of()
    with pytest.raises(DataError, match="reviews.txt, line 41"):
        data_of("--encoding", "cp1252", "--folds", "4")
    with skipping_bad_lines():  # what run_verb does with --skip-bad-lines
        data = data_of("--encoding", "cp1252", "--folds", "4", "--skip-bad-lines")
    assert len(data.test) == 10 and "caf\u00e9 \u2019film\u2019" in data.test[0][0]
    assert "reviews.txt: skipped 1 malformed line (41)" in capsys.readouterr().err
