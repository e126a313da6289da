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
    """`TranslationData` for a run's config, with `max_train` applied (a seeded subset)."""
    from seqapps.data import load_translation
    from seqapps.data.readers import skipping_bad_lines

    # Its own skipping block: skipped lines are reported before training starts.
    with skipping_bad_lines(config.get("skip_bad_lines", False)):
        data = load_translation(config["pair"], data=config["data"], tokenized=not config["raw"],
                                seed=config.get("seed", 0), encoding=config.get("encoding") or "utf-8")
    data.train = train_subset(data.train, config)
    return data


def train_subset(train, config):
    """The training pairs a run with `max_train` uses: the same seeded subset every time."""
    if config.get("max_train") and len(train) > config["max_train"]:
        rng = np.random.default_rng([config.get("seed", 0), 3])
        keep = np.sort(rng.choice(len(train), config["max_train"], replace=False))
        return [train[i] for i in keep]
    return train


def references(config, data, split, test=None):
    """The sentences to translate and the references to score them against.

    Returns `{"sources": [...], "raw": [...] or None, "tokenized": [...] or None,
    "files": {"source": path, "raw": path or None, "tokenized": path or None}}`.
    The references are the test set's own files exactly as given, never re-tokenized
    (a subword run is scored on the raw ones only: its tokens are pieces):
    the target file of the split (raw or tokenized, see `seqapps.data.translation_sets`)
    and, where the data has one, the same split's file in the other form (Multi30k's
    `raw/` beside `tok/`). `test`: "SRC_FILE,TGT_FILE" or the name of a test set in the
    data folder (`evaluate --test`), instead of the split.
    """
    from seqapps.data import read_parallel
    from seqapps.data.translation_sets import load_test_set

    encoding = config.get("encoding") or "utf-8"
    if test:
        pairs, files = load_test_set(config["pair"], test, data=config["data"],
                                     tokenized=not config["raw"], encoding=encoding)
    else:
        pairs, files = getattr(data, split), getattr(data, "files", {}).get(split)
    files = files or {"tokenized": False}
    sources = [s for s, _ in pairs]
    forms = {"raw": None, "tokenized": None}
    paths = {"source": files.get("source"), "raw": None, "tokenized": None}
    mine = "tokenized" if files.get("tokenized") else "raw"
    forms[mine], paths[mine] = [t for _, t in pairs], files.get("target")
    other = None if files.get("carved") else files.get("other")
    if other is not None:
        other_pairs = read_parallel(files["source"], other, encoding)
        if split == "train" and not test:
            other_pairs = train_subset(other_pairs, config)
        if len(other_pairs) != len(pairs):
            raise ValueError(f"{files['target']} and {other} hold different numbers of "
                             "sentence pairs; expected the same split in two forms")
        kind = "raw" if mine == "tokenized" else "tokenized"
        forms[kind], paths[kind] = [t for _, t in other_pairs], other
    if is_subword(config) and forms["raw"] is not None:
        # A subword model's tokens are pieces, not the tokenized references' words: its
        # tokenized lowercased BLEU is sacreBLEU's (13a, lowercased) on the raw references.
        forms["tokenized"], paths["tokenized"] = None, None
    paths = {k: (None if v is None else str(v)) for k, v in paths.items()}
    return {"sources": sources, **forms, "files": {**paths, "carved": bool(files.get("carved"))}}


class Texts:
    """A run's text side: the source and target vectorizers (strings -> ids, in tf.data and
    in the translator's graph) and the target vocabulary (id -> token or piece).

    Subword path (`--vocab subword`, the default): one SentencePiece model per language
    learned on the raw training text (`subword.source.model`, `subword.target.model`; the
    pieces are also written to the vocab files, for people). Word path (`--vocab word`): one
    `TextVectorization` per language over the words counted on the training split
    (`vocab.source.txt`, `vocab.target.txt`).
    """

    def __init__(self, source, target, subword, target_vocabulary=None):
        self.source_vectorizer, self.target_vectorizer, self.subword = source, target, subword
        self.target_vocabulary = list(target_vocabulary or target.get_vocabulary())

    @property
    def sizes(self):
        return len(self.source_vectorizer.get_vocabulary()), len(self.target_vocabulary)

    def translator(self, model, args=None):
        from apps.translation.translator import Translator

        options = {}
        for key in ("beam", "length_penalty", "max_source_length", "max_output_length"):
            if args is not None and getattr(args, key, None) is not None:
                options["beam_width" if key == "beam" else key] = getattr(args, key)
        if self.subword:
            options["target_detokenizer"] = self.target_vectorizer
        return Translator(model, self.source_vectorizer, self.target_vocabulary, **options)


def is_subword(config):
    return config.get("vocab", "word") == "subword"


def texts(config, data=None, run_dir=None):
    """The run's `Texts`: read back from `run_dir` when it has them, else learned on the
    training split of `data` (and saved into `run_dir`, if given)."""
    from apps.translation import text
    from seqapps.data import load_vocabulary, save_vocabulary

    run_dir = None if run_dir is None else pathlib.Path(run_dir)
    if is_subword(config):
        paths = None if run_dir is None else {k: run_dir / v for k, v in text.SUBWORD_MODELS.items()}
        if paths and all(p.exists() for p in paths.values()):
            protos = {k: p.read_bytes() for k, p in paths.items()}
        else:
            if data is None:
                raise FileNotFoundError(f"{run_dir}: no {text.SUBWORD_MODELS['source']}")
            sources, targets = zip(*data.train)
            size = config.get("subword_vocab_size") or text.SUBWORD_VOCAB_SIZE
            protos = {"source": text.train_subword_model(sources, size),
                      "target": text.train_subword_model(targets, size)}
            if paths:
                for side, proto in protos.items():
                    paths[side].write_bytes(proto)
        result = Texts(text.SubwordVectorizer(protos["source"], name="source_subwords"),
                       text.SubwordVectorizer(protos["target"], name="target_subwords"), True)
        if run_dir is not None and not (run_dir / SOURCE_VOCAB).exists():
            save_vocabulary(result.source_vectorizer.get_vocabulary(), run_dir / SOURCE_VOCAB)
            save_vocabulary(result.target_vocabulary, run_dir / TARGET_VOCAB)
        return result
    if run_dir is not None and (run_dir / SOURCE_VOCAB).exists() and (run_dir / TARGET_VOCAB).exists():
        source, target = load_vocabulary(run_dir / SOURCE_VOCAB), load_vocabulary(run_dir / TARGET_VOCAB)
    else:
        if data is None:
            raise FileNotFoundError(f"{run_dir}: no {SOURCE_VOCAB}")
        source, target = text.build_vocabularies(data.train, min_count=config["min_count"],
                                                 max_tokens=config["max_vocab"])
        if run_dir is not None:
            save_vocabulary(source, run_dir / SOURCE_VOCAB)
            save_vocabulary(target, run_dir / TARGET_VOCAB)
    return Texts(text.make_vectorizer(source), text.make_vectorizer(target), False, target)


def build_from_config(config, source_vocab_size, target_vocab_size, *, jit_compile=False):
    from apps.translation.model import build_model

    return build_model(
        source_vocab_size, target_vocab_size, num_layers=config["layers"],
        learning_rate=config["learning_rate"], clipnorm=config["clipnorm"],
        label_smoothing=config["label_smoothing"], jit_compile=jit_compile,
        **{k: config[k] for k in MODEL_KEYS})


def load_run(run_dir, args=None):
    """`(Translator, config)` from a run folder: the best checkpoint and its vocabularies
    (an ensemble: every member's best checkpoint, decoding as one)."""
    from apps.translation.ensemble import Ensemble
    from seqapps.training import BEST, load_config, member_dirs

    run_dir = pathlib.Path(run_dir)
    config = load_config(run_dir)
    paths = [d / BEST for d in member_dirs(run_dir, config)]
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: training has not finished an epoch yet")
    run_texts = texts(config, run_dir=run_dir)
    models = []
    for path in paths:
        model = build_from_config(config, *run_texts.sizes)
        # best.keras holds the optimizer's slots too: build them, so they load quietly.
        model.optimizer.build(model.trainable_variables)
        model.load_weights(path)
        models.append(model)
    model = models[0] if len(models) == 1 else Ensemble(models)
    return run_texts.translator(model, args), config


# --- training ----------------------------------------------------------------------------


class ValidationBleu(keras.callbacks.Callback):
    """Greedy tokenized lowercased BLEU (`bleu_tok_lc` of `evaluation.score`) on validation
    sentences after every epoch, logged as `val_bleu`.

    `refs`: what `references` returns (cut to the sentences to translate).
    EarlyStopping / ModelCheckpoint can monitor it if it comes before them in the callback
    list (Keras hands one `logs` dict down the list).
    """

    def __init__(self, run_texts, refs, verbose=True):
        super().__init__()
        self.texts = run_texts
        self.refs, self.verbose = refs, verbose
        self.sources = refs["sources"]
        self.translator = None

    def on_train_begin(self, logs=None):
        self.translator = self.texts.translator(self.model)

    def on_epoch_end(self, epoch, logs=None):
        from apps.translation.evaluation import headline_bleu

        start = time.perf_counter()
        out = self.translator.translate_full(self.sources, beam_width=1, batch_size=256)
        bleu = headline_bleu(out["tokens"], out["translation"], self.refs["tokenized"],
                             self.refs["raw"])
        if logs is not None:
            logs["val_bleu"] = bleu
        if self.verbose:
            losses = "".join(f" {k} {logs[k]:.4f}" for k in ("loss", "val_loss") if k in (logs or {}))
            print(f"epoch {epoch + 1}:{losses} val_bleu {bleu:.2f} (greedy on {len(self.sources)} "
                  f"validation sentences, {time.perf_counter() - start:.1f}s)", flush=True)


def validation_references(config, data, n):
    refs = references(config, data, "validation")
    return {k: (v[:n] if isinstance(v, list) else v) for k, v in refs.items()}


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


def training_callbacks(run_dir, monitor, patience, lr_decay=None, seed=None, shuffled=(),
                       lr_decay_min_delta=0.0, stop_min_lr=0.0):
    """The shared callbacks; with `--monitor val_bleu`, early stopping waits 5 epochs
    because BLEU is noise until the model starts to translate. `seed`/`shuffled`: a resumed
    run draws the uninterrupted run's dropout and batch order (training.EpochSeeds)."""
    from seqapps import training

    return training.standard_callbacks(  # monitor None: a final fit, see train
        run_dir, monitor=monitor, patience=patience, lr_decay=lr_decay,
        lr_decay_min_delta=lr_decay_min_delta if monitor == "val_loss" else 0.0, stop_min_lr=stop_min_lr,
        start_from_epoch=5 if monitor == "val_bleu" else 0, seed=seed, shuffled=shuffled,
    )


def run_config(args):
    config = {k: getattr(args, k) for k in DEFAULTS}
    config.update(seed=args.seed, batch_size=args.batch_size,  # tune: the search picks the rate
                  learning_rate=getattr(args, "learning_rate", None),
                  clipnorm=args.clipnorm, monitor=args.monitor, lr_decay=args.lr_decay)
    # Written only when set, so run folders from before the option existed still resume; and
    # only with --monitor val_loss, the one monitor it applies to (see training_callbacks).
    if getattr(args, "lr_decay_min_delta", 0.0) and args.monitor == "val_loss":
        config["lr_decay_min_delta"] = args.lr_decay_min_delta
    if getattr(args, "stop_min_lr", 0.0):  # likewise
        config["stop_min_lr"] = args.stop_min_lr
    if (getattr(args, "ensemble", None) or 1) > 1:  # likewise
        config["ensemble"] = args.ensemble
    # How the data files are read; written only when not the default, so the run folders of
    # earlier versions still resume.
    if getattr(args, "encoding", "utf-8") not in (None, "utf-8"):
        config["encoding"] = args.encoding
    if getattr(args, "skip_bad_lines", False):
        config["skip_bad_lines"] = True
    if getattr(args, "vocab", "word") == "subword":  # likewise: word runs' configs as before
        # Subword pieces are learned from real text: the raw cased files, always.
        config.update(vocab="subword", subword_vocab_size=args.subword_vocab_size, raw=True)
    return config


def check_subword_data(config, data):
    """The subword path learns real text: refuse tokenized training files."""
    if is_subword(config) and data.files.get("train", {}).get("tokenized"):
        hint = " (add --raw)" if data.bundled or not data.files["train"].get("carved") else ""
        raise ValueError(f"--vocab subword learns from raw cased text, but {data.files['train']['target']} "
                         f"is tokenized{hint}")


def progress_verbosity(args):
    """`verbose=` for Keras fit/search: 0 with --quiet, else bars on a terminal and one
    line per epoch into a file or pipe."""
    from seqapps.training import progress_verbosity as verbosity

    return verbosity(args.quiet)


def train(args):
    """Trains into a run folder (resuming it if it already holds this run), then scores it."""
    from apps.translation import text
    from seqapps import training

    if args.monitor == "val_bleu" and not args.val_bleu_sentences:
        raise ValueError("--monitor val_bleu needs --val-bleu-sentences > 0")
    if getattr(args, "ensemble", None) is not None and args.ensemble < 1:
        raise ValueError(f"--ensemble must be at least 1; got {args.ensemble}")
    strategy = training.distribution_strategy(args.strategy)  # before any other TF op
    training.set_seed(args.seed)
    training.configure_precision(args.mixed_precision)
    config = run_config(args)
    final_fit = getattr(args, "include_validation", False)
    if final_fit:
        config["include_validation"] = True
    # The data first: a run that cannot read its data leaves no config.json behind (which
    # would refuse the corrected command as "a run with other settings").
    data = load_data(config)
    check_subword_data(config, data)
    run_dir = training.prepare_run_dir(training.worker_run_dir(args.run_dir, strategy),
                                       {**config, "epochs": args.epochs}, overwrite=args.overwrite)
    if final_fit:  # train on both splits (vocabularies counted on both), nothing to validate on
        training.refuse_final_fit_without_test(data.name, data.validation, data.test)
        data.train = list(data.train) + list(data.validation)
    print(f"data: {data.name} {data.source_lang}->{data.target_lang}  train {len(data.train)}  "
          f"validation {len(data.validation)}  test {len(data.test)}")
    run_texts = texts(config, data, run_dir)
    sizes = run_texts.sizes
    what = "SentencePiece pieces" if run_texts.subword else f"tokens (min count {config['min_count']})"
    print(f"vocabularies: source {sizes[0]}, target {sizes[1]} {what}")

    source_vectorizer, target_vectorizer = run_texts.source_vectorizer, run_texts.target_vectorizer
    val_ds = None if final_fit else text.batches(data.validation, source_vectorizer, target_vectorizer, 128)
    refs = None
    if args.val_bleu_sentences and not final_fit:
        refs = validation_references(config, data, args.val_bleu_sentences)
    members = training.member_dirs(run_dir, config)
    start = time.time()
    # An ensemble (--ensemble K) is K runs of the same model with seeds SEED, SEED+1, ...,
    # one after the other, each with its share of --max-minutes; decoding averages them.
    for i, member_dir, seed in training.start_members(members, args.seed):
        train_ds = text.batches(data.train, source_vectorizer, target_vectorizer, args.batch_size,
                                shuffle=True, max_length=config["max_length"], seed=seed)
        with strategy.scope():
            model = build_from_config(config, *sizes, jit_compile=args.jit)
        training.prepare_for_strategy(model, strategy)
        if not args.quiet and i == 0:
            model.summary()
        callbacks = [] if refs is None else [ValidationBleu(run_texts, refs)]
        callbacks += training_callbacks(member_dir, None if final_fit else args.monitor, args.patience,
                                        config["lr_decay"], seed=seed, shuffled=train_ds,
                                        lr_decay_min_delta=config.get("lr_decay_min_delta", 0.0),
                                        stop_min_lr=config.get("stop_min_lr", 0.0))
        if getattr(args, "max_minutes", None):
            # Each member gets an equal share of what is left, so time a member did not need
            # (stopped by --stop-min-lr or early stopping) goes to the members after it.
            left = args.max_minutes - (time.time() - start) / 60
            callbacks.append(TimeBudget(left / (len(members) - i)))
        done = training.finished_epochs(member_dir)
        if done:
            print(f"resuming {member_dir}: {done} epoch(s) already finished")
        with strategy.scope():  # the batch in train_ds is the global batch, split over replicas
            model.fit(train_ds, validation_data=val_ds, epochs=args.epochs, callbacks=callbacks,
                      shuffle=False,  # tf.data reshuffles each epoch (Keras' default True warns)
                      verbose=progress_verbosity(args))
        training.plot_learning_curves(member_dir)
    seconds = time.time() - start

    report = {"train_seconds_this_session": round(seconds, 1),
              "epochs_finished": training.finished_epochs(run_dir)}
    if len(members) > 1:
        report["members_epochs_finished"] = [training.finished_epochs(d) for d in members]
    if args.evaluate:
        # Scored as `evaluate`, `translate` and `export` decode it, in float32, whatever
        # --mixed-precision trained in (the weights are float32 either way).
        training.configure_precision("off")
        eval_args = argparse.Namespace(run_dir=str(run_dir), split="test", beam=args.beam,
                                       length_penalty=args.length_penalty, max_eval=None,
                                       max_source_length=args.max_source_length,
                                       max_output_length=args.max_output_length,
                                       batch_size=64, quiet=args.quiet, test=None)
        report["test"] = evaluate(eval_args, data=data)
    training.write_metrics(run_dir, report)
    print(f"run folder: {run_dir}")
    return report


def evaluate(args, data=None):
    """sacreBLEU (the headline), chrF and tokenized lowercased BLEU, greedy vs beam.

    `args.test` ("SRC_FILE,TGT_FILE" or a test set's name in the data folder) scores that
    test set instead of `args.split`; the files scored are printed and kept in metrics.json.
    """
    from apps.translation.evaluation import evaluate as score_translations
    from apps.translation.evaluation import format_report
    from seqapps.training import write_metrics

    translator, config = load_run(args.run_dir, args)
    test = getattr(args, "test", None)
    if test is None:
        data = data or load_data(config)
    refs = references(config, data, args.split, test=test)
    sources, refs_tok, refs_raw = refs["sources"], refs["tokenized"], refs["raw"]
    if args.max_eval:
        sources, refs_tok, refs_raw = (None if x is None else x[: args.max_eval]
                                       for x in (sources, refs_tok, refs_raw))
    widths = sorted({1, translator.beam_width})
    reports, outputs = score_translations(translator, sources, refs_tok, refs_raw,
                                          beam_widths=widths, batch_size=args.batch_size)
    name = args.split if test is None else _test_name(test)
    for decoding, out in outputs.items():
        path = pathlib.Path(args.run_dir) / f"{name}.{decoding}.txt"
        path.write_text("".join(t + "\n" for t in out["translation"]), encoding="utf-8")
    for report in reports.values():
        report["files"] = refs["files"]
    what = f"{args.split} split" if test is None else f"test set {name}"
    carved = " (carved out of the data file)" if refs["files"].get("carved") else ""
    print(f"\n{what}{carved} ({len(sources)} sentences), {config['attention']} attention:")
    print(format_report(reports, refs["files"]))
    write_metrics(args.run_dir, reports, key=f"evaluate_{name}")
    return reports


def _test_name(test):
    """A file-name-safe name for `--test`: the set's name, or the source file's stem."""
    text = str(test)
    if "," in text:
        text = pathlib.Path(text.split(",", 1)[0].strip()).name.split(".")[0]
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in text) or "test"


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
        "ensemble": len(translator.models),
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
    check_subword_data(base, data)
    pathlib.Path(args.run_dir).mkdir(parents=True, exist_ok=True)
    run_texts = texts(base, data)  # the search's own, in memory; the retrained run learns its own
    source_vectorizer, target_vectorizer = run_texts.source_vectorizer, run_texts.target_vectorizer

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
            return build_from_config(config, *run_texts.sizes, jit_compile=args.jit)

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
        refs = validation_references(base, data, args.val_bleu_sentences)
        callbacks.append(ValidationBleu(run_texts, refs, verbose=not args.quiet))
    if args.patience:
        callbacks.append(keras.callbacks.EarlyStopping(
            monitor=args.objective, mode=args.direction, patience=args.patience))
    table = tuning.search(tuner, train_ds, validation_data=val_ds, epochs=args.epochs,
                          callbacks=callbacks, shuffle=False,  # tf.data shuffles
                          verbose=progress_verbosity(args))
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
