"""Reading the user's data (issue #17): --encoding, --skip-bad-lines, a failed train leaves no
run behind, no library warnings leak from our own calls, --verbose everywhere.

Tiny runs (16 units, one epoch, 44 pairs) on folders of their own.
"""

import json
import re
import warnings

import pytest

from apps.translation.__main__ import parser, run
from seqapps.data import load_vocabulary
from seqapps.training import CONFIG

from tests.apps.test_translation import PLACES, SUBJECTS, VERBS

FAST = ["--vocab", "word", "--units", "16", "--embedding-dim", "16", "--batch-size", "8", "--min-count", "1",
        "--epochs", "1", "--no-evaluate", "--val-bleu-sentences", "4", "--seed", "1",
        "--attention", "bahdanau", "--beam", "1"]


def sentence_pairs():
    return [(f"{s} {v} {p} .", f"{ts} {tv} {tp} .")
            for s, ts in SUBJECTS for v, tv in VERBS for p, tp in PLACES]


def write_folder(folder, encoding="utf-8"):
    pairs = sentence_pairs()
    splits = {"train": pairs[:44], "val": pairs[44:52], "test": pairs[52:60]}
    folder.mkdir(parents=True, exist_ok=True)
    for split, chunk in splits.items():
        for side, lang in enumerate(("en", "de")):
            (folder / f"{split}.{lang}").write_bytes("".join(p[side] + "\n" for p in chunk).encode(encoding))
    return folder


def test_latin1_data_fails_cleanly_then_trains_with_encoding(tmp_path, capsys):
    data = write_folder(tmp_path / "latin1", encoding="latin-1")  # "lächelt", "draußen" in Latin-1
    run_dir = tmp_path / "run"
    argv = ["train", "--data", str(data), "--run-dir", str(run_dir), "--quiet", *FAST]
    with pytest.raises(SystemExit, match=r"latin1/train\.de.*cannot decode"):
        run(argv)
    # The data is read before the run folder is prepared: nothing was written, so the
    # corrected command is not refused as "a run with other settings".
    assert not (run_dir / CONFIG).exists()
    report = run(argv + ["--encoding", "latin-1"])
    assert report["epochs_finished"] == 1
    config = json.loads((run_dir / CONFIG).read_text())
    assert config["encoding"] == "latin-1"
    target_vocab = load_vocabulary(run_dir / "vocab.target.txt")
    assert "lächelt" in target_vocab and "draußen" in target_vocab
    # evaluate reads the data (and its references) as the run did.
    greedy = run(["evaluate", "--run-dir", str(run_dir), "--beam", "1"])["greedy"]
    assert greedy["files"]["raw"] == str(data / "test.de") and greedy["sentences"] == 8
    assert "references (raw):     " + str(data / "test.de") in capsys.readouterr().out


def test_skip_bad_lines_trains_past_a_malformed_line_and_nothing_warns(tmp_path, capsys):
    pairs = sentence_pairs()
    lines = [f"{en}\t{de}\tCC-BY" for en, de in pairs]
    lines.insert(7, "a line without any tab")
    tsv = tmp_path / "pairs.tsv"
    tsv.write_text("\n".join(lines) + "\n", encoding="utf-8")
    run_dir = tmp_path / "run"
    argv = ["train", "--data", str(tsv), "--run-dir", str(run_dir), *FAST]
    with pytest.raises(SystemExit, match=r"pairs\.tsv, line 8"):
        run(argv)
    assert not (run_dir / CONFIG).exists()
    capsys.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        report = run(argv + ["--skip-bad-lines"])
    assert report["epochs_finished"] == 1
    captured = capsys.readouterr()
    assert "pairs.tsv: skipped 1 malformed line (8)" in captured.err
    user_warnings = [f"{w.filename}:{w.lineno}: {w.message}" for w in caught
                     if issubclass(w.category, UserWarning)]
    assert user_warnings == []
    # Not --quiet and not a terminal (pytest captures): one progress line per epoch, no bars.
    lines = captured.out.splitlines()
    assert "\r" not in captured.out
    assert len([line for line in lines if re.match(r"\d+/\d+ - .*loss: ", line)]) == 1
    assert json.loads((run_dir / CONFIG).read_text())["skip_bad_lines"] is True


@pytest.mark.parametrize("verb", ["train", "evaluate", "translate", "tune", "export"])
def test_every_verb_takes_verbose_and_train_and_tune_take_the_data_file_options(verb):
    required = {"train": ["--run-dir", "r"], "evaluate": ["--run-dir", "r"],
                "translate": ["--run-dir", "r"], "tune": ["--run-dir", "r"],
                "export": ["--run-dir", "r", "--out", "o"]}[verb]
    args = parser().parse_args([verb, *required, "--verbose"])
    assert args.verbose is True
    assert parser().parse_args(["--verbose", verb, *required]).verbose is True
    if verb in ("train", "tune"):
        args = parser().parse_args([verb, *required, "--encoding", "cp1252", "--skip-bad-lines"])
        assert (args.encoding, args.skip_bad_lines) == ("cp1252", True)


@pytest.mark.parametrize("extra, monitor, expected", [
    ([], "val_loss", 0.01),  # the default: a slowly creeping loss still halves the rate
    (["--lr-decay-min-delta", "0"], "val_loss", 0.0),
    ([], "val_bleu", 0.0),  # a gain in nats means nothing for BLEU
])
def test_lr_decay_min_delta_reaches_the_decay_and_the_run_config(tmp_path, extra, monitor, expected):
    from apps.translation.commands import run_config, training_callbacks
    from seqapps.training import DecayOnPlateau

    args = parser().parse_args(["train", "--run-dir", str(tmp_path / "r"), "--monitor", monitor, *extra])
    config = run_config(args)
    assert config.get("lr_decay_min_delta", 0.0) == expected  # val_bleu: not recorded, it has no effect
    callbacks = training_callbacks(tmp_path / "r", monitor, 3, config["lr_decay"],
                                   lr_decay_min_delta=config.get("lr_decay_min_delta", 0.0))
    (decay,) = [c for c in callbacks if isinstance(c, DecayOnPlateau)]
    assert decay.min_delta == pytest.approx(expected)


@pytest.mark.parametrize("extra, expected", [([], 1e-5), (["--stop-min-lr", "0"], 0.0)])
def test_stop_min_lr_reaches_the_decay_and_the_run_config(tmp_path, extra, expected):
    from apps.translation.commands import run_config, training_callbacks
    from seqapps.training import DecayOnPlateau

    args = parser().parse_args(["train", "--run-dir", str(tmp_path / "r"), *extra])
    config = run_config(args)
    assert config.get("stop_min_lr", 0.0) == expected
    callbacks = training_callbacks(tmp_path / "r", "val_loss", 3, config["lr_decay"],
                                   stop_min_lr=config.get("stop_min_lr", 0.0))
    (decay,) = [c for c in callbacks if isinstance(c, DecayOnPlateau)]
    assert decay.stop_below == pytest.approx(expected)
