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
import sys

import keras

from seqapps.cli import PRECISIONS, add_training_arguments, metric_direction  # noqa: F401  (add_training_arguments: re-exported)

HISTORY = "history.csv"
CONFIG = "config.json"
METRICS = "metrics.json"
BEST = "best.keras"


def progress_verbosity(quiet, stream=None):
    """Keras' `verbose=` for fit/evaluate: 0 when `quiet`; 1 (the progress bar, redrawn in
    place) when `stream` (default stdout) is an interactive terminal; 2 (one line per epoch)
    when it is a file or a pipe, where a progress bar leaves one line per redraw."""
    if quiet:
        return 0
    stream = sys.stdout if stream is None else stream
    try:
        interactive = stream.isatty()
    except (AttributeError, ValueError):  # no isatty, or closed
        interactive = False
    return 1 if interactive else 2


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
        # Over the keys of both: a key only one side has (e.g. `include_validation`, written
        # only when true) is a change too.
        changed = {
            k: (previous.get(k), config.get(k))
            for k in previous.keys() | config.keys()
            if k not in ignore and previous.get(k) != config.get(k)
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
    run_dir, *, monitor="val_loss", mode="auto", patience=3, tensorboard=True, start_from_epoch=0,
    lr_decay=None, lr_decay_min_delta=0.0, stop_min_lr=0.0, seed=None, shuffled=(),
):
    """Resume, best checkpoint, early stopping, TensorBoard, CSV history, NaN guard.

    `BackupAndRestore` keeps the last finished epoch's weights, optimizer state and epoch
    counter; a killed or interrupted `fit` called again with the same folder continues there.
    The backup is kept after a run finishes, so the same command with a larger `--epochs`
    extends it, and the best-checkpoint threshold starts from the best value history.csv
    already records, so a resumed run never overwrites best.keras with a worse epoch.
    `start_from_epoch` delays early stopping (for metrics that are noise at first).
    `lr_decay` (< 1) multiplies the learning rate by itself after every epoch whose `monitor`
    did not improve (the optimizer's learning rate is part of the backup, so a resumed run
    keeps its decayed rate); an improvement smaller than `lr_decay_min_delta` counts as none
    (on a loss in nats, 0.01 is a 1 % perplexity gain), which decays earlier on a slow slope.
    `stop_min_lr` (> 0): training stops after the epoch whose decay took the rate below it.
    `monitor=None` (no validation data: a final fit on train+validation) keeps the last
    epoch as best.keras, never stops early and never decays.
    `seed` (the run's --seed) adds `EpochSeeds(seed, shuffled)` first: dropout, the global
    random streams and the reshuffling of the `shuffled` datasets (the training data) then
    depend on (seed, epoch) only, so a resumed run gives the uninterrupted run's history.
    Early stopping and the decay resume from the best value and the epochs waited that
    history.csv records (`replay_best`), so a resumed run also stops where the uninterrupted
    one would have.
    """
    run_dir = pathlib.Path(run_dir)
    seeds = [] if seed is None else [EpochSeeds(seed, shuffled)]
    if monitor is None:
        return seeds + [
            keras.callbacks.BackupAndRestore(str(run_dir / "backup"), delete_checkpoint=False),
            keras.callbacks.ModelCheckpoint(str(run_dir / BEST)),  # every epoch: the last wins
            keras.callbacks.CSVLogger(str(run_dir / HISTORY), append=True),
            keras.callbacks.TerminateOnNaN(),
        ] + ([keras.callbacks.TensorBoard(str(run_dir / "logs"))] if tensorboard else [])
    maximize = mode == "max" or (mode == "auto" and metric_direction(monitor) == "max")
    mode = "max" if maximize else "min"
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
    if lr_decay and lr_decay < 1:
        # First in the list, so that the backup taken at the same epoch end holds the decayed
        # rate; and it starts from the best value already recorded, as if never interrupted.
        # (The best value as the decay saw it: with min_delta, a smaller gain did not count.)
        callbacks.insert(0, DecayOnPlateau(
            best_so_far=replay_best(run_dir, monitor, maximize=maximize, min_delta=lr_decay_min_delta)[0],
            monitor=monitor, mode=mode, factor=lr_decay, patience=0, min_delta=lr_decay_min_delta,
            min_lr=1e-6, verbose=1, stop_below=stop_min_lr))
    if patience:
        callbacks.append(
            ResumedEarlyStopping(
                replay_best(run_dir, monitor, maximize=maximize, start_from_epoch=start_from_epoch),
                monitor=monitor,
                mode=mode,
                patience=patience,
                restore_best_weights=True,
                start_from_epoch=start_from_epoch,
            )
        )
    if tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(str(run_dir / "logs")))
    return seeds + callbacks


def replay_best(run_dir, monitor, *, maximize, min_delta=0.0, start_from_epoch=0):
    """`(best, best_epoch, wait)` as Keras' EarlyStopping / ReduceLROnPlateau would hold them
    after the epochs history.csv records: the best value counts only gains beyond
    `min_delta`, epochs before `start_from_epoch` are passed over, and `wait` is the number
    of epochs since the best. `(None, 0, 0)` for a run with no such epochs."""
    path = pathlib.Path(run_dir) / HISTORY
    best, best_epoch, wait = None, 0, 0
    if not path.exists():
        return best, best_epoch, wait
    with open(path, newline="") as f:
        for row in csv.DictReader(f):
            value, epoch = row.get(monitor), int(float(row.get("epoch") or 0))
            if value in (None, "", "NA") or epoch < start_from_epoch:
                continue
            value = float(value)
            wait += 1
            better = best is None or (value - min_delta > best if maximize else value + min_delta < best)
            if better:
                best, best_epoch, wait = value, epoch, 0
    return best, best_epoch, wait


class ResumedEarlyStopping(keras.callbacks.EarlyStopping):
    """`EarlyStopping` that, in a resumed run, starts from the best value and the epochs
    waited since, as history.csv records them (`replay_best`), so an interrupted run stops
    at the epoch the uninterrupted one would have. A run that had already run out of
    patience (it stopped early, and is now given a larger --epochs) gets its full patience
    again from that best value. The best weights of the earlier session are best.keras."""

    def __init__(self, replayed=(None, 0, 0), **kwargs):
        super().__init__(**kwargs)
        self.replayed = replayed

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        best, best_epoch, wait = self.replayed
        if best is not None:
            self.best, self.best_epoch = best, best_epoch
            self.wait = wait if wait < self.patience else 0


class DecayOnPlateau(keras.callbacks.ReduceLROnPlateau):
    """`ReduceLROnPlateau` that, in a resumed run, compares with the best value so far, and
    with `stop_below` > 0 ends training after the epoch whose decay took the rate below it
    (a run resumed below it stops after one epoch)."""

    def __init__(self, best_so_far=None, stop_below=0.0, **kwargs):
        super().__init__(**kwargs)
        self.best_so_far = best_so_far
        self.stop_below = float(stop_below or 0.0)

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        if self.best_so_far is not None:
            self.best = self.best_so_far

    def on_epoch_end(self, epoch, logs=None):
        super().on_epoch_end(epoch, logs)
        rate = float(keras.ops.convert_to_numpy(self.model.optimizer.learning_rate))
        if self.stop_below and rate < self.stop_below:
            print(f"learning rate {rate:.2g} is below --stop-min-lr {self.stop_below:g}: "
                  f"stopping after epoch {epoch + 1}")
            self.model.stop_training = True


def epoch_seed(seed, epoch, stream=0):
    """A 31-bit seed derived from `(seed, epoch, stream)` alone (NumPy's SeedSequence)."""
    import numpy as np

    entropy = [int(seed) & 0xFFFFFFFF, int(epoch), int(stream)]
    return int(np.random.SeedSequence(entropy).generate_state(1)[0] >> 1)


class EpochSeeds(keras.callbacks.Callback):
    """Makes a resumed run draw the same random numbers as the uninterrupted one.

    Without it, a run resumed at epoch k restarts every random stream where a fresh process
    starts them: dropout masks (Keras keeps SeedGenerator states out of the weights, so
    BackupAndRestore does not restore them) and the tf.data reshuffling, whose order for an
    epoch is drawn each time an iterator over the dataset is opened in this process.

    At the beginning of every epoch it reseeds Python, NumPy, TensorFlow's global seed and
    Keras' global SeedGenerator from `epoch_seed(seed, epoch)`, and every SeedGenerator of
    the model (the dropout layers' and the recurrent cells' masks) from
    `epoch_seed(seed, epoch, i)`: each epoch's dropout depends on (seed, epoch) only.
    For each dataset in `shuffled` (the training data, `shuffle(..., seed=...,
    reshuffle_each_iteration=True)` inside), a fit that starts at epoch k > 0 in a process
    that has not iterated that dataset yet first opens and drops as many iterators as Keras
    opened during epochs 0..k-1 of the uninterrupted run (`keras_iterators_before`), so that
    epoch k gets the order it had there. Limits: the count is Keras 3.15's (tests/
    test_training.py checks it); a dataset already fitted on in this process is not
    advanced; a dataset iterated with `steps_per_epoch` (one iterator across epochs) or
    cloned by a multi-device strategy keeps its own order.
    """

    def __init__(self, seed, shuffled=()):
        super().__init__()
        self.seed = int(seed)
        self.shuffled = list(shuffled) if isinstance(shuffled, (list, tuple)) else [shuffled]
        self._fitted = set()  # ids of the datasets this callback has already trained on
        self._first_epoch = True

    def on_train_begin(self, logs=None):
        self._first_epoch = True

    def on_epoch_begin(self, epoch, logs=None):
        if self._first_epoch:
            self._first_epoch = False
            for dataset in self.shuffled:
                if id(dataset) not in self._fitted:
                    self._fitted.add(id(dataset))
                    for _ in range(keras_iterators_before(epoch, int(dataset.cardinality()) >= 0)):
                        iter(dataset)  # opening an iterator draws the next reshuffle seed
        keras.utils.set_random_seed(epoch_seed(self.seed, epoch))
        for i, state in enumerate(seed_generator_states(self.model)):
            state.assign(keras.ops.convert_to_tensor([epoch_seed(self.seed, epoch, i + 1), 0], state.dtype))


def keras_iterators_before(epoch, known_size):
    """How many iterators Keras 3.15's `fit` (no `steps_per_epoch`) opens over the training
    data before the one of `epoch`, as measured: two per epoch when the dataset knows its
    number of batches (one at the epoch's start, and one at its end, which
    `EpochIterator._enumerate_iterator` opens and the next start replaces), one per epoch
    when it does not."""
    return max(0, epoch) * (2 if known_size else 1)


def seed_generator_states(model):
    """The state variables of every `keras.random.SeedGenerator` in `model`, in layer order."""
    states, seen = [], set()
    for layer in model._flatten_layers(include_self=True):
        for generator in getattr(layer, "_seed_generators", []):
            if id(generator.state) not in seen:
                seen.add(id(generator.state))
                states.append(generator.state)
    return states


def member_dirs(run_dir, config):
    """The folders of an ensemble's members: the run folder itself (the first), then
    `members/1`, `members/2`, ... (`--ensemble K` in config.json; one model: the run folder
    alone). Each member is a run of its own (checkpoints, history, resume) with seed SEED+i."""
    run_dir = pathlib.Path(run_dir)
    return [run_dir] + [run_dir / "members" / str(i) for i in range(1, int(config.get("ensemble") or 1))]


def start_members(members, base_seed):
    """Yield `(i, member_dir, seed)` for each member in turn, trained one after the other: the
    member's folder made, its seed SEED+i set, and (for more than one) its place printed."""
    for i, member_dir in enumerate(members):
        if len(members) > 1:
            print(f"ensemble member {i + 1} of {len(members)}: {member_dir}")
        seed = base_seed + i
        set_seed(seed)
        member_dir.mkdir(parents=True, exist_ok=True)
        yield i, member_dir, seed


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
            # CSVLogger writes NA in the val_ columns it adds when there is no validation
            if value not in ("NA", ""):
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
        if len(history.get(f"val_{name}", [])) == len(epochs):
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


def distribution_strategy(name="default"):
    """`tf.distribute` strategy by name: default | mirrored | multiworker | tpu.

    multiworker reads the cluster from `TF_CONFIG` and, like every collective strategy, must
    be created before TensorFlow runs its first op: the apps create it first thing in
    `train`. tpu resolves the TPU from the environment (`TPU_NAME` or a local TPU VM).
    Models trained with `fit` under multiworker also need `prepare_for_strategy`.
    """
    import tensorflow as tf

    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multiworker":
        if "TF_CONFIG" not in os.environ:
            raise ValueError(
                "--strategy multiworker needs TF_CONFIG describing the cluster, e.g. "
                '{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                '"task": {"type": "worker", "index": 0}} (README, "Scaling out")'
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    if name == "tpu":
        resolver = tf.distribute.cluster_resolver.TPUClusterResolver(os.environ.get("TPU_NAME", ""))
        tf.config.experimental_connect_to_cluster(resolver)
        tf.tpu.experimental.initialize_tpu_system(resolver)
        return tf.distribute.TPUStrategy(resolver)
    raise ValueError(f"unknown strategy {name!r}; choose default, mirrored, multiworker or tpu")


def _task():
    """(type, index) of this process in TF_CONFIG's cluster, or None outside a cluster."""
    task = json.loads(os.environ.get("TF_CONFIG") or "{}").get("task")
    return (task.get("type", "worker"), int(task.get("index", 0))) if task else None


def is_chief():
    """True for the process that owns the run folder: the chief, else worker 0, else alone."""
    task = _task()
    if task is None or task[0] == "chief":
        return True
    cluster = json.loads(os.environ["TF_CONFIG"]).get("cluster", {})
    return task == ("worker", 0) and "chief" not in cluster


def worker_run_dir(run_dir, strategy):
    """The run folder this process writes.

    Under MultiWorkerMirroredStrategy the chief writes `run_dir` and every other worker a
    complete folder of its own beside it, `<run_dir>.<type>-<index>`, so that workers sharing
    a file system never overwrite each other's checkpoints, each can resume from its own
    backup, and the chief's `--overwrite` (which empties `run_dir`) never touches theirs.
    Any other strategy: `run_dir`, whatever TF_CONFIG says.
    """
    import tensorflow as tf

    run_dir = pathlib.Path(run_dir)
    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy) or is_chief():
        return run_dir
    kind, index = _task()
    return run_dir.with_name(f"{run_dir.name}.{kind}-{index}")


def same_split(first, second):
    """True when two splits hold the same examples (a data set with one held-out part uses it
    as both validation and test)."""
    import numpy as np

    if isinstance(first, np.ndarray) or isinstance(second, np.ndarray):
        return np.array_equal(np.asarray(first), np.asarray(second))
    return list(first) == list(second)


def refuse_final_fit_without_test(data_name, validation, test):
    """`--include-validation` would train on the test data when validation *is* test."""
    if same_split(validation, test):
        raise ValueError(
            f"--include-validation: {data_name} has no test split of its own (its test split is "
            "its validation split), so training on validation would train on the test data"
        )


def prepare_for_strategy(model, strategy):
    """Lets `model.fit/evaluate` run under MultiWorkerMirroredStrategy; a no-op otherwise.

    Call `fit` inside `with strategy.scope():`. Keras 3.15 trips twice on this strategy
    (keras-team/keras#20585), and both are worked around here, at the one place they
    matter:
    1. `fit` all-reduces the first input batch to build the model symbolically, which the
       collective all-reduce cannot do for integer token ids. The model is already built
       (in the strategy's scope), so that build is skipped: with no strategy recorded on the
       model, Keras takes the one of the enclosing scope.
    2. Keras averages the step's metric values across workers with a MEAN over axis 0,
       which fails for scalars: the steps return them as [1]-shaped tensors, which that
       average turns back into scalars.
    tests/test_distribute.py trains the sentiment app this way on two workers (loopback).
    """
    import tensorflow as tf

    if not isinstance(strategy, tf.distribute.MultiWorkerMirroredStrategy):
        return model
    model._distribute_strategy = None  # (1)

    def rank_one(step):
        def wrapped(data):
            return {name: tf.reshape(value, [1]) for name, value in step(data).items()}  # (2)

        return wrapped

    model.train_step = rank_one(model.train_step)
    model.test_step = rank_one(model.test_step)
    return model


def configure_precision(mixed_precision):
    """Sets Keras' global dtype policy for `--mixed-precision` and returns its name.

    "off" (or False/None): float32. "float16"/"bfloat16": that compute dtype with float32
    weights. "auto" (or True): the 16-bit type this machine computes fastest — float16 on a
    GPU, bfloat16 on a TPU or on a CPU with bfloat16 instructions; float32 on other CPUs,
    where TensorFlow emulates both 16-bit types and they run slower than float32.
    """
    choice = {True: "auto", False: "off", None: "off"}.get(mixed_precision, mixed_precision)
    if choice == "auto":
        choice = _fastest_half_precision()
        if choice == "off":
            print("mixed precision: this CPU has no bfloat16 instructions; training in float32")
    if choice not in PRECISIONS:  # "auto" is resolved above
        raise ValueError(f"--mixed-precision must be off, auto, float16 or bfloat16, not {mixed_precision!r}")
    policy = "float32" if choice == "off" else f"mixed_{choice}"
    if policy != "float32":
        print(f"mixed precision: computing in {choice} with float32 weights")
    keras.mixed_precision.set_global_policy(policy)
    return policy


def _fastest_half_precision():
    import tensorflow as tf

    if tf.config.list_logical_devices("GPU"):
        return "float16"
    if tf.config.list_logical_devices("TPU") or cpu_has_bfloat16():
        return "bfloat16"
    return "off"


def cpu_has_bfloat16(cpuinfo="/proc/cpuinfo"):
    """True when the CPU advertises bfloat16 arithmetic that oneDNN uses for matmuls
    (x86 AVX512-BF16 or AMX-BF16; Arm BF16). Read from /proc/cpuinfo: Linux only."""
    try:
        flags = set(pathlib.Path(cpuinfo).read_text().split())
    except OSError:
        return False
    return bool(flags & {"avx512_bf16", "amx_bf16", "bf16"})


def make_optimizer(learning_rate, clipnorm):
    return keras.optimizers.Adam(learning_rate=learning_rate, global_clipnorm=clipnorm or None)
