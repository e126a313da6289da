"""The verbs of the language-model app as Python functions (the CLI calls these, same names).

    train(run_dir, data="ptb", ...)       evaluate(run_dir, ...)       export(run_dir, out)
    generate(prompts, run_dir=|export_dir=, ...)    complete(prompt, ...)    score(sentences, ...)
    tune(run_dir, ...) in apps.lm.tuning; gradient_flow(...), cells(...), embeddings(...) in
    apps.lm.diagnostics
"""

import json
import math
import pathlib
import sys
import time

import keras
import numpy as np
import tensorflow as tf

from apps.lm import model as lm_model
from apps.lm.config import LEVEL_DEFAULTS
from apps.lm.corpus import Codec, load_corpus
from apps.lm.evaluation import RecurrentLM, evaluate_stream
from apps.lm.ngram import FILE as NGRAM_FILE
from apps.lm.ngram import KneserNey
from apps.lm.corpus import no_test_message
from apps.lm.serving import DEFAULT_MAX_INPUT_TOKENS, DEFAULT_MAX_TOKENS_CAP, MAX_TEMPERATURE, OUTPUTS
from apps.lm.serving import LanguageModelServer, NgramServer, check_server_options
from seqapps import training
from seqapps.data import bptt_windows

BEST = training.BEST


def log(*args):
    print(*args, file=sys.stderr, flush=True)


# --- callbacks ----------------------------------------------------------------------------


class ResetStates(keras.callbacks.Callback):
    """Truncated BPTT: zero the carried state at the start of every epoch and evaluation."""

    def on_epoch_begin(self, epoch, logs=None):
        lm_model.reset_states(self.model)

    def on_test_begin(self, logs=None):
        lm_model.reset_states(self.model)

    def on_predict_begin(self, logs=None):
        lm_model.reset_states(self.model)


class LanguageModelLogs(keras.callbacks.Callback):
    """Adds perplexity (and bits per char) to the epoch logs, and measures tokens/s.

    Must come before CSVLogger/TensorBoard so they see the added keys. These per-epoch
    numbers average window losses as Keras does; the exact ones are in metrics.json."""

    def __init__(self, level, tokens_per_step):
        super().__init__()
        self.level, self.tokens_per_step = level, tokens_per_step
        self.tokens_per_sec = None

    def on_epoch_begin(self, epoch, logs=None):
        self.start, self.steps = time.perf_counter(), 0
        self.last = self.start

    def on_train_batch_end(self, batch, logs=None):
        self.steps += 1
        self.last = time.perf_counter()

    def on_epoch_end(self, epoch, logs=None):
        elapsed, validation = self.last - self.start, time.perf_counter() - self.last
        self.tokens_per_sec = self.steps * self.tokens_per_step / max(elapsed, 1e-9)
        for prefix in ("", "val_"):
            if f"{prefix}loss" in (logs or {}):
                loss = logs[f"{prefix}loss"]
                logs[f"{prefix}perplexity"] = math.exp(min(loss, 700.0))
                if self.level == "char":
                    logs[f"{prefix}bpc"] = loss / math.log(2)
        log(f"epoch {epoch + 1}: {elapsed:.0f} s training ({self.tokens_per_sec:,.0f} tokens/s), {validation:.0f} s validation")


class TimeLimit(keras.callbacks.Callback):
    """Stops training after `minutes` of training (the epoch then ends and is validated)."""

    def __init__(self, minutes):
        super().__init__()
        self.seconds, self.start = minutes * 60.0, None

    def on_train_begin(self, logs=None):
        self.start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        if time.perf_counter() - self.start > self.seconds:
            self.model.stop_training = True


# --- configuration ------------------------------------------------------------------------


def resolve_config(level, vocab_size, **options):
    """Options left at None take the level's defaults; returns the run's config dict."""
    config = dict(LEVEL_DEFAULTS[level])
    config.update({k: v for k, v in options.items() if v is not None})
    config.update(level=level, vocab_size=int(vocab_size))
    if config.get("embedding_dim") is None:
        config["embedding_dim"] = config["units"]
    return config


def make_optimizer(name, learning_rate, clipnorm):
    if name == "sgd":
        return keras.optimizers.SGD(learning_rate=learning_rate, global_clipnorm=clipnorm or None)
    if name == "adam":
        return training.make_optimizer(learning_rate, clipnorm)
    raise ValueError(f"optimizer must be 'sgd' or 'adam'; got {name!r}")


def build_training_model(config, jit=False):
    model = lm_model.build_model(lm_model.model_config(config), batch_size=config["batch_size"], stateful=True)
    model.compile(
        optimizer=make_optimizer(config["optimizer"], config["learning_rate"], config["clipnorm"]),
        loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=bool(jit),
    )
    return model


def windows(ids, config, drop_remainder):
    return bptt_windows(ids, config["batch_size"], config["bptt"], drop_remainder=drop_remainder)


# --- train / evaluate ---------------------------------------------------------------------


def train(run_dir, data=None, *, level=None, model=None, order=None, cell=None, units=None, layers=None,
          embedding_dim=None, dropout=None, tie_weights=None, bptt=None, batch_size=None, epochs=None,
          optimizer=None, learning_rate=None, clipnorm=None, lr_decay=None, lr_decay_min_delta=None, patience=3,
          min_count=None, max_vocab=None, seed=None, eval_batch_size=1, max_minutes=None, steps_per_epoch=None,
          strategy="default", mixed_precision=False, jit=False, overwrite=False, quiet=False,
          tensorboard=True, callbacks=(), include_validation=False, encoding=None):
    """Trains an RNN (or fits an n-gram) language model in `run_dir`; resumes a run there.

    `lr_decay_min_delta`: a validation-loss gain (nats) below this counts as a plateau for
    `lr_decay`; stored in the config only when set, so earlier runs resume unchanged.
    `include_validation`: a final fit on the training stream followed by the validation
    stream, for exactly `epochs` epochs (no early stopping, no learning-rate decay: nothing is
    left to validate on). `encoding`: of the data files (default UTF-8; stored in the config
    when given). The data is read, and cut into windows, before the run folder is prepared:
    a command that fails on its data writes nothing, so the corrected one is not refused.
    Returns the metrics dict (exact validation/test perplexity, bpc at char level; only
    test after a final fit; no test for a corpus without a test split of its own)."""
    options = dict(data=data, level=level, model=model, order=order, cell=cell, units=units, layers=layers,
                   embedding_dim=embedding_dim, dropout=dropout, tie_weights=tie_weights, bptt=bptt,
                   batch_size=batch_size, epochs=epochs, optimizer=optimizer, learning_rate=learning_rate,
                   clipnorm=clipnorm, lr_decay=lr_decay, lr_decay_min_delta=lr_decay_min_delta, min_count=min_count,
                   max_vocab=max_vocab, seed=seed, encoding=encoding)
    previous = pathlib.Path(run_dir) / training.CONFIG
    if previous.exists() and not overwrite:  # resuming: options not given are the run's own
        options = {**json.loads(previous.read_text()), **{k: v for k, v in options.items() if v is not None}}
    options = {**dict(model="rnn", order=5, min_count=1, seed=0), **{k: v for k, v in options.items() if v is not None}}
    if options.get("data") is None:  # the bundled corpus of the level: words PTB, characters Shakespeare
        options["data"] = "tinyshakespeare" if options.get("level") == "char" else "ptb"
    training.set_seed(options["seed"])
    corpus = load_corpus(options["data"], level=options.get("level"), min_count=options["min_count"],
                         max_vocab=options.get("max_vocab"), encoding=options.get("encoding"))
    codec = corpus.codec
    common = {k: options.get(k) for k in ("model", "min_count", "max_vocab", "seed")}
    common["data"] = str(options["data"])
    if options.get("encoding"):  # only when given: earlier runs resume unchanged
        common["encoding"] = options["encoding"]
    model = options["model"]
    if model == "ngram":
        config = dict(common, level=codec.level, vocab_size=codec.vocab_size, order=int(options["order"]))
    elif model == "rnn":
        rnn_keys = [*LEVEL_DEFAULTS["word"], "embedding_dim"]
        config = resolve_config(codec.level, codec.vocab_size, **{k: options.get(k) for k in rnn_keys}, **common)
        if options.get("lr_decay_min_delta"):
            config["lr_decay_min_delta"] = float(options["lr_decay_min_delta"])
    else:
        raise ValueError(f"model must be 'rnn' or 'ngram'; got {model!r}")
    if include_validation:
        if not corpus.has_test:
            raise ValueError(f"--include-validation: {no_test_message(corpus.name)}, so training on "
                             "validation would leave nothing held out")
        config["include_validation"] = True

    fit_stream = np.concatenate([corpus.train, corpus.validation]) if include_validation else corpus.train
    evaluated = ("test",) if include_validation else ("validation", "test") if corpus.has_test else ("validation",)
    if model == "rnn":  # everything that can fail on the data or the options, before the run folder
        if strategy == "multiworker":  # refused before the strategy would claim the cluster
            raise ValueError("stateful truncated BPTT carries one state per stream; train on one replica "
                             "(--strategy default)")
        train_ds = windows(fit_stream, config, drop_remainder=True)
        val_ds = None if include_validation else windows(corpus.validation, config, drop_remainder=False)
    run_dir = training.prepare_run_dir(run_dir, config, overwrite=overwrite, ignore=("epochs",))
    codec.save(run_dir)
    test_size = f"{len(corpus.test):,}" if corpus.has_test else "no"
    log(f"{corpus.name} ({codec.level} level): {len(corpus.train):,} / {len(corpus.validation):,} / "
        f"{test_size} tokens, vocabulary {codec.vocab_size:,}")
    if not corpus.has_test:
        log(f"note: {no_test_message(corpus.name)}; no test figure is reported")

    if model == "ngram":
        start = time.perf_counter()
        lm = KneserNey(config["order"], codec.vocab_size).fit(fit_stream)
        lm.save(run_dir / NGRAM_FILE)
        seconds = time.perf_counter() - start
        log(f"Kneser-Ney {config['order']}-gram: {lm.num_ngrams()} n-grams, fitted in {seconds:.1f} s")
        metrics = _evaluate_splits(lm, corpus, evaluated)
        metrics["train_seconds"] = seconds
        return training.write_metrics(run_dir, metrics)

    strategy_obj = training.distribution_strategy(strategy)
    if strategy_obj.num_replicas_in_sync > 1:
        raise ValueError("stateful truncated BPTT carries one state per stream; train on one replica "
                         "(--strategy default)")
    training.configure_precision(mixed_precision)
    with strategy_obj.scope():
        net = build_training_model(config, jit)
    if steps_per_epoch:
        train_ds = train_ds.take(steps_per_epoch)
    logs_cb = LanguageModelLogs(codec.level, config["batch_size"] * config["bptt"])
    standard = training.standard_callbacks(run_dir, monitor=None if include_validation else "val_loss",
                                           patience=patience, tensorboard=tensorboard,
                                           lr_decay=config["lr_decay"],
                                           lr_decay_min_delta=config.get("lr_decay_min_delta", 0.0),
                                           seed=config.get("seed"))  # windows are not shuffled
    extra = []
    if max_minutes:
        extra.append(TimeLimit(max_minutes))
    done = training.finished_epochs(run_dir)
    if done:
        log(f"resuming {run_dir}: {done} epoch(s) recorded")
    start = time.perf_counter()
    net.fit(train_ds, validation_data=val_ds, epochs=config["epochs"], shuffle=False,  # windows in order: BPTT
            callbacks=[ResetStates(), logs_cb, *standard, *extra, *callbacks],
            verbose=training.progress_verbosity(quiet))
    seconds = time.perf_counter() - start
    training.plot_learning_curves(run_dir)
    training.configure_precision(False)  # evaluate in float32, as `evaluate` does: exact perplexity
    lm = load_recurrent_lm(run_dir, config, batch_size=eval_batch_size)
    metrics = _evaluate_splits(lm, corpus, evaluated)
    metrics.update(train_seconds=seconds, epochs_finished=training.finished_epochs(run_dir))
    if logs_cb.tokens_per_sec:
        metrics["train_tokens_per_sec"] = logs_cb.tokens_per_sec
    return training.write_metrics(run_dir, metrics)


def _evaluate_splits(lm, corpus, splits):
    """Each split's exact report; a corpus without a test split of its own has none to ask for
    (`EncodedCorpus.split("test")` says so), so no split stands in for another."""
    metrics = {}
    for split in splits:
        ids = corpus.split(split)
        start = time.perf_counter()
        report = evaluate_stream(lm, ids, corpus.codec.level)
        report["seconds"] = time.perf_counter() - start
        metrics[split] = report
        bpc = f", {report['bpc']:.3f} bits/char" if "bpc" in report else ""
        log(f"{split}: perplexity {report['perplexity']:.2f} (loss {report['nll']:.4f} nats/token{bpc}) "
            f"over {report['tokens']:,} tokens")
    return metrics


def load_recurrent_lm(run_dir, config=None, *, batch_size=1, window=256):
    """The best checkpoint of a run as a state build wrapped for evaluation/scoring."""
    config = config or training.load_config(run_dir)
    path = pathlib.Path(run_dir) / BEST
    if not path.exists():
        raise FileNotFoundError(f"{path} does not exist: train the run first (it is written after an epoch)")
    trained = keras.saving.load_model(path, compile=False)
    state = lm_model.build_model(lm_model.model_config(config), state_io=True)
    lm_model.copy_weights(trained, state)
    return RecurrentLM(state, config, batch_size=batch_size, window=window)


def load_run(run_dir, *, batch_size=1):
    """(config, codec, lm) of a trained run; lm is a RecurrentLM or a KneserNey."""
    config = training.load_config(run_dir)
    codec = Codec.load(run_dir)
    if config["model"] == "ngram":
        return config, codec, KneserNey.load(pathlib.Path(run_dir) / NGRAM_FILE)
    return config, codec, load_recurrent_lm(run_dir, config, batch_size=batch_size)


def evaluate(run_dir, *, data=None, splits=("validation", "test"), batch_size=1, encoding=None):
    """Exact perplexity (and bpc) of a trained run on the given splits of its (or other) data.

    A corpus without a test split of its own reports no test figure (a line says so)."""
    config, codec, lm = load_run(run_dir, batch_size=batch_size)
    corpus = load_corpus(data or config["data"], level=codec.level, codec=codec,
                         encoding=encoding or (config.get("encoding") if data is None else None))
    if "test" in splits and not corpus.has_test:
        if list(splits) == ["test"]:
            raise ValueError(no_test_message(corpus.name))
        log(f"note: {no_test_message(corpus.name)}; no test figure is reported")
        splits = [s for s in splits if s != "test"]
    metrics = _evaluate_splits(lm, corpus, splits)
    if data is None or data == config["data"]:  # other data's numbers don't belong to the run
        training.write_metrics(run_dir, metrics, key="evaluate")
    return metrics


# --- inference: in memory or from an export -------------------------------------------------


def server_for(run_dir=None, export_dir=None, **server_options):
    """An object with .generate_filtered / .score / .next_tokens for a run or an export.

    `server_options` (max_tokens_cap, max_input_tokens) apply to a run; an export has its own."""
    if export_dir is not None:
        return ExportedServer(export_dir)
    config, codec, lm = load_run(run_dir)
    if config["model"] == "ngram":
        return NgramServer(lm, codec, **server_options)
    return LanguageModelServer(lm.model, config, codec, **server_options)


class ExportedServer:
    """The SavedModel's signatures behind the same method names as the in-memory server."""

    def __init__(self, export_dir):
        from seqapps.export import latest_version_dir

        self.path = latest_version_dir(export_dir)
        self.loaded = tf.saved_model.load(str(self.path))
        self.metadata = json.loads((self.path / "metadata.json").read_text())
        self.max_tokens_cap = self.metadata.get("max_tokens_cap", DEFAULT_MAX_TOKENS_CAP)
        self.max_input_tokens = self.metadata.get("max_input_tokens")  # None: an export before the cap

    def generate_filtered(self, prompt, max_tokens, temperature, seed, top_k, top_p):
        fn = self.loaded.signatures["generate_filtered"]
        return fn(prompt=tf.constant(prompt, tf.string), max_tokens=tf.constant(max_tokens, tf.int32),
                  temperature=tf.constant(temperature, tf.float32), seed=tf.constant(seed, tf.int64),
                  top_k=tf.constant(top_k, tf.int32), top_p=tf.constant(top_p, tf.float32))

    def score(self, sentences):
        return self.loaded.signatures["score"](sentences=tf.constant(sentences, tf.string))

    def next_tokens(self, prompt, k):
        return self.loaded.signatures["next_tokens"](prompt=tf.constant(prompt, tf.string), k=tf.constant(k, tf.int32))


def _text(value):
    return value.decode("utf-8", errors="replace") if isinstance(value, bytes) else str(value)


def as_bytes(texts):
    """Texts as UTF-8 bytes, passed on untouched: a command-line argument that is not UTF-8
    arrives as a str with surrogate escapes (Python's file-system decoding), which go back
    to the original bytes here; the graph replaces invalid UTF-8 with U+FFFD."""
    texts = [texts] if isinstance(texts, (str, bytes)) else list(texts)
    return [t if isinstance(t, bytes) else str(t).encode("utf-8", "surrogateescape") for t in texts]


def _np(result):
    return {k: np.asarray(v) for k, v in result.items()}


def _warn_truncated(out, what, which, cap):
    for i in np.flatnonzero(np.asarray(out.get("truncated", []), bool)):
        log(f"warning: {what} {i + 1}: longer than {cap:,} tokens; only its {which} {cap:,} were read "
            "(raise the cap with --max-input-tokens)")


def check_generation_options(max_tokens, temperature, top_k, top_p, cap):
    """Clear errors / a message for the CLI: the same rules the graph enforces (see
    apps.lm.serving), checked before anything runs."""
    if max_tokens < 0:
        raise ValueError(f"max_tokens must be >= 0; got {max_tokens}")
    if max_tokens > cap:
        log(f"max_tokens={max_tokens:,} is above the cap of {cap:,}: generating {cap:,} tokens "
            "(raise the cap with --max-tokens-cap)")
        max_tokens = cap
    if not math.isfinite(temperature) or temperature < 0:
        raise ValueError(f"temperature must be a finite number >= 0 (0 = greedy); got {temperature}")
    if top_k < 0:
        raise ValueError(f"top_k must be >= 0 (0 = off); got {top_k}")
    if not 0 < top_p <= 1:  # NaN fails too
        raise ValueError(f"top_p must be in (0, 1] (1 = off); got {top_p}")
    return max_tokens


def generate(prompts, *, run_dir=None, export_dir=None, max_tokens=100, temperature=1.0, top_k=0,
             top_p=1.0, seed=None, max_tokens_cap=DEFAULT_MAX_TOKENS_CAP, max_input_tokens=DEFAULT_MAX_INPUT_TOKENS,
             server=None):
    """Continues each prompt (str or bytes; invalid UTF-8 is replaced); temperature 0 is greedy.

    Returns [{prompt, text, full_text, tokens, num_tokens, num_prompt_tokens, num_unknown,
    truncated, seed}]; a prompt longer than the input cap is read from its last tokens."""
    server = server or server_for(run_dir, export_dir, max_tokens_cap=max_tokens_cap, max_input_tokens=max_input_tokens)
    cap = getattr(server, "max_tokens_cap", max_tokens_cap)
    max_tokens = check_generation_options(max_tokens, temperature, top_k, top_p, cap)
    if seed is None:
        seed = int(np.random.default_rng().integers(2**31))
    prompts = as_bytes(prompts)
    out = _np(server.generate_filtered(prompts, max_tokens, temperature, seed, top_k, top_p))
    _warn_truncated(out, "prompt", "last", getattr(server, "max_input_tokens", None) or max_input_tokens)
    separator = _separator(server)
    results = []
    for i, raw in enumerate(prompts):
        prompt = _text(raw)
        n, text = int(out["num_tokens"][i]), _text(out["text"][i])
        full = f"{prompt}{separator}{text}" if prompt and text else prompt or text
        result = {"prompt": prompt, "text": text, "full_text": full, "num_tokens": n,
                  "tokens": [_text(t) for t in out["tokens"][i][:n]],
                  "num_unknown": int(out["num_unknown"][i]), "seed": seed}
        if "truncated" in out:  # (an export made before the input cap has neither)
            result.update(num_prompt_tokens=int(out["num_prompt_tokens"][i]), truncated=bool(out["truncated"][i]))
        results.append(result)
    return results


def complete(prompt, *, run_dir=None, export_dir=None, steps=5, k=5, max_input_tokens=DEFAULT_MAX_INPUT_TOKENS,
             server=None):
    """The seeds' sentence completion: at each step the k most likely next tokens, take the
    best, append it, repeat. Returns [{candidates: [(token, prob)], chosen}] per step."""
    if k < 1:
        raise ValueError(f"k (--top-k) must be >= 1; got {k}")
    if steps < 0:
        raise ValueError(f"steps must be >= 0; got {steps}")
    server = server or server_for(run_dir, export_dir, max_input_tokens=max_input_tokens)
    steps = min(int(steps), getattr(server, "max_tokens_cap", DEFAULT_MAX_TOKENS_CAP))
    separator = _separator(server).encode()
    [text] = as_bytes(prompt)
    result = []
    for step in range(steps):
        out = _np(server.next_tokens([text], k))
        if step == 0:
            _warn_truncated(out, "prompt", "last", getattr(server, "max_input_tokens", None) or max_input_tokens)
        candidates = [(_text(t), float(np.exp(lp))) for t, lp in zip(out["tokens"][0], out["log_probs"][0])]
        chosen = candidates[0][0]
        text = text + separator + chosen.encode() if text else chosen.encode()
        result.append({"candidates": candidates, "chosen": chosen, "text": _text(text)})
    return result


def _separator(server):
    if isinstance(server, ExportedServer):
        return " " if server.metadata.get("level") == "word" else ""
    return server.codec.separator


def score(sentences, *, run_dir=None, export_dir=None, max_input_tokens=DEFAULT_MAX_INPUT_TOKENS, server=None):
    """Log-probability, per-token log-probs and perplexity of each sentence (str or bytes),
    best first. A sentence longer than the input cap is scored on its first tokens
    (`truncated`), without the end token."""
    server = server or server_for(run_dir, export_dir, max_input_tokens=max_input_tokens)
    raw = as_bytes(sentences)
    out = _np(server.score(raw))
    _warn_truncated(out, "sentence", "first", getattr(server, "max_input_tokens", None) or max_input_tokens)
    results = []
    for i, sentence in enumerate(raw):
        n = int(out["num_tokens"][i])
        result = {"sentence": _text(sentence), "log_prob": float(out["log_prob"][i]), "num_tokens": n,
                  "perplexity": float(out["perplexity"][i]),
                  "tokens": [_text(t) for t in out["tokens"][i][:n]],
                  "token_log_probs": [float(x) for x in out["token_log_probs"][i][:n]],
                  "num_unknown": int(out["num_unknown"][i])}
        if "truncated" in out:
            result["truncated"] = bool(out["truncated"][i])
        results.append(result)
    return sorted(results, key=lambda r: -r["log_prob"])


# --- export -------------------------------------------------------------------------------


def export(run_dir, out, *, max_tokens_cap=DEFAULT_MAX_TOKENS_CAP, max_input_tokens=DEFAULT_MAX_INPUT_TOKENS,
           top_k=0, top_p=1.0, version=None):
    """Writes a SavedModel (generate, generate_filtered, score, next_tokens) to `out/<version>/`."""
    from seqapps.export import export_saved_model

    check_server_options(max_tokens_cap, max_input_tokens, top_k, top_p)
    config, codec, lm = load_run(run_dir)
    if config["model"] != "rnn":
        raise ValueError("only RNN runs export as SavedModels; the n-gram answers in Python (generate/score)")
    server = LanguageModelServer(lm.model, config, codec, max_tokens_cap=max_tokens_cap,
                                 max_input_tokens=max_input_tokens, top_k=top_k, top_p=top_p)
    metrics_path = pathlib.Path(run_dir) / training.METRICS
    metadata = {
        "app": "lm", "level": codec.level, "data": config["data"], "vocab_size": codec.vocab_size,
        "boundary_token": codec.vocabulary[codec.boundary_id], "unknown_token": codec.vocabulary[codec.unk_id],
        "max_tokens_cap": max_tokens_cap, "max_input_tokens": max_input_tokens,
        "default_top_k": top_k, "default_top_p": top_p,
        "config": config, "metrics": json.loads(metrics_path.read_text()) if metrics_path.exists() else {},
        "usage": "generate(prompt, max_tokens, temperature, seed) -> text; score(sentences) -> log_prob "
                 "(natural log, boundary token before, <eos> after at word level); next_tokens(prompt, k). "
                 f"At most max_input_tokens ({max_input_tokens}) tokens of a text are read: score the first, "
                 "generate/next_tokens the last of the prompt; `truncated` says so. temperature: 0 greedy, "
                 f"capped at {MAX_TEMPERATURE:g}; max_tokens capped at max_tokens_cap; negative or NaN "
                 "arguments (and top_p outside (0, 1], k < 1) are refused with InvalidArgumentError",
        "outputs": OUTPUTS,
    }
    path = export_saved_model(out, server.endpoints(), track=[lm.model, server.table], metadata=metadata, version=version)
    log(f"exported to {path}")
    return path
