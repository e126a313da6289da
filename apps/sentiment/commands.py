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


def model_config(args):
    return {k: getattr(args, k) for k in DEFAULTS}


def build_from_config(config, vocab_size, num_classes):
    from apps.sentiment.bow import build_bow_model
    from apps.sentiment.model import build_model

    arch = {k: config[k] for k in ("embedding_dim", "dropout")}
    if config["model"] == "bow":
        return build_bow_model(vocab_size, num_classes, **arch)
    arch.update({k: config[k] for k in ("cell", "units", "layers", "bidirectional", "pooling")})
    return build_model(vocab_size, num_classes, **arch)


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
    from seqapps.data import load_sentiment

    return load_sentiment(config["data"], fold=config["fold"])


def load_pipeline(run_dir):
    """The trained model of a run folder, with its vocabulary and labels."""
    import keras

    from apps.sentiment.model import SentimentPipeline
    from seqapps.data import load_vocabulary, vectorizer_from_vocabulary
    from seqapps.training import BEST, load_config

    run_dir = pathlib.Path(run_dir)
    config = load_config(run_dir)
    if not (run_dir / BEST).exists():
        raise FileNotFoundError(f"{run_dir / BEST} not found: training has not finished an epoch yet")
    # runs from before `standardize` was an option lowercased and split on spaces (None)
    vectorizer = vectorizer_from_vocabulary(load_vocabulary(run_dir / "vocab.txt"),
                                            standardize=config.get("standardize"))
    model = keras.models.load_model(run_dir / BEST)
    labels = json.loads((run_dir / "labels.json").read_text())
    return SentimentPipeline(vectorizer, model, labels, config["max_length"]), config


def classification_report(y_true, y_pred, label_names):
    """Accuracy, macro-F1 and the confusion matrix (rows: true, columns: predicted)."""
    import numpy as np

    n = len(label_names)
    confusion = np.zeros((n, n), dtype=int)
    np.add.at(confusion, (np.asarray(y_true), np.asarray(y_pred)), 1)
    tp = np.diag(confusion).astype(float)
    precision = np.divide(tp, confusion.sum(0), out=np.zeros(n), where=confusion.sum(0) > 0)
    recall = np.divide(tp, confusion.sum(1), out=np.zeros(n), where=confusion.sum(1) > 0)
    f1 = np.divide(2 * precision * recall, precision + recall, out=np.zeros(n), where=(precision + recall) > 0)
    return {
        "accuracy": float(tp.sum() / max(confusion.sum(), 1)),
        "macro_f1": float(f1.mean()),
        "confusion_matrix": confusion.tolist(),
        "labels": list(label_names),
        "examples": int(confusion.sum()),
    }


def evaluate_examples(pipeline, examples, batch_size=256):
    import numpy as np

    texts = [t for t, _ in examples]
    y_true = [y for _, y in examples]
    probs = [
        pipeline.probabilities(np.array(texts[i : i + batch_size], dtype=object)).numpy()
        for i in range(0, len(texts), batch_size)
    ]
    y_pred = np.concatenate(probs).argmax(-1)
    return classification_report(y_true, y_pred, pipeline.label_names)


def format_report(report):
    lines = [
        f"accuracy  {report['accuracy']:.4f}   macro-F1  {report['macro_f1']:.4f}   ({report['examples']} examples)",
        "confusion matrix (rows: true, columns: predicted)",
    ]
    width = max(len(l) for l in report["labels"]) + 2
    lines.append(" " * width + "".join(l.rjust(width) for l in report["labels"]))
    for label, row in zip(report["labels"], report["confusion_matrix"]):
        lines.append(label.ljust(width) + "".join(str(v).rjust(width) for v in row))
    return "\n".join(lines)


# --- verbs -------------------------------------------------------------------------------


def train(args):
    """Trains into a run folder, resuming it if it already holds this run."""

    from seqapps import training
    from seqapps.data import build_word_vectorizer, load_vocabulary, save_vocabulary, vectorizer_from_vocabulary

    strategy = training.distribution_strategy(args.strategy)  # before any other TF op
    training.set_seed(args.seed)
    training.configure_precision(args.mixed_precision)
    config = model_config(args)
    config.update(seed=args.seed, batch_size=args.batch_size, learning_rate=args.learning_rate, clipnorm=args.clipnorm)
    final_fit = getattr(args, "include_validation", False)
    if final_fit:
        config["include_validation"] = True
    run_dir = training.prepare_run_dir(
        training.worker_run_dir(args.run_dir, strategy), {**config, "epochs": args.epochs}, overwrite=args.overwrite
    )
    data = load_data(config)
    print(f"data: {data.name}  train {len(data.train)}  validation {len(data.validation)}  test {len(data.test)}  classes {data.label_names}")

    # A final fit (--include-validation) trains on both splits: its vocabulary comes from both.
    if final_fit:
        training.refuse_final_fit_without_test(data.name, data.validation, data.test)
    fit_examples = list(data.train) + list(data.validation) if final_fit else data.train
    vocab_path = run_dir / "vocab.txt"
    if vocab_path.exists():  # resuming: the vocabulary must be the one the weights were trained with
        vectorizer = vectorizer_from_vocabulary(load_vocabulary(vocab_path), standardize=config["standardize"])
    else:
        vectorizer = build_word_vectorizer(
            [t for t, _ in fit_examples], max_tokens=config["max_vocab"], min_count=config["min_count"],
            standardize=config["standardize"],
        )
        save_vocabulary(vectorizer.get_vocabulary(), vocab_path)
    (run_dir / "labels.json").write_text(json.dumps(data.label_names) + "\n")
    vocab_size = vectorizer.vocabulary_size()
    print(f"vocabulary: {vocab_size} tokens (from the {'training and validation splits' if final_fit else 'training split'})")

    train_ds = batches(fit_examples, vectorizer, config, args.batch_size, shuffle=True, seed=args.seed)
    val_ds = None if final_fit else batches(data.validation, vectorizer, config, 256, shuffle=False)
    with strategy.scope():
        from apps.sentiment.model import compile_classifier

        model = build_from_config(config, vocab_size, len(data.label_names))
        compile_classifier(model, training.make_optimizer(args.learning_rate, args.clipnorm))
        if args.jit:
            model.jit_compile = True
    training.prepare_for_strategy(model, strategy)
    if not args.quiet:
        model.summary()
    done = training.finished_epochs(run_dir)
    if done:
        print(f"resuming {run_dir}: {done} epoch(s) already finished")
    start = time.time()
    with strategy.scope():  # the batch in train_ds is the global batch, split over replicas
        model.fit(
            train_ds,
            validation_data=val_ds,
            epochs=args.epochs,
            callbacks=training.standard_callbacks(
                run_dir, monitor=None if final_fit else "val_accuracy", mode="max", patience=args.patience
            ),
            shuffle=False,  # tf.data already reshuffles every epoch
            verbose=0 if args.quiet else 1,
        )
    seconds = time.time() - start
    training.plot_learning_curves(run_dir)
    pipeline, _ = load_pipeline(run_dir)  # the best checkpoint, as evaluate/export see it
    report = {
        **({} if final_fit else {"validation": evaluate_examples(pipeline, data.validation)}),
        "test": evaluate_examples(pipeline, data.test),
        "train_seconds_this_session": round(seconds, 1),
        "epochs_finished": training.finished_epochs(run_dir),
    }
    training.write_metrics(run_dir, report)
    print(f"\ntest split:\n{format_report(report['test'])}")
    print(f"run folder: {run_dir}")
    return report


def evaluate(args):
    from seqapps.data import load_sentiment

    pipeline, config = load_pipeline(args.run_dir)
    if args.data and _is_file(args.data):
        examples = examples_for_model(args.data, pipeline.label_names)  # all of it
    else:
        data = load_sentiment(args.data) if args.data else load_data(config)
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


def examples_for_model(path, label_names):
    """Every `label sentence` line of one file, its labels matched to the model's classes:
    by name ("positive") or by class number (0..K-1). One class alone is fine here."""
    from seqapps.data import DataError
    from seqapps.data.readers import read_raw_labelled

    index = {str(i): i for i in range(len(label_names))}
    index.update({name: i for i, name in enumerate(label_names)})
    examples = []
    for text, label in read_raw_labelled(path):
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
    import tensorflow as tf

    sentences = read_sentences(args)
    if args.export:
        from seqapps.export import latest_version_dir

        serve = tf.saved_model.load(str(latest_version_dir(args.export))).signatures["serving_default"]
        out = serve(text=tf.constant(sentences, dtype=tf.string))
        probs = out["probabilities"].numpy()
        labels = [l.decode() for l in out["label"].numpy()]
        label_names = None
    else:
        pipeline, _ = load_pipeline(args.run_dir)
        probs = pipeline.probabilities(tf.constant(sentences, dtype=tf.string)).numpy()
        label_names = pipeline.label_names
        labels = [label_names[i] for i in probs.argmax(-1)]
    results = []
    for sentence, label, p in zip(sentences, labels, probs):
        sentence = sentence.decode("utf-8", "replace")
        results.append({"text": sentence, "label": label, "probabilities": [round(float(v), 6) for v in p]})
        if args.json:
            print(json.dumps(results[-1], ensure_ascii=False))
        else:
            print(f"{label}\t{' '.join(f'{v:.4f}' for v in p)}\t{sentence}")
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
        track=[pipeline.vectorizer, pipeline.model],
        metadata={
            "app": "sentiment",
            "data": config["data"],
            "labels": pipeline.label_names,
            "vocabulary_size": pipeline.vectorizer.vocabulary_size(),
            "max_length": pipeline.max_length,
            "config": config,
            "metrics": {k: metrics.get(k, {}).get("accuracy") for k in ("validation", "test")},
        },
    )
    print(f"exported to {out}")
    print(f"try: saved_model_cli show --dir {out} --all")
    return out


def tune(args):
    """keras-tuner over cell, units, layers, bidirectional, dropout, embedding size, lr."""

    from apps.sentiment.model import compile_classifier
    from seqapps import training, tuning
    from seqapps.data import build_word_vectorizer

    if args.distributed:
        os.environ.update(
            tuning.distributed_env(args.distributed, oracle_ip=args.oracle_ip, oracle_port=args.oracle_port, worker_index=args.worker_index)
        )
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
                "learning_rate": hp.Float("learning_rate", 3e-4, 3e-3, sampling="log"),
            }

        def build_from(self, config):
            model = build_from_config(config, vocab_size, num_classes)
            compile_classifier(model, training.make_optimizer(config["learning_rate"], args.clipnorm))
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
        verbose=0 if args.quiet else 1,
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


