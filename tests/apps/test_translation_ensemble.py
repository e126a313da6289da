"""`train --ensemble K`: K models trained with seeds SEED.., decoding with their mean probability.

References: NumPy on each member's own `decode_step` (the mean of the softmaxes), and the
single model (an ensemble of one model twice must translate exactly as the model alone).
"""

import json

import keras
import numpy as np
import pytest
import tensorflow as tf

from apps.translation.__main__ import run
from apps.translation.ensemble import Ensemble
from apps.translation.model import build_model
from apps.translation.text import SubwordVectorizer, train_subword_model
from apps.translation.translator import Translator
from tests.apps.test_translation_subword import RAW_DE, RAW_EN, TINY, write_raw_folder


@pytest.fixture(scope="module")
def vectorizers():
    return (SubwordVectorizer(train_subword_model(RAW_EN * 5, vocab_size=320), name="english"),
            SubwordVectorizer(train_subword_model(RAW_DE * 5, vocab_size=320), name="german"))


def tiny_model(source, target, seed, attention="bahdanau"):
    keras.utils.set_random_seed(seed)
    return build_model(source.vocabulary_size(), target.vocabulary_size(), units=8,
                       embedding_dim=8, dropout=0.0, attention=attention)


def softmax(x):
    e = np.exp(x - x.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


@pytest.mark.parametrize("attention", ["bahdanau", "luong", "none"])
def test_each_step_is_the_log_of_the_members_mean_probability(vectorizers, attention):
    source, target = vectorizers
    members = [tiny_model(source, target, seed, attention) for seed in (1, 2, 3)]
    ensemble = Ensemble(members)
    ids = source(tf.constant(RAW_EN[:3]))
    state = ensemble.initial_decoder_state(ids)
    alone = [m.initial_decoder_state(ids) for m in members]
    for tokens in ([2, 2, 2], [7, 9, 11], [40, 3, 5]):
        tokens = tf.constant(tokens)
        log_mean, state, weights = ensemble.decode_step(tokens, state)
        steps = [m.decode_step(tokens, s) for m, s in zip(members, alone)]
        alone = [s for _, s, _ in steps]
        expected = np.log(np.mean([softmax(logits.numpy()) for logits, _, _ in steps], axis=0))
        np.testing.assert_allclose(log_mean.numpy(), expected, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(weights.numpy(), np.mean([w.numpy() for _, _, w in steps], axis=0),
                                   rtol=1e-6, atol=1e-6)
    # The members differ, so the mean is not any one of them.
    assert not np.allclose(expected, np.log(softmax(steps[0][0].numpy())), atol=1e-3)


def test_one_model_twice_translates_exactly_as_the_model_alone(vectorizers):
    source, target = vectorizers
    model = tiny_model(source, target, 4)
    options = dict(target_detokenizer=target, max_output_length=12)
    alone = Translator(model, source, target.get_vocabulary(), **options)
    twice = Translator(Ensemble([model, model]), source, target.get_vocabulary(), **options)
    sources = RAW_EN[:4] + ["", "Ωμέγα 中文"]
    for width in (1, 3):  # beam search reorders every member's state by the same parents
        assert twice.translate_full(sources, beam_width=width) == alone.translate_full(sources, beam_width=width)


def test_members_of_different_attention_are_refused(vectorizers):
    source, target = vectorizers
    with pytest.raises(ValueError, match="share one attention"):
        Ensemble([tiny_model(source, target, 1, "bahdanau"), tiny_model(source, target, 1, "luong")])


def test_train_an_ensemble_of_two_then_evaluate_translate_export(tmp_path):
    data = write_raw_folder(tmp_path / "raw")
    run_dir = tmp_path / "run"
    argv = ["train", "--data", str(data), "--run-dir", str(run_dir), "--epochs", "1", "--ensemble", "2", *TINY]
    report = run(argv)
    assert json.loads((run_dir / "config.json").read_text())["ensemble"] == 2
    first, second = (keras.models.load_model(d / "best.keras", compile=False)
                     for d in (run_dir, run_dir / "members" / "1"))
    # Seeds 1 and 2: two different models, both trained for the epoch.
    assert not np.allclose(first.generator.kernel.numpy(), second.generator.kernel.numpy())
    assert (run_dir / "members" / "1" / "history.csv").read_text().count("\n") == 2
    assert report["test"]["greedy"]["bleu_detok"] is not None
    assert report["members_epochs_finished"] == [1, 1]
    assert run(argv[:-len(TINY)] + TINY)["epochs_finished"] == 1  # the same command: nothing to redo

    sentences = ["A man rides a bike.", "Ωμέγα 中文 😀", ""]
    expected = run(["translate", "--run-dir", str(run_dir), "--beam", "2", *sentences])
    assert expected[2]["translation"] == ""
    out = run(["export", "--run-dir", str(run_dir), "--out", str(tmp_path / "export"), "--beam", "2"])
    assert json.loads((out / "metadata.json").read_text())["ensemble"] == 2
    loaded = tf.saved_model.load(str(out))
    served = loaded.signatures["serving_default"](sources=tf.constant(sentences))
    assert [t.decode() for t in served["translation"].numpy()] == [r["translation"] for r in expected]


def test_an_ensemble_below_one_is_refused(tmp_path):
    data = write_raw_folder(tmp_path / "raw")
    with pytest.raises(SystemExit, match="--ensemble must be at least 1; got 0"):
        run(["train", "--data", str(data), "--run-dir", str(tmp_path / "run"), "--ensemble", "0", *TINY])


def test_time_a_member_did_not_use_goes_to_the_members_after_it(tmp_path, monkeypatch):
    """`--max-minutes 90 --ensemble 2`: a first member that stops after 10 minutes (by
    --stop-min-lr, say) leaves 80 to the second, not the fixed half (45)."""
    from apps.translation import commands

    now = [1000.0]  # a clock that only moves when a member ends: each one takes 10 minutes
    budgets = []

    class RecordedBudget(keras.callbacks.Callback):
        def __init__(self, minutes):
            super().__init__()
            budgets.append(minutes)

        def on_train_end(self, logs=None):
            now[0] += 600.0

    monkeypatch.setattr(commands, "TimeBudget", RecordedBudget)
    monkeypatch.setattr(commands, "time", type("Clock", (), {"time": staticmethod(lambda: now[0]),
                                                              "perf_counter": staticmethod(lambda: now[0])}))
    data = write_raw_folder(tmp_path / "raw")
    run(["train", "--data", str(data), "--run-dir", str(tmp_path / "run"), "--epochs", "1",
         "--ensemble", "2", "--max-minutes", "90", "--no-evaluate", *TINY])
    assert budgets == pytest.approx([45.0, 80.0])


def test_a_run_trained_in_bfloat16_is_scored_in_float32_as_evaluate_does(tmp_path, monkeypatch):
    """`train --mixed-precision bfloat16` ends with the test score: it must be the one
    `evaluate` (a float32 process) prints, so the checkpoint is decoded in float32."""
    from apps.translation import commands

    policies = []
    evaluate = commands.evaluate

    def recorded(args, data=None):
        policies.append(keras.mixed_precision.global_policy().name)
        return evaluate(args, data=data)

    monkeypatch.setattr(commands, "evaluate", recorded)
    data = write_raw_folder(tmp_path / "raw")
    try:
        run(["train", "--data", str(data), "--run-dir", str(tmp_path / "run"), "--epochs", "1",
             "--mixed-precision", "bfloat16", *TINY])
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert policies == ["float32"]
