"""The verbs behind `python -m apps.translation`: train, evaluate, translate, export, tune.

Each verb takes the parsed `argparse.Namespace` and returns what it computed, so Python
code and tests call the same functions the command line does (`apps.translation.run`).
"""

import argparse
import json
import os
import pathlib
import sys
import time

import keras
import numpy as np

from apps.translation import DEFAULTS

MODEL_KEYS = ("cell", "units", "embedding_dim", "bidirectional", "attention", "dropout")
SOURCE_VOCAB, TARGET_VOCAB = "vocab.source.txt", "vocab.target.txt"


# --- data --------------------------------------------------------------------------------


def load_data(config):
    """`ParallelData` for a run's config, with `max_train` applied (a seeded subset)."""
    from seqapps.data import load_translation

    data = load_translation(config["pair"], data=config["data"], tokenized=not config["raw"],
                            seed=config.get("seed", 0))
    data.train = train_subset(data.train, config)
    return data


def train_subset(train, config):
    """The training pairs a run with `max_train` uses: the same seeded subset every time."""
    if config.get("max_train") and len(train) > config["max_train"]:
        rng = np.random.default_rng([config.get("seed", 0), 3])
        keep = np.sort(rng.choice(len(train), config["max_train"], replace=False))
        return [train[i] for i in keep]
    return train


def references(config, data, split):
    """`(sources, tokenized lowercase references, raw references)` of a split.

    The bundled tokenized Multi30k references are used as they are (what papers score
    against); the raw ones come from the raw files of the same split. Any other data is
    tokenized with the model's own tokenizer for the tokenized score.
    """
    from apps.translation.text import tokenize

    pairs = getattr(data, split)
    sources = [s for s, _ in pairs]
    targets = [t for _, t in pairs]
    if data.name == "multi30k":
        from seqapps.data import load_translation

        tokenized = [" ".join(t.split()) for t in targets]
        raw_pairs = getattr(load_translation(config["pair"], tokenized=False), split)
        if split == "train":
            raw_pairs = train_subset(raw_pairs, config)
        raw = [t for _, t in raw_pairs]
        if len(raw) != len(tokenized):
            raise ValueError(f"raw and tokenized Multi30k {split} splits differ in length")
        return sources, tokenized, raw
    return sources, tokenize(targets), targets


def vocabularies(run_dir, config, data):
    """The run's vocabularies: read back when resuming, else counted on the training split."""
    from apps.translation.text import build_vocabularies
    from seqapps.data import load_vocabulary, save_vocabulary

    run_dir = pathlib.Path(run_dir)
    if (run_dir / SOURCE_VOCAB).exists() and (run_dir / TARGET_VOCAB).exists():
        return load_vocabulary(run_dir / SOURCE_VOCAB), load_vocabulary(run_dir / TARGET_VOCAB)
    source, target = build_vocabularies(data.train, min_count=config["min_count"],
                                        max_tokens=config["max_vocab"])
    save_vocabulary(source, run_dir / SOURCE_VOCAB)
    save_vocabulary(target, run_dir / TARGET_VOCAB)
    return source, target


def build_from_config(config, source_vocab_size, target_vocab_size, *, jit_compile=False):
    from apps.translation.model import build_model

    return build_model(
        source_vocab_size, target_vocab_size, num_layers=config["layers"],
        learning_rate=config["learning_rate"], clipnorm=config["clipnorm"],
        label_smoothing=config["label_smoothing"], jit_compile=jit_compile,
        **{k: config[k] for k in MODEL_KEYS})


def make_translator(model, source_vocab, target_vocab, args=None):
    from apps.translation.text import make_vectorizer
    from apps.translation.translator import Translator

    options = {}
    for key in ("beam", "length_penalty", "max_source_length", "max_output_length"):
        if args is not None and getattr(args, key, None) is not None:
            options["beam_width" if key == "beam" else key] = getattr(args, key)
    return Translator(model, make_vectorizer(source_vocab), target_vocab, **options)


def load_run(run_dir, args=None):
    """`(Translator, config)` from a run folder: the best checkpoint and its vocabularies."""
    from seqapps.data import load_vocabulary
    from seqapps.training import BEST, load_config

    run_dir = pathlib.Path(run_dir)
    config = load_config(run_dir)
    if not (run_dir / BEST).exists():
        raise FileNotFoundError(f"{run_dir / BEST} not found: training has not finished an epoch yet")
    source_vocab = load_vocabulary(run_dir / SOURCE_VOCAB)
    target_vocab = load_vocabulary(run_dir / TARGET_VOCAB)
    model = build_from_config(config, len(source_vocab), len(target_vocab))
    # best.keras holds the optimizer's slots too: build them, so they load quietly.
    model.optimizer.build(model.trainable_variables)
    model.load_weights(run_dir / BEST)
    return make_translator(model, source_vocab, target_vocab, args), config


# --- training ----------------------------------------------------------------------------


class ValidationBleu(keras.callbacks.Callback):
    """Greedy tokenized BLEU on validation sentences after every epoch, logged as `val_bleu`.

    EarlyStopping / ModelCheckpoint can monitor it if it comes before them in the callback
    list (Keras hands one `logs` dict down the list).
    """

    def __init__(self, source_vocab, target_vocab, sources, references, verbose=True):
        super().__init__()
        self.vocabs = (source_vocab, target_vocab)
        self.sources, self.references, self.verbose = sources, references, verbose
        self.translator = None

    def on_train_begin(self, logs=None):
        self.translator = make_translator(self.model, *self.vocabs)

    def on_epoch_end(self, epoch, logs=None):
        from apps.translation.evaluation import tokenized_bleu

        start = time.perf_counter()
        hypotheses = self.translator.translate(self.sources, beam_width=1, tokens=True,
                                               batch_size=256)
        bleu = tokenized_bleu(hypotheses, self.references).score
        if logs is not None:
            logs["val_bleu"] = bleu
        if self.verbose:
            losses = "".join(f" {k} {logs[k]:.4f}" for k in ("loss", "val_loss") if k in (logs or {}))
            print(f"epoch {epoch + 1}:{losses} val_bleu {bleu:.2f} (greedy on {len(self.sources)} "
                  f"validation sentences, {time.perf_counter() - start:.1f}s)", flush=True)


class TimeBudget(keras.callbacks.Callback):
    """Stops training at the end of the last epoch that fits in `minutes`.

    After each epoch it predicts the next one from the longest so far, and stops if that
    would overrun. The run can be continued later with the same command.
    """

    def __init__(self, minutes):
        super().__init__()
        self.seconds = 60.0 * minutes
        self.start = self.epoch_start = None
        self.longest = 0.0

    def on_train_begin(self, logs=None):
        self.start = time.time()

    def on_epoch_begin(self, epoch, logs=None):
        self.epoch_start = time.time()

    def on_epoch_end(self, epoch, logs=None):
        now = time.time()
        self.longest = max(self.longest, now - self.epoch_start)
        if now - self.start + self.longest > self.seconds:
            print(f"time budget: stopping after epoch {epoch + 1} "
                  f"({(now - self.start) / 60:.1f} of {self.seconds / 60:.1f} minutes used)")
            self.model.stop_training = True


def training_callbacks(run_dir, monitor, patience, lr_decay=None):
    """The shared callbacks; with `--monitor val_bleu`, early stopping waits 5 epochs
    because BLEU is noise until the model starts to translate."""
    from seqapps import training

    return training.standard_callbacks(  # monitor None: a final fit, see train
        run_dir, monitor=monitor, patience=patience, lr_decay=lr_decay,
        start_from_epoch=5 if monitor == "val_bleu" else 0,
    )


def run_config(args):
    config = {k: getattr(args, k) for k in DEFAULTS}
    config.update(seed=args.seed, batch_size=args.batch_size,  # tune: the search picks the rate
                  learning_rate=getattr(args, "learning_rate", None),
                  clipnorm=args.clipnorm, monitor=args.monitor, lr_decay=args.lr_decay)
    return config


def train(args):
    """Trains into a run folder (resuming it if it already holds this run), then scores it."""
    from apps.translation import text
    from seqapps import training

    if args.monitor == "val_bleu" and not args.val_bleu_sentences:
        raise ValueError("--monitor val_bleu needs --val-bleu-sentences > 0")
    strategy = training.distribution_strategy(args.strategy)  # before any other TF op
    training.set_seed(args.seed)
    training.configure_precision(args.mixed_precision)
    config = run_config(args)
    final_fit = getattr(args, "include_validation", False)
    if final_fit:
        config["include_validation"] = True
    run_dir = training.prepare_run_dir(training.worker_run_dir(args.run_dir, strategy),
                                       {**config, "epochs": args.epochs}, overwrite=args.overwrite)
    data = load_data(config)
    if final_fit:  # train on both splits (vocabularies counted on both), nothing to validate on
        training.refuse_final_fit_without_test(data.name, data.validation, data.test)
        data.train = list(data.train) + list(data.validation)
    print(f"data: {data.name} {data.source_lang}->{data.target_lang}  train {len(data.train)}  "
          f"validation {len(data.validation)}  test {len(data.test)}")
    source_vocab, target_vocab = vocabularies(run_dir, config, data)
    print(f"vocabularies: source {len(source_vocab)}, target {len(target_vocab)} tokens "
          f"(min count {config['min_count']})")

    source_vectorizer, target_vectorizer = text.make_vectorizer(source_vocab), text.make_vectorizer(target_vocab)
    train_ds = text.batches(data.train, source_vectorizer, target_vectorizer, args.batch_size,
                            shuffle=True, max_length=config["max_length"], seed=args.seed)
    val_ds = None if final_fit else text.batches(data.validation, source_vectorizer, target_vectorizer, 128)
    with strategy.scope():
        model = build_from_config(config, len(source_vocab), len(target_vocab), jit_compile=args.jit)
    training.prepare_for_strategy(model, strategy)
    if not args.quiet:
        model.summary()

    callbacks = []
    if args.val_bleu_sentences and not final_fit:
        sources, refs, _ = references(config, data, "validation")
        n = args.val_bleu_sentences
        callbacks.append(ValidationBleu(source_vocab, target_vocab, sources[:n], refs[:n]))
    callbacks += training_callbacks(run_dir, None if final_fit else args.monitor, args.patience,
                                    config["lr_decay"])
    if getattr(args, "max_minutes", None):
        callbacks.append(TimeBudget(args.max_minutes))
    done = training.finished_epochs(run_dir)
    if done:
        print(f"resuming {run_dir}: {done} epoch(s) already finished")
    start = time.time()
    with strategy.scope():  # the batch in train_ds is the global batch, split over replicas
        model.fit(train_ds, validation_data=val_ds, epochs=args.epochs, callbacks=callbacks,
                  shuffle=False, verbose=0 if args.quiet else 1)  # tf.data reshuffles each epoch
    seconds = time.time() - start
    training.plot_learning_curves(run_dir)

    report = {"train_seconds_this_session": round(seconds, 1),
              "epochs_finished": training.finished_epochs(run_dir)}
    if args.evaluate:
        eval_args = argparse.Namespace(run_dir=str(run_dir), split="test", beam=args.beam,
                                       length_penalty=args.length_penalty, max_eval=None,
                                       max_source_length=args.max_source_length,
                                       max_output_length=args.max_output_length,
                                       batch_size=64, quiet=args.quiet)
        report["test"] = evaluate(eval_args, data=data)
    training.write_metrics(run_dir, report)
    print(f"run folder: {run_dir}")
    return report


def evaluate(args, data=None):
    """BLEU (tokenized lowercase and sacrebleu detokenized) and chrF, greedy vs beam."""
    from apps.translation.evaluation import evaluate as score_translations
    from apps.translation.evaluation import format_report
    from seqapps.training import write_metrics

    translator, config = load_run(args.run_dir, args)
    data = data or load_data(config)
    sources, refs_tok, refs_raw = references(config, data, args.split)
    if args.max_eval:
        sources, refs_tok, refs_raw = (x[: args.max_eval] for x in (sources, refs_tok, refs_raw))
    widths = sorted({1, translator.beam_width})
    reports, outputs = score_translations(translator, sources, refs_tok, refs_raw,
                                          beam_widths=widths, batch_size=args.batch_size)
    for name, out in outputs.items():
        path = pathlib.Path(args.run_dir) / f"{args.split}.{name}.txt"
        path.write_text("".join(t + "\n" for t in out["translation"]), encoding="utf-8")
    print(f"\n{args.split} split ({len(sources)} sentences), {config['attention']} attention:")
    print(format_report(reports))
    write_metrics(args.run_dir, reports, key=f"evaluate_{args.split}")
    return reports


# --- translating -------------------------------------------------------------------------


def read_sentences(args):
    """Sentences as bytes, passed on untouched: invalid UTF-8 is replaced in the graph."""
    if args.sentences:
        return [s.encode("utf-8", "surrogateescape") for s in args.sentences]
    if sys.stdin is None or sys.stdin.isatty():
        raise SystemExit("give sentences as arguments or on standard input (one per line)")
    return [line.rstrip(b"\r\n") for line in sys.stdin.buffer]


def translate(args):
    import tensorflow as tf

    sentences = read_sentences(args)
    if args.export:
        from seqapps.export import latest_version_dir

        if args.plot_attention:
            raise ValueError("--plot-attention needs --run-dir (the export returns no attention)")
        folder = latest_version_dir(args.export)
        loaded = tf.saved_model.load(str(folder))
        name = "greedy" if args.beam == 1 else "serving_default"
        exported = json.loads((folder / "metadata.json").read_text()).get("beam_width")
        if args.beam != 1 and exported is not None and args.beam != exported:
            print(f"note: this export decodes with beam width {exported} (or 1: --beam 1); "
                  f"export again with --beam {args.beam} for another width", file=sys.stderr)
        out = loaded.signatures[name](sources=tf.constant(sentences, tf.string))
        out = {k: [x.decode("utf-8") if isinstance(x, bytes) else x for x in v.numpy().tolist()]
               for k, v in out.items()}
    else:
        translator, config = load_run(args.run_dir, args)
        out = translator.translate_full(sentences)
    results = []
    for i, sentence in enumerate(sentences):
        result = {"source": sentence.decode("utf-8", "replace"),
                  "translation": out["translation"][i], "tokens": out["tokens"][i]}
        if out["truncated"][i]:
            result["warning"] = f"source cut to its first {out['source_length'][i]} tokens"
            print(f"warning: sentence {i + 1}: {result['warning']}", file=sys.stderr)
        results.append(result)
        if args.json:
            print(json.dumps(result, ensure_ascii=False))
        else:
            print(result["tokens"] if args.tokens else result["translation"])
    if args.plot_attention and sentences:
        from apps.translation.translator import plot_attention

        if config["attention"] == "none":
            raise ValueError("this run has no attention to plot (trained with --attention none)")
        source_tokens, target_tokens, weights = translator.attention_matrix(
            sentences[0], out["tokens"][0].split())
        plot_attention(source_tokens, target_tokens, weights, args.plot_attention,
                       title=f"{config['attention']} attention")
        print(f"attention plot: {args.plot_attention}", file=sys.stderr)
    return results


def export(args):
    from seqapps.training import METRICS

    translator, config = load_run(args.run_dir, args)
    metrics_path = pathlib.Path(args.run_dir) / METRICS
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    test = metrics.get("test") or metrics.get("evaluate_test") or {}
    out = translator.export(args.out, metadata={
        "app": "translation",
        "pair": config["pair"],
        "data": config["data"] or "multi30k (bundled)",
        "source_vocabulary_size": len(translator.source_vectorizer.get_vocabulary()),
        "target_vocabulary_size": len(translator.target_vocabulary),
        "config": config,
        "metrics": {name: {k: v for k, v in r.items() if not isinstance(v, dict)}
                    for name, r in test.items()},
        "signatures": {"serving_default": f"beam search, width {translator.beam_width}",
                       "greedy": "greedy decoding"},
    })
    print(f"exported to {out}")
    print(f"try: saved_model_cli run --dir {out} --tag_set serve --signature_def serving_default "
          "--input_exprs 'sources=[\"a man is riding a bike .\"]'")
    return out


# --- tuning ------------------------------------------------------------------------------


def tune(args):
    """keras-tuner over cell, units, layers, attention, dropout, embedding size, lr."""
    from apps.translation import text
    from seqapps import training, tuning

    if args.distributed:
        os.environ.update(tuning.distributed_env(
            args.distributed, oracle_ip=args.oracle_ip, oracle_port=args.oracle_port,
            worker_index=args.worker_index))
    training.set_seed(args.seed)
    training.configure_precision(args.mixed_precision)
    base = run_config(args)
    data = load_data(base)
    pathlib.Path(args.run_dir).mkdir(parents=True, exist_ok=True)
    source_vocab, target_vocab = text.build_vocabularies(
        data.train, min_count=base["min_count"], max_tokens=base["max_vocab"])
    source_vectorizer, target_vectorizer = text.make_vectorizer(source_vocab), text.make_vectorizer(target_vocab)

    class TranslationHyperModel(tuning.AppHyperModel):
        def config_from(self, hp):
            return {
                **base,
                "cell": hp.Choice("cell", ["gru", "lstm"]),
                "units": hp.Choice("units", [128, 256, 512]),
                "layers": hp.Int("layers", 1, 2),
                "attention": hp.Choice("attention", ["luong", "bahdanau", "none"]),
                "dropout": hp.Float("dropout", 0.0, 0.5, step=0.1),
                "embedding_dim": hp.Choice("embedding_dim", [128, 256]),
                "learning_rate": hp.Float("learning_rate", 3e-4, 3e-3, sampling="log"),
            }

        def build_from(self, config):
            return build_from_config(config, len(source_vocab), len(target_vocab), jit_compile=args.jit)

    tuner = tuning.make_tuner(
        args.tuner, TranslationHyperModel(), directory=args.run_dir, objective=args.objective,
        direction=args.direction, max_trials=args.max_trials, max_epochs=args.epochs,
        seed=args.seed, overwrite=args.overwrite)
    train_ds = text.batches(data.train, source_vectorizer, target_vectorizer, args.batch_size,
                            shuffle=True, max_length=base["max_length"], seed=args.seed)
    val_ds = text.batches(data.validation, source_vectorizer, target_vectorizer, 128)
    callbacks = []
    if args.objective == "val_bleu":
        if not args.val_bleu_sentences:
            raise ValueError("--objective val_bleu needs --val-bleu-sentences > 0")
        sources, refs, _ = references(base, data, "validation")
        n = args.val_bleu_sentences
        callbacks.append(ValidationBleu(source_vocab, target_vocab, sources[:n], refs[:n],
                                        verbose=not args.quiet))
    if args.patience:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=args.objective, mode=args.direction, patience=args.patience))
    table = tuning.search(tuner, train_ds, validation_data=val_ds, epochs=args.epochs,
                          callbacks=callbacks, verbose=0 if args.quiet else 1)
    if args.distributed == "worker":
        return table
    best = tuning.report(tuner, table, args.run_dir)
    if args.no_retrain:
        return table
    tuning.retrain_best(train, export, args, best, tuning.best_epochs(tuner),
                        has_test_split=not training.same_split(data.validation, data.test), beam=args.beam, length_penalty=args.length_penalty,
                        max_source_length=args.max_source_length,
                        max_output_length=args.max_output_length)
    return table
