"""What every app's `train` shares: run folders, callbacks, resume, curves, metrics, strategy.

A run folder holds everything needed to resume, evaluate or export one run:

    config.json      the options the run was started with (a resumed run must match)
    vocab*.txt       vocabularies (written by the app)
    backup/          BackupAndRestore state: weights, optimizer, epoch — what resume reads
    best.keras       the best model so far on the monitored metric
    history.csv      one row per finished epoch (appended across resumes)
    logs/            TensorBoard
    metrics.json     final evaluation numbers
    curves.png       learning curves
"""

import csv
import json
import os
import pathlib

import keras

from seqapps.cli import add_training_arguments  # noqa: F401  (re-exported)

HISTORY = "history.csv"
CONFIG = "config.json"
METRICS = "metrics.json"
BEST = "best.keras"


def set_seed(seed):
    """Seeds Python, NumPy and the backend, so a run can be reproduced."""
    keras.utils.set_random_seed(int(seed))


def prepare_run_dir(run_dir, config, *, overwrite=False, ignore=("epochs",)):
    """Creates the run folder and writes `config.json`.

    If the folder already holds a run with a different configuration, resuming into it would
    silently mix two experiments: that is an error unless `overwrite=True` (which wipes it).
    Keys in `ignore` (e.g. a larger epoch budget) may change between resumes.
    """
    run_dir = pathlib.Path(run_dir)
    config_path = run_dir / CONFIG
    if config_path.exists() and not overwrite:
        previous = json.loads(config_path.read_text())
        changed = {
            k: (previous.get(k), v)
            for k, v in config.items()
            if k not in ignore and previous.get(k) != v
        }
        if changed:
            details = ", ".join(f"{k}: {a!r} -> {b!r}" for k, (a, b) in sorted(changed.items()))
            raise ValueError(
                f"{run_dir} already holds a run with other settings ({details}). "
                "Use another --run-dir, or --overwrite to start this one afresh."
            )
    elif overwrite and run_dir.exists():
        import shutil

        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    config_path.write_text(json.dumps(config, indent=2, sort_keys=True) + "\n")
    return run_dir


def load_config(run_dir):
    path = pathlib.Path(run_dir) / CONFIG
    if not path.exists():
        raise FileNotFoundError(
            f"{run_dir} is not a run folder (no {CONFIG}); train first, or pass the --run-dir "
            "that `train` wrote."
        )
    return json.loads(path.read_text())


def standard_callbacks(
    run_dir, *, monitor="val_loss", mode="auto", patience=3, tensorboard=True, start_from_epoch=0
):
    """Resume, best checkpoint, early stopping, TensorBoard, CSV history, NaN guard.

    `BackupAndRestore` keeps the last finished epoch's weights, optimizer state and epoch
    counter; a killed or interrupted `fit` called again with the same folder continues there.
    The backup is kept after a run finishes, so the same command with a larger `--epochs`
    extends it, and the best-checkpoint threshold starts from the best value history.csv
    already records, so a resumed run never overwrites best.keras with a worse epoch.
    `start_from_epoch` delays early stopping (for metrics that are noise at first).
    """
    run_dir = pathlib.Path(run_dir)
    maximize = mode == "max" or (mode == "auto" and any(k in monitor for k in ("acc", "auc", "bleu")))
    seen = read_history(run_dir).get(monitor)
    best_so_far = None
    if seen and (run_dir / BEST).exists():
        best_so_far = max(seen) if maximize else min(seen)
    callbacks = [
        keras.callbacks.BackupAndRestore(str(run_dir / "backup"), delete_checkpoint=False),
        keras.callbacks.ModelCheckpoint(
            str(run_dir / BEST),
            monitor=monitor,
            mode=mode,
            save_best_only=True,
            initial_value_threshold=best_so_far,
        ),
        keras.callbacks.CSVLogger(str(run_dir / HISTORY), append=True),
        keras.callbacks.TerminateOnNaN(),
    ]
    if patience:
        callbacks.append(
            keras.callbacks.EarlyStopping(
                monitor=monitor,
                mode=mode,
                patience=patience,
                restore_best_weights=True,
                start_from_epoch=start_from_epoch,
            )
        )
    if tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(str(run_dir / "logs")))
    return callbacks


def finished_epochs(run_dir):
    """How many epochs history.csv records (so a resumed run can report where it stands)."""
    return len(read_history(run_dir).get("epoch", []))


def read_history(run_dir):
    path = pathlib.Path(run_dir) / HISTORY
    if not path.exists():
        return {}
    with open(path, newline="") as f:
        rows = list(csv.DictReader(f))
    history = {}
    for row in rows:
        for key, value in row.items():
            history.setdefault(key, []).append(float(value))
    return history


def plot_learning_curves(run_dir, out=None):
    """Draws every metric in history.csv against the epoch (train and validation together)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    history = read_history(run_dir)
    names = sorted(k for k in history if k not in ("epoch", "learning_rate") and not k.startswith("val_"))
    if not names:
        return None
    fig, axes = plt.subplots(1, len(names), figsize=(4.5 * len(names), 3.5), squeeze=False)
    epochs = [e + 1 for e in history["epoch"]]
    for ax, name in zip(axes[0], names):
        ax.plot(epochs, history[name], marker="o", label="train")
        if f"val_{name}" in history:
            ax.plot(epochs, history[f"val_{name}"], marker="o", label="validation")
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    out = pathlib.Path(out or pathlib.Path(run_dir) / "curves.png")
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def write_metrics(run_dir, metrics, key=None):
    """Merges `metrics` into metrics.json (under `key` if given) and returns the whole file."""
    path = pathlib.Path(run_dir) / METRICS
    data = json.loads(path.read_text()) if path.exists() else {}
    if key is None:
        data.update(metrics)
    else:
        data[key] = metrics
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    return data


def distribution_strategy(name="default", *, custom_loop=False):
    """`tf.distribute` strategy by name: default | mirrored | multiworker | tpu.

    multiworker reads the cluster from `TF_CONFIG`; tpu resolves the TPU from the
    environment (`TPU_NAME` or a local TPU VM). Keras 3's `Model.fit` cannot drive
    MultiWorkerMirroredStrategy (keras-team/keras#20585): multiworker is refused for `fit`
    unless the caller runs its own `strategy.run` loop (`custom_loop=True`).
    """
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if not custom_loop:
            raise ValueError(
                "--strategy multiworker: Keras 3's Model.fit does not support "
                "MultiWorkerMirroredStrategy (keras-team/keras#20585, open upstream); our layers "
                "do (tests/test_distribute.py trains two workers with a strategy.run loop)"
            )
        if "TF_CONFIG" not in os.environ:
            raise ValueError("--strategy multiworker needs TF_CONFIG describing the cluster")
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(os.environ.get("TPU_NAME", ""))
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"unknown strategy {name!r}; choose default, mirrored, multiworker or tpu")


def configure_precision(mixed_precision):
    keras.mixed_precision.set_global_policy("mixed_float16" if mixed_precision else "float32")


def make_optimizer(learning_rate, clipnorm):
    return keras.optimizers.Adam(learning_rate=learning_rate, global_clipnorm=clipnorm or None)
