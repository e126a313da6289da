"""The subword path (`train --vocab subword`, issue #16): SentencePiece learned on raw cased
text, tokenized and detokenized in the graph by tensorflow-text.

References: the `sentencepiece` Python package for the in-graph tokenization, the input
string itself for the round trip, the in-memory translator for the export.
"""

import json
import re
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apps.translation.__main__ import run
from apps.translation.model import build_model
from apps.translation.text import (SUBWORD_MODELS, UNK_ID, SubwordVectorizer,
                                   python_subword_tokenize, train_subword_model)
from apps.translation.translator import Translator
from tests.apps.export_properties import served_answer, serving_process

RAW_DE = ["Ein Mann fährt Fahrrad.", "Zwei Hunde spielen im Schnee.", "Eine Frau liest ein Buch.",
          "Kinder spielen auf der Straße.", "Der Mann trägt einen roten Hut.",
          "Ein Hund läuft über die Wiese.", "Drei Männer stehen vor dem Haus."]
RAW_EN = ["A man rides a bike.", "Two dogs play in the snow.", "A woman reads a book.",
          "Children play in the street.", "The man wears a red hat.",
          "A dog runs across the meadow.", "Three men stand in front of the house."]
UNSEEN = ["Ωμέγα 中文 😀 Ж", "\x00\x07 ctrl", "café ﬁ Å"]  # characters the training text lacks
SPACE = " \t\n\r\f\v"


@pytest.fixture(scope="module")
def german():
    return SubwordVectorizer(train_subword_model(RAW_DE * 5, vocab_size=320), name="german")


def standardized(text):
    return re.sub(f"[{SPACE}]+", " ", text).strip(SPACE)


# Any text but SentencePiece's word mark U+2581 (it reads as a space) and U+10FFFD (the
# normalization rule's noncharacter pair starts with it).
ANY_TEXT = st.text(alphabet=st.characters(blacklist_characters="\u2581\U0010fffd"), max_size=40)


@settings(max_examples=60, deadline=None, derandomize=True,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(texts=st.lists(ANY_TEXT, min_size=1, max_size=4))
def test_detokenize_tokenize_gives_back_the_text_and_matches_sentencepiece(german, texts):
    ragged = german.tokenize(tf.constant(texts))
    assert german.detokenize(ragged).numpy().tolist() == [standardized(t).encode("utf-8") for t in texts]
    assert ragged.to_list() == python_subword_tokenize(german.model_proto, texts)
    assert UNK_ID not in ragged.flat_values.numpy()  # byte fallback: nothing is unknown


def test_the_padded_form_and_scalars(german):
    padded = german(tf.constant(["Ein Mann.", "", "Zwei Hunde spielen im Schnee."])).numpy()
    assert padded.shape[0] == 3 and np.all(padded[1] == 0)
    assert german(tf.constant("Ein Mann.")).numpy().tolist() == python_subword_tokenize(german.model_proto, ["Ein Mann."])[0]
    pieces = german.get_vocabulary()
    assert pieces[:4] == ["", "<unk>", "<s>", "</s>"] and "<0xF0>" in pieces


def test_the_decoder_never_writes_unk_even_when_the_model_prefers_it(german):
    keras.utils.set_random_seed(0)
    english = SubwordVectorizer(train_subword_model(RAW_EN * 5, vocab_size=320), name="english")
    model = build_model(english.vocabulary_size(), german.vocabulary_size(), units=8,
                        embedding_dim=8, dropout=0.0)
    model((np.ones((1, 3), "int32"), np.ones((1, 2), "int32")))
    bias = model.generator.bias.numpy()
    bias[UNK_ID] = 50.0  # <unk> now wins every argmax it is allowed into
    model.generator.bias.assign(bias)
    sources = UNSEEN + RAW_EN[:2]
    ids = english(tf.constant(sources)).numpy()
    assert UNK_ID not in ids  # unseen source characters are bytes, not <unk>
    subword = Translator(model, english, german.get_vocabulary(), target_detokenizer=german,
                         beam_width=2, max_output_length=12)
    for width in (1, 2):
        out = subword.translate_full(sources, beam_width=width)
        for text, tokens in zip(out["translation"], out["tokens"]):
            assert "<unk>" not in tokens and "\u2047" not in text and "[UNK]" not in text
    # The same model with the word path's bans writes <unk>: the ban is what keeps it out.
    unbanned = Translator(model, english, german.get_vocabulary(), beam_width=2, max_output_length=12)
    assert "<unk>" in unbanned.translate(sources, beam_width=1, tokens=True)[0]


def write_raw_folder(folder):
    folder.mkdir(parents=True, exist_ok=True)
    splits = {"train": (RAW_EN * 4, RAW_DE * 4), "val": (RAW_EN[:3], RAW_DE[:3]), "test": (RAW_EN[3:], RAW_DE[3:])}
    for split, (en, de) in splits.items():
        (folder / f"{split}.en").write_text("".join(s + "\n" for s in en), encoding="utf-8")
        (folder / f"{split}.de").write_text("".join(s + "\n" for s in de), encoding="utf-8")
    return folder


TINY = ["--vocab", "subword", "--subword-vocab-size", "300", "--units", "16", "--embedding-dim", "16",
        "--batch-size", "7", "--learning-rate", "0.01", "--val-bleu-sentences", "3", "--quiet",
        "--seed", "1", "--beam", "2"]


def test_train_evaluate_translate_export_on_the_subword_path(tmp_path):
    data = write_raw_folder(tmp_path / "raw")
    run_dir = tmp_path / "run"
    report = run(["train", "--data", str(data), "--run-dir", str(run_dir), "--epochs", "1", *TINY])
    models = {side: (run_dir / name).read_bytes() for side, name in SUBWORD_MODELS.items()}
    config = json.loads((run_dir / "config.json").read_text())
    assert config["vocab"] == "subword" and config["subword_vocab_size"] == 300
    greedy = report["test"]["greedy"]
    assert greedy["files"]["raw"] == str(data / "test.de") and greedy["files"]["tokenized"] is None
    assert "tok:13a" in greedy["bleu_tok_lc_signature"] and greedy["bleu_detok"] is not None
    # Trained further: the same SentencePiece models, unchanged.
    run(["train", "--data", str(data), "--run-dir", str(run_dir), "--epochs", "2", "--no-evaluate", *TINY])
    assert {side: (run_dir / name).read_bytes() for side, name in SUBWORD_MODELS.items()} == models

    sentences = ["A man rides a bike.", "Ωμέγα 中文 😀", ""]
    results = run(["translate", "--run-dir", str(run_dir), "--beam", "1", *sentences])
    assert results[2]["translation"] == ""
    assert all("<unk>" not in r["tokens"] and "\u2047" not in r["translation"] for r in results)
    out = run(["export", "--run-dir", str(run_dir), "--out", str(tmp_path / "export"), "--beam", "2"])
    expected = run(["translate", "--run-dir", str(run_dir), "--beam", "2", *sentences])
    # A fresh process that imports only tensorflow and tensorflow_text (which registers the
    # SentencePiece ops the export needs), outside the repository.
    code = (
        "import tensorflow as tf\n"
        "import tensorflow_text  # noqa: F401\n"
        "m = tf.saved_model.load(sys.argv[1])\n"
        "r = m.signatures['serving_default'](sources=tf.constant(json.loads(sys.argv[2])))\n"
        "print(json.dumps([t.decode() for t in r['translation'].numpy()]))\n"
    )
    served = served_answer(serving_process(code, out, json.dumps(sentences), cwd=tmp_path))
    assert served == [r["translation"] for r in expected]
    # Without `import tensorflow_text` the export does not load (the pitfall the README names).
    bare = code.replace("import tensorflow_text  # noqa: F401\n", "")
    proc = serving_process(bare, out, json.dumps(sentences), cwd=tmp_path)
    assert proc.returncode != 0 and "Sentencepiece" in proc.stderr


def test_subword_refuses_tokenized_training_text(tmp_path):
    folder = tmp_path / "tok"
    folder.mkdir()
    for split in ("train", "val", "test"):
        for lang, lines in (("en", RAW_EN), ("de", RAW_DE)):
            (folder / f"{split}.lc.norm.tok.{lang}").write_text("".join(s.lower() + "\n" for s in lines))
    with pytest.raises(SystemExit, match="raw cased text"):
        run(["train", "--data", str(folder), "--run-dir", str(tmp_path / "run"), *TINY])
    assert not (tmp_path / "run").exists()


def test_the_default_is_the_cased_subword_model_on_a_tab_separated_file(tmp_path):
    """No --vocab: a user's own pair file trains SentencePiece pieces on its raw text, and
    translations come out cased, with no unknown-word token for characters never seen."""
    pairs = tmp_path / "pairs.tsv"
    pairs.write_text("".join(f"{en}\t{de}\n" for en, de in zip(RAW_EN * 6, RAW_DE * 6)), encoding="utf-8")
    run_dir = tmp_path / "run"
    default = [a for a in TINY if a not in ("--vocab", "subword")]
    run(["train", "--data", str(pairs), "--run-dir", str(run_dir), "--epochs", "1", "--no-evaluate", *default])
    config = json.loads((run_dir / "config.json").read_text())
    assert config["vocab"] == "subword" and config["raw"] is True
    assert all((run_dir / name).exists() for name in SUBWORD_MODELS.values())
    results = run(["translate", "--run-dir", str(run_dir), "--beam", "1", "Ωμέγα 中文 😀 Straße"])
    assert "[UNK]" not in results[0]["translation"] and "\u2047" not in results[0]["translation"]
    assert "<unk>" not in results[0]["tokens"]


def test_de_en_with_luong_attention_and_an_attention_plot_on_pieces(tmp_path):
    data = write_raw_folder(tmp_path / "raw")
    run_dir = tmp_path / "de-en"
    default = [a for a in TINY if a not in ("--vocab", "subword")]
    run(["train", "--data", str(data), "--run-dir", str(run_dir), "--pair", "de-en", "--attention", "luong",
         "--epochs", "1", "--no-evaluate", *default])
    config = json.loads((run_dir / "config.json").read_text())
    assert config["pair"] == "de-en" and config["vocab"] == "subword"
    plot = tmp_path / "attention.png"
    results = run(["translate", "--run-dir", str(run_dir), "--beam", "1", "--plot-attention", str(plot),
                   "Ein Mann fährt Fahrrad."])
    assert plot.stat().st_size > 0
    # The source side is German pieces: the German model tokenized the input.
    assert (run_dir / "subword.source.model").read_bytes() != (run_dir / "subword.target.model").read_bytes()
    assert isinstance(results[0]["translation"], str)
