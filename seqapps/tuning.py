"""keras-tuner, shared by every app: one HyperModel base, one tuner factory, loud failures.

An app declares its search space next to its model:

    class SentimentHyperModel(AppHyperModel):
        def config_from(self, hp):                       # hp -> the app's model config
            return {"cell": hp.Choice("cell", ["lstm", "gru"]), ...}
        def build_from(self, config):                    # config -> compiled keras.Model
            return build_model(**config)

and `tune()` does the rest: tuner random|bayesian|hyperband, resumable searches (the search
space is fingerprinted; a changed space is said, not silently mixed), a results table in
CSV/JSON, and an error when trials fail (keras-tuner 1.4 only logs a failed trial and still
reports a "best").

Distributed tuning is keras-tuner's own chief/worker mode: `KERASTUNER_TUNER_ID` ("chief" or
"tuner0", "tuner1", ...), `KERASTUNER_ORACLE_IP`, `KERASTUNER_ORACLE_PORT`. `distributed_env`
builds those variables.
"""

import csv
import hashlib
import json
import os
import pathlib

import keras_tuner as kt

from seqapps.cli import add_tuning_arguments  # noqa: F401  (re-exported)

TUNERS = ("random", "bayesian", "hyperband")


class AppHyperModel(kt.HyperModel):
    """Turns hyperparameters into the app's config, and the config into a compiled model."""

    def config_from(self, hp):
        raise NotImplementedError

    def build_from(self, config):
        raise NotImplementedError

    def build(self, hp):
        return self.build_from(self.config_from(hp))

    def fit(self, hp, model, *args, **kwargs):
        # Hyperband injects `epochs` and `initial_epoch`; pass them through untouched. The apps
        # hand over tf.data pipelines that shuffle themselves: Keras' default shuffle=True
        # would only warn that it is ignored.
        kwargs.setdefault("shuffle", False)
        return model.fit(*args, **kwargs)


def space_fingerprint(hypermodel):
    """A hash of the search space, to detect a changed space when a search is resumed."""
    hp = kt.HyperParameters()
    hypermodel.config_from(hp)
    description = json.dumps(hp.get_config(), sort_keys=True, default=str)
    return hashlib.sha256(description.encode()).hexdigest()[:16]


def make_tuner(
    kind,
    hypermodel,
    *,
    directory,
    project_name="search",
    objective="val_loss",
    direction="min",
    max_trials=10,
    max_epochs=10,
    seed=0,
    overwrite=False,
):
    if kind not in TUNERS:
        raise ValueError(f"unknown tuner {kind!r}; choose one of {', '.join(TUNERS)}")
    directory = pathlib.Path(directory)
    fingerprint_file = directory / project_name / "space_fingerprint.txt"
    fingerprint = space_fingerprint(hypermodel)
    if fingerprint_file.exists() and not overwrite:
        if fingerprint_file.read_text().strip() != fingerprint:
            raise ValueError(
                f"the search in {directory / project_name} was started with another search "
                "space; resume it with the same options, or pass --overwrite to start afresh"
            )
    common = dict(
        objective=kt.Objective(objective, direction),
        directory=str(directory),
        project_name=project_name,
        overwrite=overwrite,
        seed=seed,
        max_consecutive_failed_trials=1,
    )
    if kind == "random":
        tuner = kt.RandomSearch(hypermodel, max_trials=max_trials, **common)
    elif kind == "bayesian":
        tuner = kt.BayesianOptimization(hypermodel, max_trials=max_trials, **common)
    else:
        tuner = kt.Hyperband(hypermodel, max_epochs=max_epochs, factor=3, **common)
    if not _is_worker():
        fingerprint_file.parent.mkdir(parents=True, exist_ok=True)
        fingerprint_file.write_text(fingerprint + "\n")
    return tuner


def _is_worker():
    return os.environ.get("KERASTUNER_TUNER_ID", "chief") != "chief"


def search(tuner, *fit_args, **fit_kwargs):
    """Runs the search and fails loudly on failed trials.

    (keras-tuner clears the Keras session before building each trial's model, so memory
    does not grow across trials.)
    """
    try:
        tuner.search(*fit_args, **fit_kwargs)
    except RuntimeError as error:  # raised by keras-tuner after too many failed trials
        raise RuntimeError(f"tuning failed: {error}") from error
    if _is_worker():
        return []  # a worker only runs trials; the chief holds the oracle and the results
    table = results_table(tuner)
    failed = [row for row in table if row["status"] in ("FAILED", "INVALID")]
    if failed:
        raise RuntimeError(
            f"{len(failed)} of {len(table)} trials failed (e.g. trial {failed[0]['trial_id']}); "
            "see the keras-tuner log above for the traceback"
        )
    if not any(row["score"] is not None for row in table):
        raise RuntimeError("no trial produced a score; nothing to report as best")
    return table


def report(tuner, table, directory):
    """Chief only: writes results.csv/json, prints the table, returns the best values."""
    write_results(directory, table)
    print("\ntrials, best first:\n" + format_table(table))
    best = tuner.get_best_hyperparameters(1)[0].values
    print(f"\nbest hyperparameters: {best}")
    return best


def best_epochs(tuner):
    """Epochs the best trial trained until its best score (keras-tuner's best_step + 1): the
    budget for retraining that configuration on train+validation, where nothing is left to
    stop early on."""
    (trial,) = tuner.oracle.get_best_trials(1)
    # Hyperband continues a trial from an earlier one's weights (`tuner/initial_epoch`);
    # best_step counts only the epochs this trial ran itself.
    initial_epoch = int(trial.hyperparameters.values.get("tuner/initial_epoch", 0))
    return initial_epoch + int(trial.best_step or 0) + 1


def retrain_best(train, export, args, best, epochs, *, has_test_split=True, **export_options):
    """Retrains the best configuration on train+validation in `<run-dir>/best` with the
    app's own `train` verb, then exports it to `<run-dir>/export`.

    `best` holds the app's `train` options to override (the tuned hyperparameters),
    `epochs` the epoch budget (see `best_epochs`). Data whose test split is its validation
    split (`has_test_split=False`) is retrained on train only, with early stopping, so that
    the test numbers stay honest. Returns what `train` returns.
    """
    import argparse

    run_dir = pathlib.Path(args.run_dir)
    options = {**vars(args), **best, "run_dir": str(run_dir / "best"), "strategy": "default"}
    if has_test_split:
        options.update(epochs=epochs, include_validation=True, patience=0)
        what = f"on train+validation for {epochs} epoch(s)"
    else:
        what = "on train only (this data's test split is its validation split)"
    print(f"\nretraining the best configuration {what} in {run_dir / 'best'}")
    result = train(argparse.Namespace(**options))
    export(argparse.Namespace(run_dir=str(run_dir / "best"), out=str(run_dir / "export"),
                              **export_options))
    return result


def results_table(tuner):
    """One row per trial: id, status, score and hyperparameter values, best first."""
    rows = []
    for trial in tuner.oracle.trials.values():
        rows.append(
            {
                "trial_id": trial.trial_id,
                "status": str(trial.status),
                "score": trial.score,
                **trial.hyperparameters.values,
            }
        )
    sign = 1 if tuner.oracle.objective.direction == "min" else -1
    rows.sort(key=lambda r: (r["score"] is None, sign * (r["score"] or 0)))
    return rows


def write_results(directory, table):
    """results.csv and results.json beside the search."""
    directory = pathlib.Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "results.json").write_text(json.dumps(table, indent=2, default=str) + "\n")
    columns = list(dict.fromkeys(k for row in table for k in row))
    with open(directory / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        writer.writerows(table)


def format_table(table, limit=10):
    if not table:
        return "(no trials)"
    columns = list(dict.fromkeys(k for row in table for k in row))
    shown = [[_fmt(row.get(c)) for c in columns] for row in table[:limit]]
    widths = [max(len(c), *(len(r[i]) for r in shown)) for i, c in enumerate(columns)]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths)) for r in shown]
    return "\n".join(lines)


def _fmt(value):
    if isinstance(value, float):
        return f"{value:.4g}"
    return "" if value is None else str(value)


def distributed_env(role, *, oracle_ip="127.0.0.1", oracle_port=8000, worker_index=0):
    """The environment keras-tuner reads for chief/worker tuning."""
    if role not in ("chief", "worker"):
        raise ValueError("role must be 'chief' or 'worker'")
    return {
        "KERASTUNER_TUNER_ID": "chief" if role == "chief" else f"tuner{worker_index}",
        "KERASTUNER_ORACLE_IP": oracle_ip,
        "KERASTUNER_ORACLE_PORT": str(oracle_port),
    }
