"""Strings in, strings out: tokenize, encode, decode (greedy or beam), detokenize, in one graph.

`Translator.translate(sources)` is the function the CLI, the evaluation, the BLEU callback
and the SavedModel all run, so the export answers exactly what the in-memory model does.
It is traced with `tf.function(autograph=False)` with XLA-compiled loops and cuDNN off (what
the export does too), once per decoding option.

Bounds (no input can loop or blow up):
- a source is cut to `max_source_length` tokens (`truncated` says so);
- row b may emit at most `min(2 * source_length_b + 10, max_output_length)` tokens before
  the end token is forced, so its output does not depend on the other rows of its batch;
- an empty source (nothing left after tokenization) translates to "";
- invalid UTF-8 bytes are replaced by U+FFFD before tokenization.
"""

import numpy as np
import tensorflow as tf

from seqapps.decoding import beam_search, greedy_decode
from seqapps.export import clean_utf8, export_saved_model
from seqapps.layers import compiled_loops, cudnn_allowed

from apps.translation.text import END_ID, PAD_ID, START_ID, UNK_ID, detokenize


class Translator:
    """A trained `Seq2Seq` with its source vectorizer and target vocabulary.

    Args:
        model: `apps.translation.model.Seq2Seq`, or an `apps.translation.ensemble.Ensemble`
            of them (the same decoding interface).
        source_vectorizer: the `TextVectorization` used in training.
        target_vocabulary: the target id table (id -> token).
        beam_width: default beam width (1 = greedy).
        length_penalty: GNMT length penalty alpha for beam search.
        target_detokenizer: the subword path's target `SubwordVectorizer` (ids -> text);
            None: the word path (tokens joined by spaces, then `text.detokenize`). With
            it, the decoder never emits <unk> (byte fallback covers every character).
    """

    def __init__(self, model, source_vectorizer, target_vocabulary, *, beam_width=5,
                 length_penalty=0.6, max_source_length=200, max_output_length=200,
                 target_detokenizer=None):
        self.model = model
        self.models = list(getattr(model, "models", [model]))  # an Ensemble's members
        self.source_vectorizer = source_vectorizer
        self.target_detokenizer = target_detokenizer
        self.banned = [PAD_ID, START_ID] + ([UNK_ID] if target_detokenizer is not None else [])
        self.target_vocabulary = list(target_vocabulary)
        self.beam_width = int(beam_width)
        self.length_penalty = float(length_penalty)
        self.max_source_length = int(max_source_length)
        self.max_output_length = int(max_output_length)
        self._functions = {}

    # --- the graph -----------------------------------------------------------------------

    def source_ids(self, sources):
        """`[B]` strings -> `(ids [B, S>=1] int32, lengths [B], truncated [B])`."""
        ids = tf.cast(self.source_vectorizer(clean_utf8(sources)), tf.int32)
        lengths = tf.reduce_sum(tf.cast(ids != PAD_ID, tf.int32), axis=1)
        truncated = lengths > self.max_source_length
        ids = ids[:, : self.max_source_length]
        # At least one (padding) column, so an all-empty batch still has a shape to encode.
        ids = tf.pad(ids, [[0, 0], [0, tf.maximum(0, 1 - tf.shape(ids)[1])]])
        return ids, tf.minimum(lengths, self.max_source_length), truncated

    def step_fn(self, tokens, state):
        """`seqapps.decoding` step: the model's step, with the per-row output bound."""
        logits, new_state, _ = self.model.decode_step(tokens, state)
        logits = tf.cast(logits, tf.float32)
        vocab = tf.shape(logits)[-1]
        never = tf.reduce_any(tf.equal(tf.range(vocab)[:, None], self.banned), axis=1)
        logits = tf.where(never, -1e9, logits)
        # At the row's limit only the end token is allowed.
        forced = tf.where(tf.equal(tf.range(vocab), END_ID), 0.0, -1e9)
        at_limit = (state["steps"] >= state["limit"])[:, None]
        logits = tf.where(at_limit, forced, logits)
        return logits, {**new_state, "steps": state["steps"] + 1, "limit": state["limit"]}

    def decode_ids(self, ids, lengths, beam_width, length_penalty):
        """Source ids -> `(target ids [B, L], output lengths [B])` (end token excluded)."""
        state = self.model.initial_decoder_state(ids)
        limit = tf.minimum(2 * lengths + 10, self.max_output_length)
        limit = tf.where(lengths > 0, limit, 0)  # empty source: emit the end token at once
        state["steps"] = tf.zeros_like(limit)
        state["limit"] = limit
        max_length = tf.maximum(tf.reduce_max(limit), 0) + 1  # (reduce_max of [] is -2**31)
        if beam_width == 1:
            return greedy_decode(self.step_fn, state, start_token=START_ID, end_token=END_ID,
                                 max_length=max_length)
        tokens, out_lengths, _ = beam_search(
            self.step_fn, state, start_token=START_ID, end_token=END_ID, max_length=max_length,
            beam_width=beam_width, length_penalty=length_penalty)
        return tokens, out_lengths

    def _translate(self, sources, beam_width, length_penalty):
        ids, lengths, truncated = self.source_ids(sources)
        tokens, out_lengths = self.decode_ids(ids, lengths, beam_width, length_penalty)
        words = tf.gather(tf.constant(self.target_vocabulary), tokens)
        keep = tf.sequence_mask(out_lengths, tf.shape(tokens)[1])
        token_text = tf.strings.reduce_join(
            tf.ragged.boolean_mask(words, keep), axis=1, separator=" ")
        if self.target_detokenizer is not None:
            text = self.target_detokenizer.detokenize(
                tf.RaggedTensor.from_tensor(tokens, lengths=out_lengths))
        else:
            text = detokenize(token_text)
        return {
            "translation": text,  # readable text
            "tokens": token_text,  # word path: tokenized lowercase; subword path: the pieces
            "length": out_lengths,
            "source_length": lengths,
            "truncated": truncated,
        }

    def function(self, beam_width=None, length_penalty=None):
        """The traced `sources [B] string -> dict` function for these decoding options."""
        beam_width = self.beam_width if beam_width is None else int(beam_width)
        length_penalty = self.length_penalty if length_penalty is None else float(length_penalty)
        if beam_width < 1:
            raise ValueError(f"beam width must be >= 1; got {beam_width}")
        key = (beam_width, length_penalty)
        if key not in self._functions:
            fn = tf.function(
                lambda sources: self._translate(sources, beam_width, length_penalty),
                input_signature=[tf.TensorSpec([None], tf.string, name="sources")],
                autograph=False)
            with cudnn_allowed(False), compiled_loops(False):
                fn.get_concrete_function()
            self._functions[key] = fn
        return self._functions[key]

    # --- Python conveniences -------------------------------------------------------------

    def translate(self, sources, *, beam_width=None, length_penalty=None, batch_size=64,
                  tokens=False):
        """Translates a list of Python strings (or bytes); returns a list of strings."""
        results = self.translate_full(sources, beam_width=beam_width,
                                      length_penalty=length_penalty, batch_size=batch_size)
        return results["tokens" if tokens else "translation"]

    def translate_full(self, sources, *, beam_width=None, length_penalty=None, batch_size=64):
        """Like `translate`, returning every output of the signature as lists."""
        fn = self.function(beam_width, length_penalty)
        out = {}
        sources = list(sources)
        for start in range(0, len(sources), batch_size):
            batch = fn(tf.constant(sources[start:start + batch_size], tf.string))
            for key, value in batch.items():
                value = value.numpy().tolist()
                if value and isinstance(value[0], bytes):
                    value = [v.decode("utf-8") for v in value]
                out.setdefault(key, []).extend(value)
        if not sources:
            out = {k: [] for k in ("translation", "tokens", "length", "source_length", "truncated")}
        return out

    def attention_matrix(self, source, target_tokens):
        """`(source tokens, target tokens + [end], weights [T+1, S])` for one sentence.

        Teacher-forces `target_tokens` (e.g. the model's own translation) through the same
        step function and collects each step's attention weights.
        """
        ids, lengths, _ = self.source_ids(tf.constant([source]))
        n = int(lengths[0])
        vocab = self.source_vectorizer.get_vocabulary()
        source_tokens = [vocab[i] for i in ids[0, :n].numpy()]
        lookup = {t: i for i, t in enumerate(self.target_vocabulary)}
        targets = [lookup.get(t, 1) for t in target_tokens] + [END_ID]
        state = self.model.initial_decoder_state(ids)
        previous, rows = START_ID, []
        for token in targets:
            _, state, weights = self.model.decode_step(tf.constant([previous]), state)
            rows.append(weights[0, :n].numpy())
            previous = token
        return source_tokens, list(target_tokens) + ["[end]"], np.stack(rows)

    # --- export --------------------------------------------------------------------------

    def export(self, export_dir, *, metadata=None, version=None):
        """SavedModel: `serving_default` (beam search) and `greedy`, strings -> strings."""
        spec = [tf.TensorSpec([None], tf.string, name="sources")]
        beam, greedy = self.function(), self.function(beam_width=1)
        endpoints = {"serving_default": (beam.python_function, spec),
                     "greedy": (greedy.python_function, spec)}
        card = {"beam_width": self.beam_width, "length_penalty": self.length_penalty,
                "max_source_length": self.max_source_length,
                "max_output_length": self.max_output_length,
                "outputs": {"translation": "detokenized text",
                            "tokens": "tokenized lowercase text" if self.target_detokenizer is None
                            else "SentencePiece pieces",
                            "length": "output tokens", "source_length": "source tokens used",
                            "truncated": "source longer than max_source_length and cut"}}
        card.update(metadata or {})
        track = [*self.models, self.source_vectorizer]
        if self.target_detokenizer is not None:
            track.append(self.target_detokenizer)
        return export_saved_model(export_dir, endpoints, track=track,
                                  metadata=card, version=version)


def plot_attention(source_tokens, target_tokens, weights, out_path, title=None):
    """Heat map of attention weights: target words (rows) x source words (columns)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    height = max(3.0, 0.35 * len(target_tokens) + 1.5)
    width = max(4.0, 0.45 * len(source_tokens) + 2.0)
    fig, ax = plt.subplots(figsize=(width, height))
    image = ax.imshow(weights, cmap="viridis", vmin=0.0, vmax=1.0, aspect="auto")
    ax.set_xticks(range(len(source_tokens)), source_tokens, rotation=60, ha="right")
    ax.set_yticks(range(len(target_tokens)), target_tokens)
    ax.set_xlabel("source")
    ax.set_ylabel("translation")
    if title:
        ax.set_title(title)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    fig.savefig(out_path, dpi=100)
    plt.close(fig)
    return out_path
