"""Honest scores (issue #16): the references are the test set's own files, exactly as given.

Each test builds a small folder of its own. Evaluation runs through the command line with
the translator replaced by a stub whose outputs are known, so the reported scores can be
checked against sacrebleu run here directly on the files (an independent reference), and a
wrong reference file, a re-tokenized reference or a bundled set used in place of the
user's shows up as a different number.
"""

import gzip
import json
import pathlib

import pytest
import sacrebleu
from sacrebleu.metrics import BLEU, CHRF

from apps.translation import commands
from apps.translation.__main__ import run
from seqapps.data import load_translation
from seqapps.training import CONFIG

# Raw cased sentences and their Moses-style tokenized lowercased forms, in the tokenized
# form a user's files could have that our tokenizer would change: unescaped double quotes
# ('"' where ours writes &quot;) and "e-mail" (ours keeps it; another tokenizer splits it).
RAW_EN = ['A man reads an e-mail.', 'Two dogs play "fetch" outside.', "The child's ball is red.",
          "A woman rides a bike.", "People walk on the beach."]
RAW_DE = ["Ein Mann liest eine E-Mail.", 'Zwei Hunde spielen draußen "Apportieren".',
          "Der Ball des Kindes ist rot.", "Eine Frau fährt Fahrrad.", "Leute gehen am Strand."]
TOK_EN = ["a man reads an e @-@ mail .", 'two dogs play " fetch " outside .',
          "the child &apos;s ball is red .", "a woman rides a bike .", "people walk on the beach ."]
TOK_DE = ["ein mann liest eine e @-@ mail .", 'zwei hunde spielen draußen " apportieren " .',
          "der ball des kindes ist rot .", "eine frau fährt fahrrad .", "leute gehen am strand ."]


def write(path, lines, gz=False):
    path.parent.mkdir(parents=True, exist_ok=True)
    data = "".join(line + "\n" for line in lines).encode("utf-8")
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def multi30k_style(folder, *, raw=True, tok=True, langs=("en", "de"), tests=("test_2016_flickr",)):
    """`folder/raw/*.{en,de}` and `folder/tok/*.lc.norm.tok.{en,de}`; the test sets are
    rotations of the sentences, so each one has its own references."""
    forms = {"en": (RAW_EN, TOK_EN), langs[1]: (RAW_DE, TOK_DE)}
    for split in ("train", "val", *tests):
        shift = 0 if split in ("train", "val") else 1 + tests.index(split)
        for lang in langs:
            raw_lines, tok_lines = forms[lang]
            raw_lines, tok_lines = raw_lines[shift:] + raw_lines[:shift], tok_lines[shift:] + tok_lines[:shift]
            if raw:
                write(folder / "raw" / f"{split}.{lang}.gz", raw_lines, gz=True)
            if tok:
                write(folder / "tok" / f"{split}.lc.norm.tok.{lang}.gz", tok_lines, gz=True)
    return folder


def read_lines(path):
    data = path.read_bytes()
    if path.suffix == ".gz":
        data = gzip.decompress(data)
    return data.decode("utf-8").rstrip("\n").split("\n")


class StubTranslator:
    """Known outputs: the German reference of each source with its last word dropped (the
    raw sentence as `translation`, the tokenized one as `tokens`), so BLEU is neither 0 nor
    100 and depends on which references it is scored against."""

    beam_width = 2

    def __init__(self):
        by_source = {}
        for sources in (RAW_EN, TOK_EN):
            for source, raw, tok in zip(sources, RAW_DE, TOK_DE):
                by_source[source] = (" ".join(raw.split()[:-1]), " ".join(tok.split()[:-2] + ["."]))
        self.by_source = by_source

    def function(self, *args):
        return None

    def translate_full(self, sources, *, beam_width=None, length_penalty=None, batch_size=64):
        out = [self.by_source[s] for s in sources]
        return {"translation": [t for t, _ in out], "tokens": [k for _, k in out],
                "length": [len(k.split()) for _, k in out],
                "source_length": [len(s.split()) for s in sources],
                "truncated": [False] * len(sources)}


@pytest.fixture
def stub_run(tmp_path, monkeypatch):
    """A run folder whose config points at `data`, evaluated with `StubTranslator`."""

    def make(data, pair="en-de", raw=False):
        run_dir = tmp_path / f"run-{pair}-{raw}"
        run_dir.mkdir()
        config = {"pair": pair, "data": str(data), "raw": raw, "max_train": None, "seed": 0,
                  "attention": "bahdanau"}
        (run_dir / CONFIG).write_text(json.dumps(config))
        monkeypatch.setattr(commands, "load_run", lambda *a, **k: (StubTranslator(), config))
        return run_dir

    return make


def sacrebleu_scores(hypotheses, references):
    return {"bleu": round(sacrebleu.corpus_bleu(hypotheses, [references]).score, 2),
            "chrf": round(CHRF().corpus_score(hypotheses, [references]).score, 2),
            "bleu_lc": round(BLEU(lowercase=True).corpus_score(hypotheses, [references]).score, 2)}


def tokens_bleu(hypotheses, references):
    return round(BLEU(tokenize="none", lowercase=True, force=True)
                 .corpus_score(hypotheses, [references]).score, 2)


def outputs(run_dir, name):
    return read_lines(run_dir / f"{name}.greedy.txt")


def test_a_tokenized_folder_is_scored_against_its_own_files_never_retokenized(tmp_path, stub_run, capsys):
    folder = multi30k_style(tmp_path / "corpus")
    run_dir = stub_run(folder)
    reports = run(["evaluate", "--run-dir", str(run_dir), "--beam", "1"])
    greedy = reports["greedy"]
    tok_refs = read_lines(folder / "tok" / "test_2016_flickr.lc.norm.tok.de.gz")
    raw_refs = read_lines(folder / "raw" / "test_2016_flickr.de.gz")
    assert tok_refs[0] == 'zwei hunde spielen draußen " apportieren " .'  # as written, unescaped
    hypotheses = outputs(run_dir, "test")
    expected = sacrebleu_scores(hypotheses, raw_refs)
    assert greedy["bleu_detok"] == expected["bleu"] and greedy["chrf"] == expected["chrf"]
    assert greedy["bleu_detok_lc"] == expected["bleu_lc"]
    tokens = StubTranslator().translate_full([s for s in read_lines(folder / "tok" / "test_2016_flickr.lc.norm.tok.en.gz")])["tokens"]
    assert greedy["bleu_tok_lc"] == tokens_bleu(tokens, tok_refs)
    # Our tokenizer would have turned the references' '"' into '&quot;': a different score.
    assert greedy["bleu_tok_lc"] != tokens_bleu(tokens, commands_tokenize(tok_refs))
    assert 0 < greedy["bleu_tok_lc"] < 100 and 0 < greedy["bleu_detok"] < 100
    assert greedy["bleu_detok_signature"].startswith("nrefs:1|case:mixed|eff:no|tok:13a")
    assert "tok:none" in greedy["bleu_tok_lc_signature"] and "case:lc" in greedy["bleu_tok_lc_signature"]
    assert greedy["files"]["tokenized"].endswith("tok/test_2016_flickr.lc.norm.tok.de.gz")
    assert greedy["files"]["raw"].endswith("raw/test_2016_flickr.de.gz")
    printed = capsys.readouterr().out
    assert "references (raw):     " + str(folder / "raw" / "test_2016_flickr.de.gz") in printed
    assert "references (tokens):  " + str(folder / "tok" / "test_2016_flickr.lc.norm.tok.de.gz") in printed
    assert "sacreBLEU: nrefs:1|case:mixed" in printed


def commands_tokenize(lines):
    from apps.translation.text import tokenize

    return tokenize(lines)


def test_raw_only_references_use_sacrebleus_tokenizer_and_tokens_only_give_no_sacrebleu(tmp_path, stub_run):
    raw_only = multi30k_style(tmp_path / "raw_only", tok=False)
    reports = run(["evaluate", "--run-dir", str(stub_run(raw_only, raw=True)), "--beam", "1"])
    greedy = reports["greedy"]
    raw_refs = read_lines(raw_only / "raw" / "test_2016_flickr.de.gz")
    hypotheses = StubTranslator().translate_full(read_lines(raw_only / "raw" / "test_2016_flickr.en.gz"))["translation"]
    expected = sacrebleu_scores(hypotheses, raw_refs)
    assert greedy["bleu_detok"] == expected["bleu"]
    assert greedy["bleu_tok_lc"] == expected["bleu_lc"]  # sacrebleu's 13a, lowercased
    assert "tok:13a" in greedy["bleu_tok_lc_signature"] and "case:lc" in greedy["bleu_tok_lc_signature"]
    assert greedy["files"]["tokenized"] is None

    tok_only = multi30k_style(tmp_path / "tok_only", raw=False)
    greedy = run(["evaluate", "--run-dir", str(stub_run(tok_only)), "--beam", "1"])["greedy"]
    assert greedy["bleu_detok"] is None and greedy["chrf"] is None  # nothing raw to compare with
    tokens = StubTranslator().translate_full(read_lines(tok_only / "tok" / "test_2016_flickr.lc.norm.tok.en.gz"))["tokens"]
    assert greedy["bleu_tok_lc"] == tokens_bleu(tokens, read_lines(tok_only / "tok" / "test_2016_flickr.lc.norm.tok.de.gz"))


def test_a_folder_named_multi30k_is_the_users_not_the_bundled_set(tmp_path, stub_run):
    # Another language pair, which the bundled set lacks, in a folder named like it.
    folder = multi30k_style(tmp_path / "multi30k", langs=("en", "fr"))
    data = load_translation("en-fr", data=folder)
    assert not data.bundled and load_translation("en-de").bundled
    greedy = run(["evaluate", "--run-dir", str(stub_run(folder, pair="en-fr")), "--beam", "1"])["greedy"]
    raw_refs = read_lines(folder / "raw" / "test_2016_flickr.fr.gz")
    assert greedy["bleu_detok"] == sacrebleu_scores(outputs(tmp_path / "run-en-fr-False", "test"), raw_refs)["bleu"]
    assert greedy["files"]["raw"] == str(folder / "raw" / "test_2016_flickr.fr.gz")
    # And en-de in a folder named multi30k: its own test set, not the bundled test 2016.
    de = multi30k_style(tmp_path / "other" / "multi30k")
    greedy = run(["evaluate", "--run-dir", str(stub_run(de)), "--beam", "1"])["greedy"]
    assert greedy["sentences"] == 5 and str(tmp_path / "other" / "multi30k") in greedy["files"]["raw"]


def test_evaluate_takes_any_test_set_and_says_which_files_it_scored(tmp_path, stub_run, capsys):
    folder = multi30k_style(tmp_path / "corpus", tests=("test_2016_flickr", "test_2017_flickr"))
    run_dir = stub_run(folder)
    by_default = run(["evaluate", "--run-dir", str(run_dir), "--beam", "1"])["greedy"]
    named = run(["evaluate", "--run-dir", str(run_dir), "--beam", "1", "--test", "test_2017_flickr"])["greedy"]
    raw_2017 = read_lines(folder / "raw" / "test_2017_flickr.de.gz")
    assert named["files"]["raw"] == str(folder / "raw" / "test_2017_flickr.de.gz")
    assert named["files"]["tokenized"] == str(folder / "tok" / "test_2017_flickr.lc.norm.tok.de.gz")
    assert named["bleu_detok"] == sacrebleu_scores(outputs(run_dir, "test_2017_flickr"), raw_2017)["bleu"]
    assert by_default["files"]["raw"].endswith("test_2016_flickr.de.gz")
    assert "test set test_2017_flickr (5 sentences)" in capsys.readouterr().out
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert {"evaluate_test", "evaluate_test_2017_flickr"} <= set(metrics)

    # Two files anywhere: a raw target is scored by sacreBLEU, a tokenized one as tokens.
    src = write(tmp_path / "extra" / "mine.en", RAW_EN[:3])
    ref = write(tmp_path / "extra" / "mine.de", RAW_DE[:3])
    pair = run(["evaluate", "--run-dir", str(run_dir), "--beam", "1", "--test", f"{src},{ref}"])["greedy"]
    assert pair["sentences"] == 3 and pair["files"] == {"source": str(src), "raw": str(ref),
                                                         "tokenized": None, "carved": False}
    assert pair["bleu_detok"] == sacrebleu_scores(outputs(run_dir, "mine"), RAW_DE[:3])["bleu"]
    tok_src = write(tmp_path / "extra" / "mine.tok.en", TOK_EN[:3])
    tok_ref = write(tmp_path / "extra" / "mine.tok.de", TOK_DE[:3])
    pair = run(["evaluate", "--run-dir", str(run_dir), "--beam", "1", "--test", f"{tok_src},{tok_ref}"])["greedy"]
    assert pair["files"]["tokenized"] == str(tok_ref) and pair["bleu_detok"] is None
    with pytest.raises(SystemExit, match="test_2016_flickr, test_2017_flickr"):
        run(["evaluate", "--run-dir", str(run_dir), "--test", "test_2018"])


def test_the_bundled_set_pairs_its_tokenized_and_raw_files():
    data = load_translation("en-de")
    refs = commands.references({"pair": "en-de", "data": None, "raw": False}, data, "test")
    assert refs["files"]["tokenized"].endswith("test_2016_flickr.lc.norm.tok.de.gz")
    assert refs["files"]["raw"].endswith("test_2016_flickr.de.gz")
    assert refs["raw"][0] == read_lines(pathlib.Path(refs["files"]["raw"]))[0]
    assert refs["raw"][0] != refs["raw"][0].lower() and refs["tokenized"][0] == refs["tokenized"][0].lower()
    assert len(refs["raw"]) == len(refs["tokenized"]) == len(refs["sources"]) == 1000
