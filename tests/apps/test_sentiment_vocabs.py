"""The sentiment app's vocabularies (`--vocab word | subword | mixed`, issue #15).

References: the `sentencepiece` Python package for the in-graph subword ids, the members'
own saved models for the ensemble's average, the in-process pipeline for the export.
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from apps.sentiment import run
from apps.sentiment.commands import SUBWORD_MODEL, load_pipeline, member_vocabs
from seqapps.data import load_vocabulary
from seqapps.data.vocab import treebank_text
from seqapps.data.subword import SubwordVectorizer, python_subword_tokenize, train_subword_model
from tests.apps.export_properties import served_answer, serving_process
from tests.apps.test_sentiment_phrases import TINY, write_tree_folder

SENTENCES = ["the film was superb", "A DULL story , wasn't it ?", "zzqx unfilmable", ""]


def test_mixed_members_alternate_word_and_subword():
    assert member_vocabs({"vocab": "mixed", "ensemble": 4}) == ["word", "subword", "word", "subword"]
    assert member_vocabs({"vocab": "mixed", "ensemble": 1}) == ["word"]
    assert member_vocabs({"vocab": "subword", "ensemble": 2}) == ["subword", "subword"]
    assert member_vocabs({"ensemble": 3}) == ["word"] * 3  # a run from before --vocab


def test_subword_ids_are_sentencepiece_of_the_treebank_text():
    texts = ["The film's superb , isn't it ?", "a dull , lifeless mess", "an unwatchable film"] * 5
    proto = train_subword_model(texts, 300, standardize=treebank_text)
    vectorizer = SubwordVectorizer(proto, standardize=treebank_text)
    new = ["Doesn't it look unwatchable?", "SUPERB!", "Ωμέγα 😀"]
    expected = python_subword_tokenize(proto, [t.decode() for t in treebank_text(tf.constant(new)).numpy()])
    got = vectorizer.tokenize(tf.constant(new)).to_list()
    assert got == expected
    assert all(1 not in ids for ids in got)  # byte fallback: no <unk>, even for Greek and emoji


@pytest.fixture(scope="module")
def mixed_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("mixed")
    data = write_tree_folder(root / "trees", sizes=(40, 10, 10))
    run_dir = root / "run"
    report = run(["train", "--data", str(data), "--run-dir", str(run_dir), "--epochs", "1", *TINY,
                  "--ensemble", "3", "--vocab", "mixed", "--subword-vocab-size", "300"])
    return root, run_dir, report


def test_a_mixed_ensemble_serves_the_mean_of_word_and_subword_members(mixed_run):
    _, run_dir, report = mixed_run
    assert report["epochs_finished"] == 3
    config = json.loads((run_dir / "config.json").read_text())
    assert config["vocab"] == "mixed" and config["subword_vocab_size"] == 300
    # The references: each member's saved model, fed the ids its own vocabulary gives.
    words = keras.layers.TextVectorization(vocabulary=load_vocabulary(run_dir / "vocab.txt")[2:],
                                           standardize=treebank_text)
    pieces = (run_dir / SUBWORD_MODEL).read_bytes()
    treebank = [t.decode() for t in treebank_text(tf.constant(SENTENCES)).numpy()]
    piece_ids = keras.ops.convert_to_tensor(
        keras.utils.pad_sequences([ids or [0] for ids in python_subword_tokenize(pieces, treebank)], padding="post"))
    word_ids = tf.cast(words(tf.constant(SENTENCES)), tf.int32)
    members = [keras.models.load_model(d / "best.keras")
               for d in (run_dir, run_dir / "members" / "1", run_dir / "members" / "2")]
    assert members[1].get_layer("embedding").input_dim != members[0].get_layer("embedding").input_dim
    expected = np.mean([members[0](word_ids).numpy(), members[1](piece_ids).numpy(),
                        members[2](word_ids).numpy()], axis=0)
    pipeline, _ = load_pipeline(run_dir)
    np.testing.assert_allclose(pipeline.probabilities(tf.constant(SENTENCES)).numpy(), expected, atol=1e-5)
    # Token counts are the words': "zzqx" and "unfilmable" are not in the toy vocabulary.
    num_tokens, num_unknown, _ = (t.numpy().tolist() for t in pipeline.token_counts(tf.constant(SENTENCES)))
    assert num_tokens[2] == 2 and num_unknown[2] == 2 and num_tokens[3] == 0


def test_a_mixed_export_answers_in_a_fresh_process_after_importing_tensorflow_text(mixed_run, tmp_path):
    _, run_dir, _ = mixed_run
    out = run(["export", "--run-dir", str(run_dir), "--out", str(tmp_path / "export")])
    local = run(["predict", "--run-dir", str(run_dir), "--json", *SENTENCES])
    code = (
        "import tensorflow as tf\n"
        "import tensorflow_text  # noqa: F401\n"
        "m = tf.saved_model.load(sys.argv[1])\n"
        "r = m.signatures['serving_default'](text=tf.constant(json.loads(sys.argv[2])))\n"
        "print(json.dumps(r['probabilities'].numpy().tolist()))\n"
    )
    served = served_answer(serving_process(code, out, json.dumps(SENTENCES), cwd=tmp_path))
    np.testing.assert_allclose(served, [r["probabilities"] for r in local], atol=1e-5)
    assert json.loads((out / "metadata.json").read_text())["vocab"] == "mixed"
    via_predict = run(["predict", "--export", str(out), "--json", *SENTENCES])
    np.testing.assert_allclose([r["probabilities"] for r in via_predict], served, atol=1e-5)


def test_resuming_keeps_the_run_s_subword_model(mixed_run):
    root, run_dir, _ = mixed_run
    before = (run_dir / SUBWORD_MODEL).read_bytes()
    run(["train", "--data", str(root / "trees"), "--run-dir", str(run_dir), "--epochs", "2", *TINY,
         "--ensemble", "3", "--vocab", "mixed", "--subword-vocab-size", "300"])
    assert (run_dir / SUBWORD_MODEL).read_bytes() == before
    assert len(load_vocabulary(run_dir / "vocab.txt")) > 2
