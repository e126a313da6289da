"""The sentiment verbs: train, evaluate, predict, export, tune (and the data glue they share).

`__main__.py` holds the command line; tests and Python callers may call these functions with
an `argparse.Namespace` as the parser builds it.
"""

import json
import os
import pathlib
import sys
import time

from apps.sentiment import BUCKETS, DEFAULTS

# --- building blocks shared by the verbs -----------------------------------------------


def resolve_defaults(args):
    """Fills the options left unset (None) with the defaults of the data: the phrase sets
    (`sst2-phrases`, `sst5-phrases`, a treebank folder) have their own, measured ones."""
    from apps.sentiment import PHRASE_DEFAULTS, TRAINING_DEFAULTS

    phrase = is_phrase_data(getattr(args, "data", None))
    for key, value in {**DEFAULTS, **TRAINING_DEFAULTS}.items():
        if getattr(args, key, value) is None and key not in ("max_vocab", "fold", "lr_decay", "encoding"):
            setattr(args, key, PHRASE_DEFAULTS.get(key, value) if phrase else value)
    if phrase and getattr(args, "lr_decay", None) is None:
        args.lr_decay = PHRASE_DEFAULTS.get("lr_decay")
    return args


def is_phrase_data(data):
    if data is None:
        return False
    if str(data).lower() in ("sst2-phrases", "sst5-phrases"):
        return True
    path = pathlib.Path(data)
    if path.is_dir():
        from seqapps.data.sentiment_sets import _tree_folder_paths

        return _tree_folder_paths(path) is not None
    return False


def model_config(args):
    return {k: getattr(args, k, v) for k, v in DEFAULTS.items()}


WORD_VOCABULARY, SUBWORD_MODEL = "vocab.txt", "subword.model"  # in the run folder
INPUT_NAMES = {"word": "token_ids", "subword": "piece_ids"}  # an ensemble model's inputs


def member_vocabs(config):
    """The vocabulary each ensemble member reads, in member order: `--vocab mixed`
    alternates word, subword, word, ... (so one model alone reads words; runs from before
    `--vocab` read words)."""
    vocab, count = config.get("vocab") or "word", int(config.get("ensemble") or 1)
    if vocab == "mixed":
        return ["word" if i % 2 == 0 else "subword" for i in range(count)]
    return [vocab] * count


def run_vectorizers(run_dir, config, texts=None):
    """`{"word" | "subword": vectorizer}` for the vocabularies the run's members read, read
    back from the run folder (vocab.txt, subword.model) or, given the training `texts`
    and not there yet, learned from them and saved there. Both see the text after the
    same `--standardize` (so "doesn't" is "does n't" to either)."""
    from seqapps.data import (build_word_vectorizer, load_vocabulary, resolve_standardize, save_vocabulary,
                              vectorizer_from_vocabulary)
    from seqapps.data.subword import SubwordVectorizer, train_subword_model

    run_dir = pathlib.Path(run_dir)
    vectorizers = {}
    for kind in dict.fromkeys(member_vocabs(config)):
        path = run_dir / (WORD_VOCABULARY if kind == "word" else SUBWORD_MODEL)
        if kind == "word":
            if path.exists() or texts is None:
                vectorizer = vectorizer_from_vocabulary(load_vocabulary(path), standardize=config["standardize"])
            else:
                vectorizer = build_word_vectorizer(texts, max_tokens=config["max_vocab"], min_count=config["min_count"],
                                                   standardize=config["standardize"])
                save_vocabulary(vectorizer.get_vocabulary(), path)
        else:
            standardize = resolve_standardize(config["standardize"])
            if not path.exists() and texts is not None:
                path.write_bytes(train_subword_model(texts, config["subword_vocab_size"], standardize=standardize))
            vectorizer = SubwordVectorizer(path.read_bytes(), standardize=standardize, name="subwords")
        vectorizers[kind] = vectorizer
    return vectorizers


def build_from_config(config, vocab_size, num_classes):
    from apps.sentiment.bow import build_bow_model
    from apps.sentiment.model import build_model

    arch = {k: config.get(k, DEFAULTS[k]) for k in ("embedding_dim", "dropout", "embedding_dropout")}
    if config["model"] == "bow":
        return build_bow_model(vocab_size, num_classes, **arch)
    arch.update({k: config.get(k, DEFAULTS[k]) for k in (
        "cell", "units", "layers", "bidirectional", "pooling", "rnn_dropout", "recurrent_dropout")})
    return build_model(vocab_size, num_classes, **arch)


def compile_from_config(model, config, learning_rate, clipnorm):
    from apps.sentiment.model import compile_classifier, make_optimizer

    optimizer = make_optimizer(learning_rate, clipnorm, config.get("weight_decay") or 0.0)
    return compile_classifier(model, optimizer, config.get("label_smoothing") or 0.0)


def encoded_dataset(examples, vectorizer, max_length):
    from seqapps.data import to_dataset

    def encode(text, label):
        return vectorizer(text[None])[0][:max_length], label

    import tensorflow as tf

    return to_dataset(examples).map(encode, num_parallel_calls=tf.data.AUTOTUNE)


def batches(examples, vectorizer, config, batch_size, *, shuffle, seed=0):
    import tensorflow as tf

    from seqapps.data import padded_batches

    if config.get("static_shapes"):
        # TPU / XLA: every batch exactly [batch_size, max_length]; the last partial batch is
        # dropped for training. Evaluation keeps it, so that every example counts: its shape is
        # static too, at the cost of one more compilation of the test step.
        ds = encoded_dataset(examples, vectorizer, config["max_length"]).cache()
        if shuffle:
            ds = ds.shuffle(len(examples), seed=seed, reshuffle_each_iteration=True)
        ds = ds.padded_batch(batch_size, padded_shapes=([config["max_length"]], []), drop_remainder=shuffle)
        return ds.prefetch(tf.data.AUTOTUNE)
    return padded_batches(
        encoded_dataset(examples, vectorizer, config["max_length"]),
        batch_size,
        bucket_boundaries=BUCKETS,
        shuffle_buffer=len(examples) if shuffle else None,
        seed=seed,
    )


def load_data(config):
    """The run's data; errors name the data and the command-line options."""
    from seqapps.data import load_sentiment
    from seqapps.data.errors import FoldError

    try:
        return load_sentiment(config["data"], fold=config["fold"], num_folds=config.get("folds") or 10,
                              encoding=config.get("encoding"))
    except FoldError as error:
        raise error.renamed(data=config["data"], num_folds="--folds", fold="--fold") from None


def load_model(run_dir, config):
    """best.keras, or for an ensemble one model that averages its members' probabilities."""
    import keras

    from seqapps.training import BEST, member_dirs

    paths = [d / BEST for d in member_dirs(run_dir, config)]
    for path in paths:
        if not path.exists():
            raise FileNotFoundError(f"{path} not found: training has not finished an epoch yet")
    models = [keras.models.load_model(path, compile=False) for path in paths]
    if len(models) == 1:
        return models[0]
    for i, model in enumerate(models):
        model.name = f"member_{i}"
    vocabs = member_vocabs(config)
    inputs = {INPUT_NAMES[kind]: keras.Input(shape=(None,), dtype="int32", name=INPUT_NAMES[kind])
              for kind in dict.fromkeys(vocabs)}
    probabilities = [m(inputs[INPUT_NAMES[kind]]) for m, kind in zip(models, vocabs)]
    mean = keras.layers.Average(name="mean_probabilities", dtype="float32")(probabilities)
    if len(inputs) == 1:
        inputs = next(iter(inputs.values()))
    return keras.Model(inputs, mean, name=f"sentiment_ensemble_of_{len(models)}")


def load_pipeline(run_dir):
    """The trained model of a run folder, with its vocabulary and labels."""

    from apps.sentiment.model import SentimentPipeline
    from seqapps.training import load_config

    run_dir = pathlib.Path(run_dir)
    config = load_config(run_dir)
    # runs from before `standardize` was an option lowercased and split on spaces (None)
    config.setdefault("standardize", None)
    vectorizers = run_vectorizers(run_dir, config)
    model = load_model(run_dir, config)
    labels = json.loads((run_dir / "labels.json").read_text())
    inputs = {INPUT_NAMES[kind]: vectorizer for kind, vectorizer in vectorizers.items()}
    return SentimentPipeline(inputs, model, labels, config["max_length"]), config


NEGATIONS = ("not", "n't", "no", "never", "nothing")


def has_negation(text):
    """True when the text holds one of NEGATIONS as a word (after treebank tokenization:
    "doesn't" holds "n't")."""
    import re

    words = re.sub(r"(\w)(n't)\b", r"\1 \2", text.lower()).split()
    return any(w in NEGATIONS for w in words)


def classification_report(y_true, y_pred, label_names):
    """Accuracy, macro-F1 and the confusion matrix (rows: true, columns: predicted).

    Macro-F1 averages over the classes present in `y_true` (an absent class has no F1 to
    speak of; averaging its 0 in would punish the model for the file): `macro_f1_classes`
    names them.
    """
    import numpy as np

    n = len(label_names)
    confusion = np.zeros((n, n), dtype=int)
    np.add.at(confusion, (np.asarray(y_true, dtype=int), np.asarray(y_pred, dtype=int)), 1)
    tp = np.diag(confusion).astype(float)
    precision = np.divide(tp, confusion.sum(0), out=np.zeros(n), where=confusion.sum(0) > 0)
    recall = np.divide(tp, confusion.sum(1), out=np.zeros(n), where=confusion.sum(1) > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(n), where=(precision + recall) > 0)
    present = confusion.sum(1) > 0
    return {
        "accuracy": float(tp.sum() / max(confusion.sum(), 1)),
        "macro_f1": float(f1[present].mean()) if present.any() else 0.0,
        "macro_f1_classes": [name for name, p in zip(label_names, present) if p],
        "confusion_matrix": confusion.tolist(),
        "labels": list(label_names),
        "examples": int(confusion.sum()),
    }


def evaluate_examples(pipeline, examples, batch_size=256):
    """The classification report, with `negation`: the same on the examples that hold a
    negation (`has_negation`), when there are any."""
    import numpy as np

    texts = [t for t, _ in examples]
    y_true = np.array([y for _, y in examples], dtype=int)
    y_pred = predicted_classes(pipeline, texts, batch_size)
    report = classification_report(y_true, y_pred, pipeline.label_names)
    negated = np.array([has_negation(t) for t in texts], dtype=bool)
    if negated.any():
        sub = classification_report(y_true[negated], y_pred[negated], pipeline.label_names)
        report["negation"] = {k: sub[k] for k in ("accuracy", "macro_f1", "examples")}
    return report


def predicted_classes(pipeline, texts, batch_size=256):
    import numpy as np

    probs = [
        pipeline.probabilities(np.array(texts[i : i + batch_size], dtype=object)).numpy()
        for i in range(0, len(texts), batch_size)
    ]
    if not probs:
        return np.zeros([0], dtype=int)
    return np.concatenate(probs).argmax(-1)


def format_report(report):
    f1_note = ""
    if len(report.get("macro_f1_classes", report["labels"])) < len(report["labels"]):
        f1_note = f" over the classes present ({', '.join(report['macro_f1_classes'])})"
    lines = [
        f"accuracy  {report['accuracy']:.4f}   macro-F1{f1_note}  {report['macro_f1']:.4f}   ({report['examples']} examples)",
    ]
    if "negation" in report:
        neg = report["negation"]
        lines.append(f"with a negation ({'/'.join(NEGATIONS)}): accuracy  {neg['accuracy']:.4f}   ({neg['examples']} examples)")
    for key, title in (("sentences", "sentences (roots)"), ("phrases", "all phrases (every node)")):
        if key in report:
            part = report[key]
            lines.append(f"{title}: accuracy  {part['accuracy']:.4f}   ({part['examples']} examples)")
    lines.append("confusion matrix (rows: true, columns: predicted)")
    counts = [v for row in report["confusion_matrix"] for v in row]
    width = max([len(l) for l in report["labels"]] + [len(str(v)) for v in counts]) + 2
    lines.append(" " * width + "".join(l.rjust(width) for l in report["labels"]))
    for label, row in zip(report["labels"], report["confusion_matrix"]):
        lines.append(label.ljust(width) + "".join(str(v).rjust(width) for v in row))
    return "\n".join(lines)


def evaluate_trees(pipeline, path, encoding=None):
    """A tree file scored as the treebank paper does: the sentences (roots) and every
    phrase (all nodes). A binary model sees the non-neutral nodes as negative/positive."""
    from seqapps.data import DataError
    from seqapps.data.sentiment_sets import tree_examples
    from seqapps.data.trees import read_trees, tree_phrases

    num_classes = len(pipeline.label_names)
    if num_classes not in (2, 5):
        raise DataError(f"{path}: treebank labels are 0-4 (or binary without 2); the model has "
                        f"{num_classes} classes {pipeline.label_names}")
    binary = num_classes == 2
    trees = read_trees(path, encoding or "utf-8")
    roots = tree_examples([(t.text, t.label) for t in trees], binary)
    phrases = tree_examples([p for t in trees for p in tree_phrases(t)], binary)
    report = evaluate_examples(pipeline, roots)
    everything = evaluate_examples(pipeline, phrases, batch_size=1024)
    report["sentences"] = {k: report[k] for k in ("accuracy", "macro_f1", "examples")}
    report["phrases"] = {k: everything[k] for k in ("accuracy", "macro_f1", "examples")}
    return report


def train(args):
    """Trains into a run folder, resuming it if it already holds this run.

    The data is read first: a command that fails on its data writes nothing into the run
    folder, so the corrected command is not refused as "other settings".
    """

    from seqapps import training

    resolve_defaults(args)
    strategy = training.distribution_strategy(args.strategy)  # before any other TF op
    training.set_seed(args.seed)
    training.configure_precision(args.mixed_precision)
    config = model_config(args)
    config.update(seed=args.seed, batch_size=args.batch_size, learning_rate=args.learning_rate, clipnorm=args.clipnorm)
    final_fit = getattr(args, "include_validation", False)
    if final_fit:
        config["include_validation"] = True
    data = load_data(config)
    print(f"data: {data.name}  train {len(data.train)}  validation {len(data.validation)}  test {len(data.test)}  classes {data.label_names}")
    if final_fit:
        training.refuse_final_fit_without_test(data.name, data.validation, data.test)
    run_dir = training.prepare_run_dir(
        training.worker_run_dir(args.run_dir, strategy), {**config, "epochs": args.epochs}, overwrite=args.overwrite
    )

    # A final fit (--include-validation) trains on both splits: its vocabulary comes from both.
    # Resuming, the vocabularies are the ones the weights were trained with (the run folder's).
    fit_examples = list(data.train) + list(data.validation) if final_fit else data.train
    vectorizers = run_vectorizers(run_dir, config, [t for t, _ in fit_examples])
    (run_dir / "labels.json").write_text(json.dumps(data.label_names) + "\n")
    source = "training and validation splits" if final_fit else "training split"
    for kind, vectorizer in vectorizers.items():
        unit = "tokens" if kind == "word" else "subword pieces (SentencePiece)"
        print(f"vocabulary: {vectorizer.vocabulary_size()} {unit} (from the {source})")

    validation = {kind: None if final_fit else batches(data.validation, vectorizer, config, 256, shuffle=False)
                  for kind, vectorizer in vectorizers.items()}
    members = training.member_dirs(run_dir, config)
    vocabs = member_vocabs(config)
    start = time.time()
    for i, member_dir, seed in training.start_members(members, args.seed):
        vectorizer, val_ds = vectorizers[vocabs[i]], validation[vocabs[i]]
        vocab_size = vectorizer.vocabulary_size()
        if len(vectorizers) > 1:
            print(f"member {i + 1} reads {'words' if vocabs[i] == 'word' else 'subword pieces'}")
        train_ds = batches(fit_examples, vectorizer, config, args.batch_size, shuffle=True, seed=seed)
        with strategy.scope():
            model = build_from_config(config, vocab_size, len(data.label_names))
            compile_from_config(model, config, args.learning_rate, args.clipnorm)
            if args.jit:
                model.jit_compile = True
        training.prepare_for_strategy(model, strategy)
        if not args.quiet and i == 0:
            model.summary()
        done = training.finished_epochs(member_dir)
        if done:
            print(f"resuming {member_dir}: {done} epoch(s) already finished")
        callbacks = training.standard_callbacks(
            member_dir, monitor=None if final_fit else "val_accuracy", mode="max", patience=args.patience,
            lr_decay=config.get("lr_decay"), seed=seed, shuffled=train_ds,  # resumes reproduce
        )
        if getattr(args, "max_minutes", None):
            callbacks.append(TimeBudget(args.max_minutes / len(members)))
        with strategy.scope():  # the batch in train_ds is the global batch, split over replicas
            model.fit(
                train_ds,
                validation_data=val_ds,
                epochs=args.epochs,
                callbacks=callbacks,
                shuffle=False,  # tf.data reshuffles every epoch (Keras' default True warns)
                verbose=training.progress_verbosity(args.quiet),
            )
    seconds = time.time() - start
    training.plot_learning_curves(run_dir)
    pipeline, _ = load_pipeline(run_dir)  # the best checkpoint, as evaluate/export see it
    report = {
        **({} if final_fit else {"validation": evaluate_examples(pipeline, data.validation)}),
        "test": evaluate_examples(pipeline, data.test),
        "train_seconds_this_session": round(seconds, 1),
        "epochs_finished": sum(training.finished_epochs(d) for d in members),
    }
    training.write_metrics(run_dir, report)
    print(f"\ntest split:\n{format_report(report['test'])}")
    print(f"run folder: {run_dir}")
    return report


def TimeBudget(minutes):
    """A callback that stops training after the last epoch that fits in `minutes` (it
    predicts the next epoch from the longest so far); the same command continues later."""
    import keras

    class _TimeBudget(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            self.start, self.longest = time.time(), 0.0

        def on_epoch_begin(self, epoch, logs=None):
            self.epoch_start = time.time()

        def on_epoch_end(self, epoch, logs=None):
            now = time.time()
            self.longest = max(self.longest, now - self.epoch_start)
            if now - self.start + self.longest > 60.0 * minutes:
                print(f"stopping after epoch {epoch + 1}: another would pass --max-minutes {minutes:g}")
                self.model.stop_training = True

    return _TimeBudget()


def evaluate(args):
    """Scores a run on its own test split (or --split), another set, or any labelled file;
    a treebank file gets sentence (root) and all-phrase accuracy."""
    from seqapps.data import load_sentiment
    from seqapps.data.sentiment_sets import TREE_FILES, is_tree_file
    from seqapps.data.sets import bundled_path

    pipeline, config = load_pipeline(args.run_dir)
    encoding = getattr(args, "encoding", None)
    if args.data and _is_file(args.data):
        if is_tree_file(args.data):
            report = evaluate_trees(pipeline, args.data, encoding)
        else:
            report = evaluate_examples(pipeline, examples_for_model(args.data, pipeline.label_names, encoding))
    elif not args.data and args.split == "test" and str(config["data"]).lower() in ("sst2-phrases", "sst5-phrases"):
        report = evaluate_trees(pipeline, bundled_path(TREE_FILES["test"]))  # its test sentences, and phrases
    else:
        data = (load_sentiment(args.data, encoding=encoding) if args.data
                else load_data(config))
        examples = getattr(data, args.split)
        unknown = {y for _, y in examples} - set(range(len(pipeline.label_names)))
        if unknown or len(data.label_names) != len(pipeline.label_names):
            raise SystemExit(
                f"the data's labels {data.label_names} do not match the model's {pipeline.label_names}"
            )
        report = evaluate_examples(pipeline, examples)
    print(format_report(report))
    if not args.data:
        from seqapps.training import write_metrics

        write_metrics(args.run_dir, report, key=f"evaluate_{args.split}")
    return report


def _is_file(path):
    path = pathlib.Path(path)
    return path.is_file() or path.with_name(path.name + ".gz").is_file()


def examples_for_model(path, label_names, encoding=None):
    """Every `label sentence` line of one file, its labels matched to the model's classes:
    by name ("positive") or by class number (0..K-1). One class alone is fine here."""
    from seqapps.data import DataError
    from seqapps.data.readers import read_raw_labelled

    index = {str(i): i for i in range(len(label_names))}
    index.update({name: i for i, name in enumerate(label_names)})
    examples = []
    for text, label in read_raw_labelled(path, encoding or "utf-8"):
        if str(label) not in index:
            raise DataError(f"{path}: label {label!r} is not one of the model's classes "
                            f"{label_names} (by name) or 0..{len(label_names) - 1}")
        examples.append((text, index[str(label)]))
    return examples


def read_sentences(args):
    """Sentences as UTF-8 bytes, passed through untouched: invalid bytes are the model's
    business (they become U+FFFD there), not a reason to crash here."""
    if args.sentences:
        return [s.encode("utf-8", "surrogateescape") for s in args.sentences]
    if sys.stdin.isatty():
        raise SystemExit("give sentences as arguments or on standard input (one per line)")
    return [line.rstrip(b"\r\n") for line in sys.stdin.buffer]


def predict(args):
    """Labels sentences; each answer says how many tokens it read and how many were unknown
    (an answer from no known word is no evidence: `no known words` in the text output)."""
    import tensorflow as tf

    sentences = read_sentences(args)
    if args.export:  # the exported signature, or the same `serve` in this process
        import tensorflow_text  # noqa: F401 (registers the SentencePiece ops a subword export holds)

        from seqapps.export import latest_version_dir

        signature = tf.saved_model.load(str(latest_version_dir(args.export))).signatures["serving_default"]
        serve = lambda strings: signature(text=strings)  # noqa: E731
    else:
        serve = load_pipeline(args.run_dir)[0].serve
    out = {k: v.numpy() for k, v in serve(tf.constant(sentences, dtype=tf.string)).items()}
    probs = out["probabilities"]
    labels = [l.decode() for l in out["label"]]
    counts = zip(out["num_tokens"], out["num_unknown"], out["truncated"])
    results = []
    for sentence, label, p, (num_tokens, num_unknown, truncated) in zip(sentences, labels, probs, counts):
        sentence = sentence.decode("utf-8", "replace")
        results.append({"text": sentence, "label": label, "probabilities": [round(float(v), 6) for v in p],
                        "num_tokens": int(num_tokens), "num_unknown": int(num_unknown),
                        "truncated": bool(truncated)})
        if args.json:
            print(json.dumps(results[-1], ensure_ascii=False))
        else:
            note = f"{num_tokens} tokens, {num_unknown} unknown"
            if num_tokens == num_unknown:
                note += ": no known words"
            if truncated:
                note += ", truncated"
            print(f"{label}\t{' '.join(f'{v:.4f}' for v in p)}\t({note})\t{sentence}")
    return results


def export(args):
    import tensorflow as tf

    from seqapps.export import export_saved_model
    from seqapps.training import METRICS

    pipeline, config = load_pipeline(args.run_dir)
    metrics_path = pathlib.Path(args.run_dir) / METRICS
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    out = export_saved_model(
        args.out,
        {"serving_default": (pipeline.serve, [tf.TensorSpec([None], tf.string, name="text")])},
        track=[*pipeline.vectorizers.values(), pipeline.model],
        metadata={
            "app": "sentiment",
            "data": config["data"],
            "labels": pipeline.label_names,
            "vocabulary_size": pipeline.vectorizer.vocabulary_size(),
            # "subword" or "mixed": the export holds tensorflow-text's SentencePiece ops and
            # loads only after `import tensorflow_text` (README)
            "vocab": config.get("vocab") or "word",
            "max_length": pipeline.max_length,
            "config": config,
            "metrics": {k: metrics.get(k, {}).get("accuracy") for k in ("validation", "test")},
        },
    )
    print(f"exported to {out}")
    print(f"try: saved_model_cli show --dir {out} --all")
    return out


def tune(args):
    """keras-tuner over cell, units, layers, bidirectional, embedding size, the dropouts
    (features, word, between layers), weight decay, label smoothing and the learning rate.
    The trials read words; the retrained best (unless --no-retrain) reads what --vocab says."""

    from seqapps import training, tuning
    from seqapps.data import build_word_vectorizer

    if args.distributed:
        os.environ.update(
            tuning.distributed_env(args.distributed, oracle_ip=args.oracle_ip, oracle_port=args.oracle_port, worker_index=args.worker_index)
        )
    resolve_defaults(args)
    training.set_seed(args.seed)
    training.configure_precision(args.mixed_precision)
    base = model_config(args)
    data = load_data(base)
    vectorizer = build_word_vectorizer([t for t, _ in data.train], max_tokens=base["max_vocab"],
                                       min_count=base["min_count"], standardize=base["standardize"])
    vocab_size, num_classes = vectorizer.vocabulary_size(), len(data.label_names)

    class SentimentHyperModel(tuning.AppHyperModel):
        def config_from(self, hp):
            return {
                **base,
                "cell": hp.Choice("cell", ["lstm", "gru", "simple"]),
                "units": hp.Int("units", 32, 256, step=32),
                "layers": hp.Int("layers", 1, 2),
                "bidirectional": hp.Boolean("bidirectional", default=True),
                "dropout": hp.Float("dropout", 0.0, 0.6, step=0.1),
                "embedding_dim": hp.Choice("embedding_dim", [64, 128, 300]),
                "embedding_dropout": hp.Choice("embedding_dropout", [0.0, 0.1, 0.2, 0.3]),
                "rnn_dropout": hp.Choice("rnn_dropout", [0.0, 0.2, 0.4]),
                "weight_decay": hp.Choice("weight_decay", [0.0, 0.01, 0.1]),
                "label_smoothing": hp.Choice("label_smoothing", [0.0, 0.1]),
                "learning_rate": hp.Float("learning_rate", 3e-4, 3e-3, sampling="log"),
            }

        def build_from(self, config):
            model = build_from_config(config, vocab_size, num_classes)
            compile_from_config(model, config, config["learning_rate"], args.clipnorm)
            model.jit_compile = args.jit
            return model

    tuner = tuning.make_tuner(
        args.tuner, SentimentHyperModel(), directory=args.run_dir, objective=args.objective,
        direction=args.direction, max_trials=args.max_trials, max_epochs=args.epochs,
        seed=args.seed, overwrite=args.overwrite,
    )
    train_ds = batches(data.train, vectorizer, base, args.batch_size, shuffle=True, seed=args.seed)
    val_ds = batches(data.validation, vectorizer, base, 256, shuffle=False)
    import keras

    stop = [keras.callbacks.EarlyStopping(monitor=args.objective, mode=args.direction, patience=args.patience)
            ] if args.patience else []
    table = tuning.search(
        tuner, train_ds, validation_data=val_ds, epochs=args.epochs, callbacks=stop,
        verbose=training.progress_verbosity(args.quiet),
    )
    if args.distributed == "worker":
        return table
    best = tuning.report(tuner, table, args.run_dir)
    if args.no_retrain:
        return table
    best = {k: v for k, v in best.items() if k in DEFAULTS or k == "learning_rate"}
    tuning.retrain_best(train, export, args, best, tuning.best_epochs(tuner),
                        has_test_split=not training.same_split(data.validation, data.test))
    return table


