"""tf.distribute and XLA with our layers: same numbers on two replicas as on one device.

TensorFlow fixes its logical devices at start-up, so the two-CPU-device runs happen in a
fresh interpreter.
"""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

MIRRORED = textwrap.dedent(
    """
    import json, os
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import numpy as np, tensorflow as tf
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
    import keras
    from seqapps.layers import LSTM, GRU

    def build():
        keras.utils.set_random_seed(0)
        return keras.Sequential([
            keras.Input((None,), dtype="int32"),
            keras.layers.Embedding(30, 8, mask_zero=True),
            keras.layers.Bidirectional(LSTM(8, return_sequences=True)),
            GRU(8),
            keras.layers.Dense(3),
        ])

    rng = np.random.default_rng(0)
    x = rng.integers(1, 30, size=(8, 7)).astype("int32"); x[::2, 5:] = 0
    y = rng.integers(0, 3, size=(8,)).astype("int32")
    loss_fn = keras.losses.SparseCategoricalCrossentropy(
        from_logits=True, reduction="sum")

    single = build()
    with tf.GradientTape() as tape:
        loss = loss_fn(y, single(x)) / 8
    grads = tape.gradient(loss, single.trainable_weights)

    strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
    with strategy.scope():
        mirrored = build()
    mirrored.set_weights(single.get_weights())
    ds = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices((x, y)).batch(8))

    @tf.function
    def replica_step(xb, yb):
        with tf.GradientTape() as tape:
            loss = loss_fn(yb, mirrored(xb)) / 8   # scaled by the GLOBAL batch
        return loss, tape.gradient(loss, mirrored.trainable_weights)

    for xb, yb in ds:
        losses, per_replica = strategy.run(replica_step, args=(xb, yb))
    total = strategy.reduce("SUM", losses, axis=None)
    summed = [strategy.reduce("SUM", g, axis=None) for g in per_replica]
    grads = [tf.convert_to_tensor(g) for g in grads]  # embedding grads are IndexedSlices
    summed = [tf.convert_to_tensor(g) for g in summed]
    print(json.dumps({
        "replicas": strategy.num_replicas_in_sync,
        "loss": [float(loss), float(total)],
        "grad_err": max(float(np.max(np.abs(a - b))) for a, b in zip(grads, summed)),
        "grad_scale": max(float(np.max(np.abs(g))) for g in grads),
    }))
    """
)


MULTI_WORKER = textwrap.dedent(
    """
    import json, os
    os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"
    import numpy as np, tensorflow as tf
    strategy = tf.distribute.MultiWorkerMirroredStrategy()   # cluster from TF_CONFIG
    import keras
    from seqapps.layers import LSTM
    with strategy.scope():
        keras.utils.set_random_seed(0)
        model = keras.Sequential([
            keras.Input((None,), dtype="int32"),
            keras.layers.Embedding(30, 8, mask_zero=True), LSTM(8), keras.layers.Dense(2)])
        model.build((None, None))
        optimizer = keras.optimizers.SGD(0.5)
        optimizer.build(model.trainable_variables)
    rng = np.random.default_rng(int(os.environ["WORKER_INDEX"]))  # different data per worker
    x = rng.integers(1, 30, size=(64, 7)).astype("int32"); y = (x[:, 0] > 15).astype("int32")
    ds = strategy.experimental_distribute_dataset(
        tf.data.Dataset.from_tensor_slices((x, y)).repeat().batch(16))
    loss_fn = keras.losses.SparseCategoricalCrossentropy(from_logits=True, reduction="sum")

    @tf.function
    def train_step(batch):
        def step(xb, yb):
            with tf.GradientTape() as tape:
                loss = loss_fn(yb, model(xb, training=True)) / 16
            grads = tape.gradient(loss, model.trainable_variables)
            optimizer.apply_gradients(zip(grads, model.trainable_variables))
            return loss
        return strategy.reduce("SUM", strategy.run(step, args=batch), axis=None)

    it = iter(ds)
    losses = [float(train_step(next(it))) for _ in range(4)]
    print(json.dumps({"replicas": strategy.num_replicas_in_sync, "losses": losses,
                      "weights": [w.tolist() for w in model.get_weights()[1:3]]}))
    """
)


def free_ports(n):
    import socket

    sockets = [socket.socket() for _ in range(n)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in sockets]
    for s in sockets:
        s.close()
    return ports


def test_multi_worker_training_on_loopback():
    """Two worker processes, one MultiWorkerMirroredStrategy: the all-reduce keeps them equal."""
    import os

    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index in range(2):
        env = {**os.environ, "WORKER_INDEX": str(index),
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        procs.append(subprocess.Popen([sys.executable, "-c", MULTI_WORKER], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    results = []
    for proc in procs:
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err[-3000:]
        results.append(json.loads(out.strip().splitlines()[-1]))
    assert all(r["replicas"] == 2 for r in results)
    # Different data on each worker, yet identical weights after every synchronous step.
    for a, b in zip(results[0]["weights"], results[1]["weights"]):
        np.testing.assert_allclose(a, b, atol=1e-6)
    assert results[0]["losses"] == results[1]["losses"]


def test_mirrored_strategy_matches_one_device():
    proc = subprocess.run([sys.executable, "-c", MIRRORED], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["replicas"] == 2
    np.testing.assert_allclose(result["loss"][0], result["loss"][1], rtol=1e-5)
    assert result["grad_scale"] > 1e-3  # the comparison is not between zeros
    assert result["grad_err"] < 1e-5, result


def test_training_step_compiles_with_xla():
    import keras
    import tensorflow as tf

    from seqapps.layers import GRU, LSTM, SimpleRNN

    for layer in (LSTM, GRU, SimpleRNN):
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((6, 4)), layer(8), keras.layers.Dense(1)])
        model.compile(optimizer="adam", loss="mse", jit_compile=True)
        x, y = np.random.rand(16, 6, 4).astype("float32"), np.random.rand(16, 1).astype("float32")
        before = model.evaluate(x, y, verbose=0)
        model.fit(x, y, epochs=3, batch_size=16, verbose=0)
        assert model.evaluate(x, y, verbose=0) < before
        assert model.jit_compile  # Keras would have turned XLA off if a layer refused it

        @tf.function(jit_compile=True)
        def step(x, y):
            with tf.GradientTape() as tape:
                loss = tf.reduce_mean(tf.square(model(x) - y))
            return tape.gradient(loss, model.trainable_weights)

        grads = step(x, y)
        assert all(np.all(np.isfinite(g)) for g in grads)


def _app_setup(app, tmp_path):
    """(data path, tiny options) for an app's end-to-end tests."""
    if app == "sentiment":
        from tests.apps.test_sentiment import TINY, write_toy_data

        return write_toy_data(tmp_path / "toy.txt", n=160), TINY
    from tests.apps.test_translation import TINY, write_parallel_folder

    return write_parallel_folder(tmp_path / "pairs"), [*TINY, "--no-evaluate"]


@pytest.mark.parametrize("app", ["sentiment", "translation"])
def test_app_trains_on_two_workers(app, tmp_path):
    """`train --strategy multiworker` (Model.fit) on two processes: one model, two folders."""
    import os

    data, tiny = _app_setup(app, tmp_path)
    run_dir = tmp_path / "run"
    ports = free_ports(2)
    cluster = {"worker": [f"127.0.0.1:{p}" for p in ports]}
    procs = []
    for index in range(2):
        env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3",
               "TF_CONFIG": json.dumps({"cluster": cluster, "task": {"type": "worker", "index": index}})}
        cmd = [sys.executable, "-m", f"apps.{app}", "train", "--strategy", "multiworker",
               "--data", str(data), "--run-dir", str(run_dir), "--epochs", "2", "--patience", "0",
               *tiny]
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, text=True))
    for proc in procs:
        out, err = proc.communicate(timeout=400)
        assert proc.returncode == 0, (out + err)[-3000:]
    worker_dir = tmp_path / "run.worker-1"  # worker 0 is the chief and owns run_dir itself
    for folder in (run_dir, worker_dir):
        assert (folder / "best.keras").exists() and (folder / "metrics.json").exists()
        assert len(history(folder)) == 2
    # Synchronous all-reduce: the same validation numbers and the same weights on both.
    assert history(run_dir) == history(worker_dir)
    import keras

    chief, worker = (keras.models.load_model(f / "best.keras", compile=False)
                     for f in (run_dir, worker_dir))
    for a, b in zip(chief.get_weights(), worker.get_weights()):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_lm_refuses_multiworker(tmp_path, capsys):
    """Stateful truncated BPTT keeps one state per stream: the LM app says so and stops."""
    from apps.lm.__main__ import main
    from seqapps import cli

    corpus = tmp_path / "corpus.txt"
    corpus.write_text("the cat sat on the mat .\n" * 50)
    code = main(["train", "--data", str(corpus), "--run-dir", str(tmp_path / "run"),
                 "--strategy", "multiworker", "--epochs", "1"])
    assert code == cli.DATA_ERROR_STATUS  # an option the app cannot honour, refused like bad data
    assert "one replica" in capsys.readouterr().err


def history(run_dir):
    import csv

    with open(run_dir / "history.csv") as f:
        return list(csv.DictReader(f))


def test_worker_run_dir_moves_only_under_multiworker(monkeypatch, tmp_path):
    """A TF_CONFIG left in the environment must not move a single-worker run's folder."""
    import tensorflow as tf

    from seqapps import training

    monkeypatch.setenv("TF_CONFIG", json.dumps(
        {"cluster": {"worker": ["a:1", "b:2"]}, "task": {"type": "worker", "index": 1}}))
    assert not training.is_chief()
    assert training.worker_run_dir(tmp_path / "run", tf.distribute.get_strategy()) == tmp_path / "run"
