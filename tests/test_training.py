"""The run folder's guard against resuming into a different experiment."""

import json

import pytest

from seqapps import training


def test_same_config_resumes_and_epochs_may_grow(tmp_path):
    training.prepare_run_dir(tmp_path / "run", {"units": 8, "epochs": 2})
    training.prepare_run_dir(tmp_path / "run", {"units": 8, "epochs": 5})
    assert json.loads((tmp_path / "run" / "config.json").read_text())["epochs"] == 5


@pytest.mark.parametrize("first, second", [
    ({"units": 8}, {"units": 16}),
    # a key only one side has is a change: a final fit on train+validation resumed without
    # --include-validation would otherwise early-stop on data it was trained on
    ({"units": 8, "include_validation": True}, {"units": 8}),
    ({"units": 8}, {"units": 8, "include_validation": True}),
])
def test_other_settings_are_refused(tmp_path, first, second):
    training.prepare_run_dir(tmp_path / "run", first)
    with pytest.raises(ValueError, match="other settings.*include_validation|other settings.*units"):
        training.prepare_run_dir(tmp_path / "run", second)
    training.prepare_run_dir(tmp_path / "run", second, overwrite=True)
    assert json.loads((tmp_path / "run" / "config.json").read_text()) == second


@pytest.mark.parametrize("objective, direction", [
    ("val_loss", "min"), ("val_perplexity", "min"), ("val_accuracy", "max"), ("val_bleu", "max"),
    ("val_auc", "max"), ("val_macro_f1", "max"),
])
def test_tune_maximizes_scores_and_minimizes_losses_unless_told(objective, direction):
    import argparse

    from seqapps.cli import add_tuning_arguments, run_verb

    parser = argparse.ArgumentParser()
    add_tuning_arguments(parser, objective="val_loss")
    parser.set_defaults(run=lambda args: args.direction)
    assert run_verb(parser, ["--objective", objective]) == direction
    assert run_verb(parser, ["--objective", objective, "--direction", "min"]) == "min"


def test_lr_decay_on_plateau_survives_a_resume(tmp_path):
    import keras
    import numpy as np

    def fit(epochs):
        # Frozen weights: the validation loss never improves, so every epoch after the
        # first decays the rate.
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, trainable=False)])
        model.compile(keras.optimizers.SGD(learning_rate=1.0), loss="mse")
        x, y = np.ones((8, 3), "float32"), np.zeros((8, 1), "float32")
        callbacks = training.standard_callbacks(tmp_path, patience=0, tensorboard=False, lr_decay=0.5)
        model.fit(x, y, validation_data=(x, y), epochs=epochs, callbacks=callbacks, verbose=0)
        return float(model.optimizer.learning_rate.numpy())

    assert fit(3) == 0.25
    # resumed from the backup: the decayed rate is restored, and the plateau is still one
    assert fit(5) == 0.0625  # 1 -> .5 -> .25 -> .125 -> .0625, as without the interruption
    assert training.finished_epochs(tmp_path) == 5


@pytest.mark.parametrize("min_delta, expected_rates", [
    (0.0, [1.0, 1.0, 1.0, 1.0]),   # every epoch improved, however little: no decay
    # a gain of 0.005 nats is a plateau; then 0.85 is 0.05 below the best (0.9): not one
    (0.01, [1.0, 1.0, 0.5, 0.5]),
])
def test_lr_decay_min_delta_treats_a_small_gain_as_a_plateau(tmp_path, min_delta, expected_rates):
    import keras

    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(learning_rate=1.0), loss="mse")
    callbacks = training.standard_callbacks(tmp_path, patience=0, tensorboard=False, lr_decay=0.5,
                                            lr_decay_min_delta=min_delta)
    decay = next(c for c in callbacks if isinstance(c, keras.callbacks.ReduceLROnPlateau))
    decay.set_model(model)
    decay.on_train_begin()
    rates = []
    for epoch, val_loss in enumerate([1.0, 0.9, 0.895, 0.85]):
        decay.on_epoch_end(epoch, {"val_loss": val_loss})
        rates.append(float(model.optimizer.learning_rate.numpy()))
    assert rates == expected_rates


def test_stop_min_lr_ends_training_after_the_decay_below_it_and_a_resume_after_one_epoch(tmp_path):
    import keras
    import numpy as np

    def fit(epochs, stop_min_lr):
        # Frozen weights: the validation loss never improves, so every epoch after the
        # first halves the rate: 1 -> .5 -> .25 -> .125 (below 0.2 after epoch 4).
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, trainable=False)])
        model.compile(keras.optimizers.SGD(learning_rate=1.0), loss="mse")
        x, y = np.ones((8, 3), "float32"), np.zeros((8, 1), "float32")
        callbacks = training.standard_callbacks(tmp_path, patience=0, tensorboard=False, lr_decay=0.5,
                                                stop_min_lr=stop_min_lr)
        model.fit(x, y, validation_data=(x, y), epochs=epochs, callbacks=callbacks, verbose=0)

    fit(10, stop_min_lr=0.2)
    assert training.finished_epochs(tmp_path) == 4  # epoch 4 took the rate from .25 to .125
    fit(10, stop_min_lr=0.2)  # extended: one more epoch, already below
    assert training.finished_epochs(tmp_path) == 5
    fit(7, stop_min_lr=0.0)  # off: trains on to --epochs
    assert training.finished_epochs(tmp_path) == 7


@pytest.mark.parametrize("gpu, tpu, cpu_bf16, expected", [
    (True, False, True, "mixed_float16"),
    (False, True, False, "mixed_bfloat16"),
    (False, False, True, "mixed_bfloat16"),
    (False, False, False, "float32"),  # bfloat16 emulated on such a CPU: slower than float32
])
def test_auto_mixed_precision_picks_what_the_device_computes_fastest(monkeypatch, gpu, tpu, cpu_bf16, expected):
    import keras
    import tensorflow as tf

    present = {"GPU": gpu, "TPU": tpu}
    monkeypatch.setattr(tf.config, "list_logical_devices", lambda kind=None: ["device"] if present.get(kind) else [])
    monkeypatch.setattr(training, "cpu_has_bfloat16", lambda: cpu_bf16)
    try:
        for choice in ("auto", True):  # True: the LM's Python API and older callers
            assert training.configure_precision(choice) == expected
            assert keras.mixed_precision.global_policy().name == expected
        assert training.configure_precision("bfloat16") == "mixed_bfloat16"  # asked for: honoured
        assert training.configure_precision("float16") == "mixed_float16"
        with pytest.raises(ValueError, match="off, auto, float16 or bfloat16"):
            training.configure_precision("int8")
    finally:
        assert training.configure_precision("off") == "float32"


def test_cpu_bfloat16_is_read_from_the_instruction_flags(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("flags\t\t: fpu sse avx2 avx512f avx512_bf16 avx512_vnni\n")
    assert training.cpu_has_bfloat16(cpuinfo)
    cpuinfo.write_text("flags\t\t: fpu sse avx2 avx512f avx512_vnni\n")  # no bf16, only its neighbours
    assert not training.cpu_has_bfloat16(cpuinfo)
    cpuinfo.unlink()
    assert not training.cpu_has_bfloat16(cpuinfo)


def test_progress_verbosity_bar_on_a_terminal_one_line_per_epoch_in_a_file(tmp_path, monkeypatch):
    import io
    import sys

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    assert training.progress_verbosity(True, Terminal()) == 0
    assert training.progress_verbosity(False, Terminal()) == 1
    assert training.progress_verbosity(False, io.StringIO()) == 2
    with open(tmp_path / "log.txt", "w") as f:
        assert training.progress_verbosity(False, f) == 2
    # the default stream is sys.stdout as it is at the call
    monkeypatch.setattr(sys, "stdout", Terminal())
    assert training.progress_verbosity(False) == 1
    monkeypatch.setattr(sys, "stdout", io.StringIO())
    assert training.progress_verbosity(False) == 2


def _tiny_fit(tf, run_dir, epochs, *, seeds, known_size=True):
    """A few epochs of a tiny model with dropout (Keras' and our LSTM's masks) on data
    reshuffled every epoch; returns the losses history.csv records."""
    import keras
    import numpy as np

    from seqapps.layers import LSTM

    keras.utils.set_random_seed(7)  # what every app's train does first
    x = np.random.default_rng(0).integers(1, 20, size=(64, 6))
    y = (x[:, 0] > 10).astype("float32")
    data = tf.data.Dataset.from_tensor_slices((x, y)).shuffle(64, seed=7, reshuffle_each_iteration=True)
    if not known_size:
        data = data.filter(lambda *_: True)
    data = data.batch(16).prefetch(2)
    assert (int(data.cardinality()) >= 0) == known_size
    model = keras.Sequential([
        keras.Input((6,), dtype="int32"), keras.layers.Embedding(20, 8),
        LSTM(8, dropout=0.3, recurrent_dropout=0.3), keras.layers.Dropout(0.5),
        keras.layers.Dense(1, activation="sigmoid"),
    ])
    model.compile(keras.optimizers.Adam(0.01), loss="binary_crossentropy")
    run_dir.mkdir(parents=True, exist_ok=True)
    callbacks = training.standard_callbacks(run_dir, monitor=None, tensorboard=False,
                                            **(dict(seed=7, shuffled=data) if seeds else {}))
    model.fit(data, epochs=epochs, callbacks=callbacks, verbose=0, shuffle=False)
    return training.read_history(run_dir)["loss"]


@pytest.mark.parametrize("known_size", [True, False])
def test_a_resumed_run_gives_the_uninterrupted_history(tmp_path, known_size):
    import warnings

    import tensorflow as tf

    warnings.filterwarnings("ignore", "Your input ran out of data")  # the unknown size's
    uninterrupted = _tiny_fit(tf, tmp_path / "whole", 4, seeds=True, known_size=known_size)
    _tiny_fit(tf, tmp_path / "resumed", 2, seeds=True, known_size=known_size)  # stopped after 2
    resumed = _tiny_fit(tf, tmp_path / "resumed", 4, seeds=True, known_size=known_size)
    assert resumed == pytest.approx(uninterrupted, rel=1e-6, abs=1e-7)
    if known_size:  # without EpochSeeds the resumed epochs differ: what the callback is for
        _tiny_fit(tf, tmp_path / "plain", 2, seeds=False)
        plain = _tiny_fit(tf, tmp_path / "plain", 4, seeds=False)
        whole = _tiny_fit(tf, tmp_path / "plain-whole", 4, seeds=False)
        assert plain[:2] == pytest.approx(whole[:2]) and plain[2:] != pytest.approx(whole[2:], rel=1e-6)


def test_epoch_seeds_depend_on_seed_and_epoch_only():
    assert training.epoch_seed(0, 3) == training.epoch_seed(0, 3)
    assert len({training.epoch_seed(s, e, i) for s in (0, 1) for e in (0, 1) for i in (0, 1)}) == 8
    assert all(0 <= training.epoch_seed(-5, e) < 2**31 for e in range(5))
    assert training.keras_iterators_before(0, True) == 0


def test_replay_best_follows_keras_rules(tmp_path):
    (tmp_path / "history.csv").write_text(
        "epoch,loss,val_loss\n0,2.0,1.0\n1,1.9,0.995\n2,1.8,NA\n3,1.7,1.2\n")
    assert training.replay_best(tmp_path, "val_loss", maximize=False) == (0.995, 1, 1)
    # a gain of 0.005 is no gain with min_delta 0.01: the decay still compares with 1.0
    assert training.replay_best(tmp_path, "val_loss", maximize=False, min_delta=0.01) == (1.0, 0, 2)
    assert training.replay_best(tmp_path, "val_loss", maximize=True) == (1.2, 3, 0)
    assert training.replay_best(tmp_path, "val_loss", maximize=False, start_from_epoch=3) == (1.2, 3, 0)
    assert training.replay_best(tmp_path / "none", "val_loss", maximize=False) == (None, 0, 0)


def test_a_resumed_run_stops_early_where_the_uninterrupted_one_does(tmp_path):
    import keras
    import numpy as np

    def fit(run_dir, epochs):
        # Frozen weights: the validation loss never improves after epoch 0.
        model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1, trainable=False)])
        model.compile(keras.optimizers.SGD(learning_rate=1.0), loss="mse")
        x, y = np.ones((8, 3), "float32"), np.zeros((8, 1), "float32")
        run_dir.mkdir(exist_ok=True)
        callbacks = training.standard_callbacks(run_dir, patience=2, tensorboard=False)
        model.fit(x, y, validation_data=(x, y), epochs=epochs, callbacks=callbacks, verbose=0)
        return training.finished_epochs(run_dir)

    assert fit(tmp_path / "whole", 10) == 3  # best at epoch 0, then two epochs of patience
    assert fit(tmp_path / "resumed", 2) == 2  # interrupted after epoch 1 (one epoch waited)
    assert fit(tmp_path / "resumed", 10) == 3  # stops where the uninterrupted run stopped
    # a finished run given more epochs: its patience starts again from the best value
    assert fit(tmp_path / "resumed", 10) == 5
