"""BLEU and chrF with sacrebleu, by decoding method and by source length.

Two BLEU scores, because Multi30k papers and sacrebleu disagree on what BLEU is:

- `bleu_tok_lc`: tokenized lowercase BLEU, what Multi30k papers quote. Hypothesis tokens
  against the tokenized lowercased references, `tokenize="none"` (no further splitting).
- `bleu_detok`: sacrebleu's standard score: our detokenized, readable output against the
  raw (cased) references with sacrebleu's own 13a tokenizer; its signature is reported so
  the number can be reproduced. The model only ever writes lowercase (the training text
  is lowercased) and capitalizes the first letter, so German nouns cost it here;
  `bleu_detok_lc` is the same comparison case-insensitive.
- `chrf`: sacrebleu's chrF (character n-gram F-score) on the detokenized text.
"""

import time

import numpy as np
from sacrebleu.metrics import BLEU, CHRF

# Source-length buckets (in tokens) for the "long sentences suffer without attention" table.
LENGTH_BUCKETS = [(1, 9), (10, 14), (15, 19), (20, 29), (30, None)]


def bucket_name(low, high):
    return f"{low}+" if high is None else f"{low}-{high}"


def tokenized_bleu(hypotheses, references):
    return BLEU(tokenize="none", force=True).corpus_score(list(hypotheses), [list(references)])


def score(hypotheses_tok, hypotheses_detok, references_tok, references_raw):
    """The three scores and sacrebleu's signatures for one set of hypotheses."""
    bleu, bleu_lc, chrf = BLEU(), BLEU(lowercase=True), CHRF()
    detok = bleu.corpus_score(hypotheses_detok, [references_raw])
    detok_lc = bleu_lc.corpus_score(hypotheses_detok, [references_raw])
    tok = tokenized_bleu(hypotheses_tok, references_tok)
    return {
        "bleu_tok_lc": round(tok.score, 2),
        "bleu_detok": round(detok.score, 2),
        "bleu_detok_lc": round(detok_lc.score, 2),
        "chrf": round(chrf.corpus_score(hypotheses_detok, [references_raw]).score, 2),
        "bleu_detok_signature": str(bleu.get_signature()),
        "bleu_detok_lc_signature": str(bleu_lc.get_signature()),
        "chrf_signature": str(chrf.get_signature()),
        "bleu_tok_lc_detail": str(tok),
    }


def by_length(source_lengths, hypotheses_tok, references_tok):
    """Tokenized lowercase BLEU per source-length bucket."""
    lengths = np.asarray(source_lengths)
    table = {}
    for low, high in LENGTH_BUCKETS:
        pick = (lengths >= low) & (lengths <= (high if high is not None else np.inf))
        idx = np.flatnonzero(pick)
        if len(idx) == 0:
            continue
        bleu = tokenized_bleu([hypotheses_tok[i] for i in idx], [references_tok[i] for i in idx])
        table[bucket_name(low, high)] = {"sentences": int(len(idx)), "bleu_tok_lc": round(bleu.score, 2)}
    return table


def evaluate(translator, sources, references_tok, references_raw, *, beam_widths=(1, 5),
             length_penalty=None, batch_size=64):
    """Scores `translator` on a test set with each beam width (1 = greedy).

    Returns `({"greedy" | "beam5": report}, {"greedy" | "beam5": hypotheses})`.
    """
    reports, outputs = {}, {}
    for width in beam_widths:
        name = "greedy" if width == 1 else f"beam{width}"
        translator.function(width, length_penalty)  # trace first: time the translating only
        start = time.perf_counter()
        out = translator.translate_full(sources, beam_width=width, length_penalty=length_penalty,
                                        batch_size=batch_size)
        seconds = time.perf_counter() - start
        report = score(out["tokens"], out["translation"], references_tok, references_raw)
        report.update(
            sentences=len(sources),
            seconds=round(seconds, 2),
            sentences_per_second=round(len(sources) / max(seconds, 1e-9), 1),
            by_source_length=by_length(out["source_length"], out["tokens"], references_tok),
            beam_width=width,
        )
        reports[name], outputs[name] = report, out
    return reports, outputs


def format_report(reports):
    """A small text table: one row per decoding method, then BLEU by source length."""
    lines = [f"{'decoding':<9} {'BLEU tok-lc':>11} {'BLEU detok':>10} {'detok-lc':>8} {'chrF':>6} {'sent/s':>7}"]
    for name, r in reports.items():
        lines.append(f"{name:<9} {r['bleu_tok_lc']:>11.2f} {r['bleu_detok']:>10.2f} "
                     f"{r['bleu_detok_lc']:>8.2f} {r['chrf']:>6.2f} {r['sentences_per_second']:>7.1f}")
    first = next(iter(reports.values()))
    lines.append(f"sacrebleu: {first['bleu_detok_signature']}")
    lines.append(f"           {first['chrf_signature']}")
    buckets = list(first["by_source_length"])
    lines.append("")
    lines.append("BLEU tok-lc by source length: " + "  ".join(
        f"{b} ({first['by_source_length'][b]['sentences']})" for b in buckets))
    for name, r in reports.items():
        lines.append(f"  {name:<7} " + "  ".join(
            f"{r['by_source_length'][b]['bleu_tok_lc']:>{len(b) + len(str(r['by_source_length'][b]['sentences'])) + 3}.2f}"
            for b in buckets))
    return "\n".join(lines)
