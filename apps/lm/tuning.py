"""keras-tuner search for the RNN language model: cell, units, layers, dropout, BPTT length and
learning rate. The BPTT length changes the data, so the HyperModel's `fit` windows the corpus
itself; states are reset at every epoch and evaluation as in `train`. The best configuration
is then retrained on train+validation in `<run-dir>/best` (unless --no-retrain) with the
ordinary `train`, for as many epochs as the best trial needed, and exported to `<run-dir>/export`."""

import os
import pathlib

from apps.lm import commands
from apps.lm.corpus import load_corpus
from seqapps import training, tuning


class LanguageModelHyperModel(tuning.AppHyperModel):
    def __init__(self, corpus, base, steps_per_epoch=None):
        super().__init__()
        self.corpus, self.base, self.steps_per_epoch = corpus, base, steps_per_epoch

    def config_from(self, hp):
        big = self.base["level"] == "char"
        options = {k: v for k, v in self.base.items() if k not in ("level", "vocab_size")}
        return commands.resolve_config(
            self.base["level"], self.base["vocab_size"],
            **{**options, "cell": hp.Choice("cell", ["lstm", "gru", "simple"]),
               "units": hp.Choice("units", [256, 512] if big else [128, 200, 400]),
               "layers": hp.Int("layers", 1, 3),
               "dropout": hp.Float("dropout", 0.0, 0.5, step=0.1),
               "bptt": hp.Choice("bptt", [50, 100, 150] if big else [20, 35, 70]),
               "learning_rate": hp.Float("learning_rate", 3e-4, 3e-3, sampling="log"),
               "optimizer": "adam", "clipnorm": 5.0, "embedding_dim": None},
        )

    def build_from(self, config):
        return commands.build_training_model(config)

    def fit(self, hp, model, *args, **kwargs):
        config = self.config_from(hp)
        train = commands.windows(self.corpus.train, config, drop_remainder=True)
        if self.steps_per_epoch:
            train = train.take(self.steps_per_epoch)
        validation = commands.windows(self.corpus.validation, config, drop_remainder=False)
        kwargs["callbacks"] = [commands.ResetStates(), *kwargs.get("callbacks", [])]
        return model.fit(train, validation_data=validation, **{"shuffle": False, **kwargs})


def tune(run_dir, data=None, *, level=None, tuner="random", max_trials=10, epochs=2, steps_per_epoch=None,
         objective="val_loss", direction="min", seed=0, overwrite=False, retrain=True, retrain_epochs=None,
         quiet=False, encoding=None):
    """Runs the search in `run_dir/search`, writes results.csv/json, retrains the best."""
    data = data or "ptb"
    corpus = load_corpus(data, level=level, encoding=encoding)
    base = dict(data=str(data), model="rnn", min_count=1, max_vocab=None, seed=seed, level=corpus.codec.level,
                vocab_size=corpus.codec.vocab_size, tie_weights=False, lr_decay=1.0)
    hypermodel = LanguageModelHyperModel(corpus, base, steps_per_epoch)
    run_dir = pathlib.Path(run_dir)
    search_tuner = tuning.make_tuner(tuner, hypermodel, directory=run_dir, project_name="search",
                                     objective=objective, direction=direction, max_trials=max_trials,
                                     max_epochs=epochs, seed=seed, overwrite=overwrite)
    table = tuning.search(search_tuner, epochs=epochs, verbose=training.progress_verbosity(quiet))
    if os.environ.get("KERASTUNER_TUNER_ID", "chief") != "chief":
        return table, None  # a worker only runs trials; the chief reports
    tuning.write_results(run_dir, table)
    print(tuning.format_table(table))
    if not retrain:
        return table, None
    best = hypermodel.config_from(search_tuner.get_best_hyperparameters(1)[0])
    keys = ("cell", "units", "layers", "dropout", "bptt", "learning_rate", "optimizer", "clipnorm")
    if not corpus.has_test:  # e.g. tiny-shakespeare, cut 90/10
        final = dict(epochs=retrain_epochs, lr_decay=0.5)
        print(f"\nretraining the best configuration on train only ({corpus.name} has no test split of "
              f"its own) in {run_dir / 'best'}")
    else:
        epochs = retrain_epochs or tuning.best_epochs(search_tuner)
        final = dict(epochs=epochs, lr_decay=1.0, include_validation=True)  # nothing to decay on
        print(f"\nretraining the best configuration on train+validation for {epochs} epoch(s) "
              f"in {run_dir / 'best'}")
    metrics = commands.train(run_dir / "best", data, level=corpus.codec.level, tie_weights=False,
                             quiet=quiet, seed=seed, encoding=encoding, **final, **{k: best[k] for k in keys})
    commands.export(run_dir / "best", run_dir / "export")
    return table, metrics


def tune_from_args(args):
    if args.distributed:
        os.environ.update(tuning.distributed_env(args.distributed, oracle_ip=args.oracle_ip,
                                                 oracle_port=args.oracle_port, worker_index=args.worker_index))
    return tune(args.run_dir, args.data, level=args.level, tuner=args.tuner, max_trials=args.max_trials,
                epochs=args.epochs, steps_per_epoch=args.steps_per_epoch, objective=args.objective,
                direction=args.direction, seed=args.seed, overwrite=args.overwrite, retrain=not args.no_retrain,
                retrain_epochs=args.retrain_epochs, encoding=args.encoding)
