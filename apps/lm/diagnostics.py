"""The seeds' pictures, measured on trained models.

* gradient_flow: || d loss_t / d h_k || against t - k for SimpleRNN, LSTM and GRU trained on
  the same data (the vanishing-gradient curve of the seeds, from real weights rather than a
  scalar w). The network is unrolled step by step with its cells under a GradientTape, so
  every h_k is a tensor the tape can differentiate against; loss_t is the cross-entropy at
  the last step of a passage, after a warm-up that gives the state realistic values.
* cells: one hidden unit's activation over a passage, coloured (Karpathy's "cell that turns
  on inside quotes"); the unit is given, or found as the one that best tracks a feature of
  the text (inside quotes, position in the line, inside a capitalised word, ...).
* embeddings: vectors and metadata for the TensorBoard projector, and nearest neighbours.
"""

import html
import json
import math
import pathlib

import keras
import numpy as np
import tensorflow as tf

from apps.lm import commands
from apps.lm import model as lm_model
from apps.lm.corpus import load_corpus
from seqapps import training

WARMUP = 50


# --- gradient flow ------------------------------------------------------------------------


def _quick_train(corpus, cell, units, steps, seed, batch_size=32, bptt=50):
    """A small model of `cell` trained for `steps` windows (Adam), for the comparison."""
    training.set_seed(seed)
    config = commands.resolve_config(
        corpus.codec.level, corpus.codec.vocab_size, cell=cell, units=units, layers=1, embedding_dim=min(units, 64),
        dropout=0.0, tie_weights=False, bptt=bptt, batch_size=batch_size, optimizer="adam", learning_rate=2e-3,
        clipnorm=5.0,
    )
    net = commands.build_training_model(config)
    data = commands.windows(corpus.train, config, drop_remainder=True).repeat().take(steps)
    net.fit(data, epochs=1, callbacks=[commands.ResetStates()], verbose=0)
    return net, config


def _unrolled_grad_norms(net, config, passages):
    """Mean over passages of ||d loss_T / d h_k|| of the top layer, for k = T .. 1 (lag 0..)."""
    embedding = net.get_layer("embedding")
    cells = [net.get_layer(f"rnn_{i}").cell for i in range(1, config["layers"] + 1)]
    projection = next((layer for layer in net.layers if layer.name == "projection"), None)
    x_ids, target = passages[:, :-1], passages[:, -1]
    batch = x_ids.shape[0]
    states = [[tf.zeros([batch, config["units"]])] * lm_model.num_states(config) for _ in cells]

    def run(step_ids, states, tape=None):
        hs = []
        for t in range(step_ids.shape[1]):
            x = embedding(step_ids[:, t])
            for i, cell in enumerate(cells):
                x, states[i] = cell(x, states[i])
                states[i] = list(states[i])
            hs.append(x)
        return hs

    run(x_ids[:, :WARMUP], states)  # warm the state up; not differentiated
    with tf.GradientTape() as tape:
        hs = run(x_ids[:, WARMUP:], states)
        h = hs[-1] if projection is None else projection(hs[-1])
        logits = embedding(h, reverse=True)
        loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(target, logits))
    grads = tape.gradient(loss, hs)
    norms = np.stack([tf.norm(g, axis=-1).numpy() for g in grads], axis=1)  # [B, span]
    return np.exp(np.mean(np.log(np.maximum(norms, 1e-30)), axis=0))[::-1]  # geometric mean, lag 0 first


def gradient_flow(*, run_dirs=None, data=None, level=None, cells=("simple", "lstm", "gru"),
                  units=128, train_steps=300, span=60, samples=32, out="gradient_flow.png", seed=0):
    """Measures the curves and writes `out` (PNG) and `out`.json. Returns {label: [norms]}."""
    models = []
    if run_dirs:
        for run_dir in run_dirs:
            config = training.load_config(run_dir)
            net = keras.saving.load_model(pathlib.Path(run_dir) / training.BEST, compile=False)
            models.append((f"{config['cell']} ({pathlib.Path(run_dir).name})", net, config))
        corpus = load_corpus(data or models[0][2]["data"], codec=commands.Codec.load(run_dirs[0]))
    else:
        corpus = load_corpus(data or "tinyshakespeare", level=level)
        for cell in cells:
            commands.log(f"training a {units}-unit {cell} for {train_steps} windows ...")
            net, config = _quick_train(corpus, cell, units, train_steps, seed)
            models.append((cell, net, config))
    rng = np.random.default_rng(seed)
    length = WARMUP + span + 1
    starts = rng.integers(0, len(corpus.validation) - length, size=samples)
    passages = np.stack([corpus.validation[s : s + length] for s in starts]).astype(np.int32)
    curves = {label: _unrolled_grad_norms(net, config, tf.constant(passages)).tolist() for label, net, config in models}
    _plot_curves(curves, out)
    pathlib.Path(out).with_suffix(".json").write_text(json.dumps({"lag": list(range(span)), "norms": curves}, indent=1) + "\n")
    return curves


def _plot_curves(curves, out):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    for label, norms in curves.items():
        ax.semilogy(range(len(norms)), norms, label=label)
    ax.set_xlabel("t - k (steps back from the loss)")
    ax.set_ylabel("|| d loss_t / d h_k ||  (geometric mean)")
    ax.set_title("Gradient flow through time, trained models")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    plt.close(fig)


def format_gradient_flow(curves, lags=(0, 1, 2, 5, 10, 20, 40)):
    span = len(next(iter(curves.values())))
    lags = [lag for lag in lags if lag < span] + ([span - 1] if span - 1 not in lags else [])
    lines = ["t-k  " + "".join(f"{label[:14]:>16}" for label in curves)]
    for lag in lags:
        lines.append(f"{lag:>3}  " + "".join(f"{curves[label][lag]:>16.3e}" for label in curves))
    return "\n".join(lines)


# --- hidden cells -------------------------------------------------------------------------


def _features(tokens):
    """Per-token features of the text a unit may track."""
    quotes, inside = [], False
    line, since_line = [], 0
    word, since_space = [], 0
    capitals = []
    for i, t in enumerate(tokens):
        if t == '"':
            inside = not inside
        quotes.append(float(inside))
        since_line = 0 if t == "\n" else since_line + 1
        line.append(float(since_line))
        since_space = 0 if t.isspace() else since_space + 1
        word.append(float(since_space))
        # inside a word written in capitals (the speakers' names of tiny-shakespeare)
        j, k = i, i
        while j > 0 and tokens[j - 1].isalpha():
            j -= 1
        while k + 1 < len(tokens) and tokens[k + 1].isalpha():
            k += 1
        chunk = "".join(tokens[j : k + 1])
        capitals.append(float(len(chunk) > 1 and chunk.isalpha() and chunk.isupper()))
    return {"quotes": np.array(quotes), "line-position": np.array(line), "word-position": np.array(word),
            "capitals": np.array(capitals)}


def _correlations(acts, feature):
    f = feature - feature.mean()
    a = acts - acts.mean(axis=0)
    denom = np.sqrt((a**2).sum(axis=0) * (f**2).sum()) + 1e-12
    return (a * f[:, None]).sum(axis=0) / denom


def cells(run_dir, *, text=None, max_tokens=1500, layer=None, unit=None, feature="auto", out="cells.html"):
    """Renders one unit's activation over a passage; returns {layer, unit, feature, correlation, html, png}."""
    config, codec, lm = commands.load_run(run_dir)
    if config["model"] != "rnn":
        raise ValueError("cells needs an RNN run")
    if text is None:
        corpus = load_corpus(config["data"], codec=codec)
        ids = corpus.validation[:max_tokens]
    else:
        ids = codec.encode(codec.tokenize(text))[:max_tokens]
    if len(ids) == 0:
        raise ValueError("the passage is empty")
    tokens = [codec.vocabulary[i] for i in ids]
    layer = layer or config["layers"]
    if not 1 <= layer <= config["layers"]:
        raise ValueError(f"layer must be in 1..{config['layers']}")
    state = lm.model
    probe = keras.Model(state.inputs, state.get_layer(f"rnn_{layer}").output[0])
    acts = probe([tf.constant(ids[None], tf.int32), *lm_model.zero_states(config, 1)]).numpy()[0]  # [T, units]
    features = _features(tokens)
    if unit is None:
        candidates = features if feature == "auto" else ({feature: features[feature]} if feature in features else {})
        best = (0.0, None, int(np.argmax(acts.var(axis=0))), "variance")
        for name, f in candidates.items():
            if f.std() == 0:
                continue
            corr = _correlations(acts, f)
            u = int(np.argmax(np.abs(corr)))
            if abs(corr[u]) > abs(best[0]):
                best = (float(corr[u]), name, u, name)
        correlation, _, unit, feature_name = best
    else:
        if not 0 <= unit < config["units"]:
            raise ValueError(f"unit must be in 0..{config['units'] - 1}")
        feature_name, correlation = "given", float("nan")
    values = acts[:, unit]
    out = pathlib.Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    title = f"{pathlib.Path(run_dir).name}: layer {layer}, unit {unit} ({feature_name}, r = {correlation:+.2f})"
    out.write_text(_html(tokens, values, title, codec.separator), encoding="utf-8")
    png = out.with_suffix(".png")
    _png(tokens, values, title, png, codec.separator)
    return {"layer": layer, "unit": unit, "feature": feature_name, "correlation": correlation, "html": str(out), "png": str(png)}


def _colour(v):
    """tanh range: blue for negative, red for positive, white at 0."""
    v = float(np.clip(v, -1, 1))
    return (1.0, 1.0 - v, 1.0 - v) if v > 0 else (1.0 + v, 1.0 + v, 1.0)


def _html(tokens, values, title, separator):
    spans = []
    for t, v in zip(tokens, values):
        r, g, b = (int(255 * c) for c in _colour(v))
        shown = "&#8629;<br>" if t == "\n" else html.escape(t).replace(" ", "&nbsp;")
        spans.append(f'<span title="{v:+.3f}" style="background: rgb({r},{g},{b})">{shown}</span>')
    body = (separator or "").join(spans)
    return (f"<!doctype html><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<h3 style='font-family: sans-serif'>{html.escape(title)}</h3>"
            "<p style='font-family: sans-serif'>blue = -1, white = 0, red = +1 (hover for values)</p>"
            f"<div style='font-family: monospace; font-size: 14px; line-height: 1.6'>{body}</div>\n")


def _png(tokens, values, title, path, separator, width=100, max_lines=40):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    lines, current = [], []
    for t, v in zip(tokens, values):
        current.append((t, v))
        if t == "\n" or sum(len(x) + len(separator) for x, _ in current) >= width:
            lines.append(current)
            current = []
    lines = (lines + [current] if current else lines)[:max_lines]
    width = max(20, max(sum(len(t) + len(separator) for t, _ in line) for line in lines) + 1)
    fig = plt.figure(figsize=(width * 0.11, 0.5 + 0.24 * len(lines)))
    ax = fig.add_axes([0, 0, 1, 1 - 0.4 / (0.5 + 0.24 * len(lines))])
    ax.set_xlim(0, width)
    ax.set_ylim(len(lines), 0)
    ax.axis("off")
    for row, line in enumerate(lines):
        col = 0.0
        for t, v in line:
            shown = "⏎" if t == "\n" else t
            w = len(shown) + len(separator)
            ax.add_patch(plt.Rectangle((col, row), w, 1, color=_colour(v)))
            ax.text(col + 0.05, row + 0.75, shown, family="monospace", fontsize=9)
            col += w
    fig.suptitle(title, fontsize=10)
    fig.savefig(path, dpi=100)
    plt.close(fig)


# --- embeddings ---------------------------------------------------------------------------


def _shown(token):
    return {"": "<pad>", "\n": "\\n", "\t": "\\t", " ": "<space>"}.get(token, token.replace("\t", " ").replace("\n", " "))


def embeddings(run_dir, *, out=None, words=(), k=10):
    """Writes vectors.tsv, metadata.tsv and a projector checkpoint; nearest neighbours by cosine."""
    config, codec, lm = commands.load_run(run_dir)
    if config["model"] != "rnn":
        raise ValueError("embeddings needs an RNN run")
    vectors = lm.model.get_layer("embedding").embeddings.numpy()
    out = pathlib.Path(out or pathlib.Path(run_dir) / "projector")
    out.mkdir(parents=True, exist_ok=True)
    np.savetxt(out / "vectors.tsv", vectors, delimiter="\t", fmt="%.6f")
    (out / "metadata.tsv").write_text("".join(_shown(t) + "\n" for t in codec.vocabulary), encoding="utf-8")
    checkpoint = tf.train.Checkpoint(embedding=tf.Variable(vectors, name="embedding"))
    checkpoint.save(str(out / "embedding.ckpt"))
    from tensorboard.plugins import projector

    projector_config = projector.ProjectorConfig()
    entry = projector_config.embeddings.add()
    entry.tensor_name = "embedding/.ATTRIBUTES/VARIABLE_VALUE"
    entry.metadata_path = "metadata.tsv"
    projector.visualize_embeddings(str(out), projector_config)
    unit = vectors / (np.linalg.norm(vectors, axis=1, keepdims=True) + 1e-12)
    neighbours = {}
    for word in words:
        token = word if word in codec.index else (word.lower() if codec.lowercase else word)
        if token not in codec.index:
            neighbours[word] = [("(not in the vocabulary)", math.nan)]
            continue
        sims = unit @ unit[codec.index[token]]
        sims[[0, 1, codec.index[token]]] = -np.inf
        top = np.argsort(-sims)[:k]
        neighbours[word] = [(_shown(codec.vocabulary[i]), float(sims[i])) for i in top]
    return {"out": str(out), "neighbours": neighbours}
