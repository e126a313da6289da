"""BLEU and chrF with sacrebleu, by decoding method and by source length.

The references are always the test set's own files, exactly as given (see
`commands.references`): nothing in the metric path is tokenized by us.

- `bleu_detok`, the headline: sacreBLEU's standard score, our detokenized cased output
  against the raw references with sacreBLEU's 13a tokenizer; its signature is reported so
  the number can be reproduced. `bleu_detok_lc` is the same comparison with `lowercase=True`.
- `chrf`: sacreBLEU's chrF on the same output and raw references.
- `bleu_tok_lc`: the tokenized lowercased BLEU Multi30k papers quote. Against tokenized
  reference files when the test set has them (Multi30k's `*.lc.norm.tok.*`): the model's
  output tokens against those tokens as they are (`tokenize="none"`, `lowercase=True`);
  else against the raw references, tokenized by sacreBLEU (13a) and lowercased. Its
  signature says which (`tok:none` or `tok:13a`).

Scores a test set has no references for are `None` (a set with tokenized references only
has no sacreBLEU or chrF: scoring detokenized text against tokens says nothing).
"""

import time

import numpy as np
from sacrebleu.metrics import BLEU, CHRF

# Source-length buckets (in tokens) for the "long sentences suffer without attention" table.
LENGTH_BUCKETS = [(1, 9), (10, 14), (15, 19), (20, 29), (30, None)]


def bucket_name(low, high):
    return f"{low}+" if high is None else f"{low}-{high}"


def tokenized_bleu(hypotheses, references):
    """Tokens against tokens, as they are (no further splitting), case-insensitive."""
    return BLEU(tokenize="none", lowercase=True, force=True).corpus_score(
        list(hypotheses), [list(references)])


def _tok_lc(hypotheses_tok, hypotheses_detok, references_tok, references_raw):
    """`(sacrebleu BLEU metric, BLEUScore)` of the tokenized lowercased score (see above)."""
    if references_tok is not None:
        metric = BLEU(tokenize="none", lowercase=True, force=True)
        return metric, metric.corpus_score(list(hypotheses_tok), [list(references_tok)])
    metric = BLEU(lowercase=True)
    return metric, metric.corpus_score(list(hypotheses_detok), [list(references_raw)])


def headline_bleu(hypotheses_tok, hypotheses_detok, references_tok=None, references_raw=None):
    """The tokenized lowercased BLEU (`bleu_tok_lc`), for `val_bleu` after every epoch."""
    return _tok_lc(hypotheses_tok, hypotheses_detok, references_tok, references_raw)[1].score


def score(hypotheses_tok, hypotheses_detok, references_tok=None, references_raw=None):
    """The scores and sacrebleu's signatures for one set of hypotheses.

    `references_tok` / `references_raw`: the tokenized / raw reference sentences, or None
    where the test set has none of that form (at least one is needed).
    """
    if references_tok is None and references_raw is None:
        raise ValueError("no references to score against")
    report = {"bleu_detok": None, "bleu_detok_lc": None, "chrf": None,
              "bleu_detok_signature": None, "bleu_detok_lc_signature": None, "chrf_signature": None}
    if references_raw is not None:
        bleu, bleu_lc, chrf = BLEU(), BLEU(lowercase=True), CHRF()
        detok = bleu.corpus_score(list(hypotheses_detok), [list(references_raw)])
        detok_lc = bleu_lc.corpus_score(list(hypotheses_detok), [list(references_raw)])
        report.update(
            bleu_detok=round(detok.score, 2),
            bleu_detok_lc=round(detok_lc.score, 2),
            chrf=round(chrf.corpus_score(list(hypotheses_detok), [list(references_raw)]).score, 2),
            bleu_detok_signature=str(bleu.get_signature()),
            bleu_detok_lc_signature=str(bleu_lc.get_signature()),
            chrf_signature=str(chrf.get_signature()),
        )
    metric, tok = _tok_lc(hypotheses_tok, hypotheses_detok, references_tok, references_raw)
    report.update(bleu_tok_lc=round(tok.score, 2), bleu_tok_lc_signature=str(metric.get_signature()),
                  bleu_tok_lc_detail=str(tok))
    return report


def by_length(source_lengths, hypotheses_tok, hypotheses_detok, references_tok=None,
              references_raw=None):
    """Tokenized lowercase BLEU (`bleu_tok_lc`, as in `score`) per source-length bucket."""
    lengths = np.asarray(source_lengths)
    table = {}
    for low, high in LENGTH_BUCKETS:
        pick = (lengths >= low) & (lengths <= (high if high is not None else np.inf))
        idx = np.flatnonzero(pick)
        if len(idx) == 0:
            continue
        take = lambda xs: None if xs is None else [xs[i] for i in idx]  # noqa: E731
        bleu = headline_bleu(take(hypotheses_tok), take(hypotheses_detok), take(references_tok),
                             take(references_raw))
        table[bucket_name(low, high)] = {"sentences": int(len(idx)), "bleu_tok_lc": round(bleu, 2)}
    return table


def evaluate(translator, sources, references_tok, references_raw, *, beam_widths=(1, 5),
             length_penalty=None, batch_size=64):
    """Scores `translator` on a test set with each beam width (1 = greedy).

    `references_tok` / `references_raw` as in `score` (None: the test set has none).

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
            by_source_length=by_length(out["source_length"], out["tokens"], out["translation"],
                                       references_tok, references_raw),
            beam_width=width,
        )
        reports[name], outputs[name] = report, out
    return reports, outputs


def _cell(value, width):
    return f"{value:>{width}.2f}" if value is not None else f"{'-':>{width}}"


def format_report(reports, files=None):
    """A small text table: one row per decoding method, the signatures, the files scored,
    then BLEU by source length. `files`: `{"source", "raw", "tokenized"}` paths (or None)."""
    lines = [f"{'decoding':<9} {'sacreBLEU':>9} {'chrF':>6} {'BLEU tok-lc':>11} {'sent/s':>7}"]
    for name, r in reports.items():
        lines.append(f"{name:<9} {_cell(r['bleu_detok'], 9)} {_cell(r['chrf'], 6)} "
                     f"{_cell(r['bleu_tok_lc'], 11)} {r['sentences_per_second']:>7.1f}")
    first = next(iter(reports.values()))
    if first["bleu_detok_signature"]:
        lines.append(f"sacreBLEU: {first['bleu_detok_signature']}")
        lines.append(f"chrF:      {first['chrf_signature']}")
    else:
        lines.append("sacreBLEU, chrF: - (this test set has no raw references)")
    lines.append(f"tok-lc:    {first['bleu_tok_lc_signature']}")
    if files:
        lines.append(f"sources:              {files.get('source')}")
        if files.get("raw"):
            lines.append(f"references (raw):     {files['raw']}")
        if files.get("tokenized"):
            lines.append(f"references (tokens):  {files['tokenized']}")
    buckets = list(first["by_source_length"])
    lines.append("")
    lines.append("BLEU tok-lc by source length: " + "  ".join(
        f"{b} ({first['by_source_length'][b]['sentences']})" for b in buckets))
    for name, r in reports.items():
        lines.append(f"  {name:<7} " + "  ".join(
            f"{r['by_source_length'][b]['bleu_tok_lc']:>{len(b) + len(str(r['by_source_length'][b]['sentences'])) + 3}.2f}"
            for b in buckets))
    return "\n".join(lines)
