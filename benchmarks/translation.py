"""Multi30k en->de: the default translator against the no-attention bottleneck, in one run.

    python benchmarks/translation.py                              # full: default settings
    python benchmarks/translation.py --minutes 60                 # each variant <= 60 min
    python benchmarks/translation.py --epochs 1 --max-train 2000  # smoke test (minutes)
    python benchmarks/translation.py --train-args "--raw --vocab subword" --out runs/bench-subword
    python benchmarks/translation.py --variants bahdanau --vocabs subword,word-raw --minutes 8
                                                                  # a quick run: both vocabularies
    python benchmarks/translation.py --test test_2017_flickr --data path/to/multi30k  # more test sets
    python benchmarks/translation.py --variants bahdanau --minutes 90 --epochs 60 \
        --train-args "--ensemble 2 --mixed-precision bfloat16"   # the row that meets tok-lc >= 37

Trains each variant with `python -m apps.translation train` (same code path, same
defaults: Bahdanau attention, bidirectional GRU encoder, 256 units, early stopping on
validation loss), then
prints, on the 1000 sentences of test 2016:

- sacreBLEU (the headline: detokenized cased output against the raw references, with its
  signature), chrF, and the tokenized lowercased BLEU Multi30k papers quote (against the
  tokenized reference files where the test set has them, else sacreBLEU's 13a, lowercased);
  greedy vs beam-5, with sentences/s of each on this machine, and the files scored;
- tokenized BLEU by source length: the seeds' claim is that without attention the long
  sentences suffer (the whole source must squeeze through one fixed-size vector);
- wall time of training.

Targets (issue #16, beam 5, 2 CPU cores): sacreBLEU >= 35 and tokenized lowercased BLEU >= 37
within 90 minutes, sacreBLEU >= 32 within 60 (`--minutes 60`); with `--minutes 8` the subword
default beats the word model on the raw files (`--vocabs subword,word-raw`). Results land in `<out>/benchmark.json` and, as a Markdown table, in
`<out>/benchmark.md` (for the README).
"""

import argparse
import json
import os
import pathlib
import platform
import sys
import time

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))

from apps.translation.__main__ import run  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--out", default="runs/benchmark-translation",
                   help="folder for the run folders and results (default runs/benchmark-translation)")
    p.add_argument("--variants", default="bahdanau,none",
                   help="comma-separated attention variants to train (default bahdanau,none: "
                        "the default configuration and the bottleneck; luong also possible)")
    p.add_argument("--epochs", type=int, default=15, help="maximum epochs per variant (default 15)")
    p.add_argument("--minutes", type=float, default=None,
                   help="training time budget per variant, in minutes (default: none)")
    p.add_argument("--max-train", type=int, default=None,
                   help="train on a seeded subset of N pairs (smoke runs; default all 29000)")
    p.add_argument("--beam", type=int, default=5, help="beam width compared with greedy (default 5)")
    p.add_argument("--pair", default="en-de", help="language pair (default en-de)")
    p.add_argument("--data", default=None,
                   help="train on this data (as `train --data`; default the bundled Multi30k)")
    p.add_argument("--test", action="append", default=[],
                   help="also score this test set (as `evaluate --test`: SRC_FILE,TGT_FILE or a "
                        "test set's name in the data folder); may be repeated")
    p.add_argument("--overwrite", action="store_true",
                   help="retrain from scratch instead of resuming/reusing the run folders")
    p.add_argument("--vocabs", default="",
                   help="comma-separated vocabularies, each trained with every variant: subword "
                        "(--raw --vocab subword: cased SentencePiece), word-raw (--raw --vocab word: "
                        "words of the raw files), word (--vocab word: the tokenized lowercased "
                        "files); default: none added (train's own default)")
    p.add_argument("--train-args", default="",
                   help="extra options passed to `train`, e.g. \"--units 512 --cell lstm\"")
    return p.parse_args(argv)


VOCABS = {"subword": ["--raw", "--vocab", "subword"], "word-raw": ["--raw", "--vocab", "word"],
          "word": ["--vocab", "word"]}


def train_variant(args, attention, vocab=None):
    run_dir = pathlib.Path(args.out) / (f"{args.pair}-{attention}" + (f"-{vocab}" if vocab else ""))
    argv = ["train", "--run-dir", str(run_dir), "--pair", args.pair, "--attention", attention,
            "--epochs", str(args.epochs), "--beam", str(args.beam), "--quiet"]
    if args.minutes:
        argv += ["--max-minutes", str(args.minutes)]
    if args.max_train:
        argv += ["--max-train", str(args.max_train)]
    if args.data:
        argv += ["--data", args.data]
    if args.overwrite:
        argv.append("--overwrite")
    argv += (VOCABS[vocab] if vocab else []) + args.train_args.split()
    print(f"\n=== {attention}: python -m apps.translation {' '.join(argv)}", flush=True)
    start = time.time()
    report = run(argv)
    report["wall_seconds"] = round(time.time() - start, 1)
    report["run_dir"] = str(run_dir)
    for test in args.test:
        report.setdefault("extra_tests", {})[test] = run(
            ["evaluate", "--run-dir", str(run_dir), "--beam", str(args.beam), "--test", test])
    return report


def _number(value):
    return "-" if value is None else f"{value:.2f}"


def markdown(results, beam):
    beam_key = f"beam{beam}"
    lines = [
        f"| variant | epochs | train min | sacreBLEU beam-{beam} | chrF beam-{beam} | "
        f"BLEU tok-lc greedy | BLEU tok-lc beam-{beam} | greedy sent/s | beam-{beam} sent/s |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results.items():
        g, b = r["test"]["greedy"], r["test"][beam_key]
        lines.append(
            f"| {name} | {r['epochs_finished']} | {r['train_seconds_this_session'] / 60:.1f} | "
            f"{_number(b['bleu_detok'])} | {_number(b['chrf'])} | {_number(g['bleu_tok_lc'])} | "
            f"{_number(b['bleu_tok_lc'])} | {g['sentences_per_second']:.0f} | {b['sentences_per_second']:.0f} |")
        for test, reports in r.get("extra_tests", {}).items():
            g, b = reports["greedy"], reports[beam_key]
            lines.append(f"| {name}, test set {test} | | | {_number(b['bleu_detok'])} | "
                         f"{_number(b['chrf'])} | {_number(g['bleu_tok_lc'])} | "
                         f"{_number(b['bleu_tok_lc'])} | {g['sentences_per_second']:.0f} | "
                         f"{b['sentences_per_second']:.0f} |")
    first = next(iter(results.values()))["test"][beam_key]
    buckets = list(first["by_source_length"])
    lines += ["", f"BLEU tok-lc (beam-{beam}) by source length in tokens (sentences per bucket in brackets):", "",
              "| variant | " + " | ".join(f"{b} ({first['by_source_length'][b]['sentences']})" for b in buckets) + " |",
              "|---|" + "---|" * len(buckets)]
    for name, r in results.items():
        table = r["test"][beam_key]["by_source_length"]
        lines.append(f"| {name} | " + " | ".join(
            f"{table[b]['bleu_tok_lc']:.2f}" if b in table else "-" for b in buckets) + " |")
    lines += ["", "Anchors (issue #16, beam 5, 2 CPU cores): sacreBLEU >= 35 and BLEU tok-lc >= 37 "
              "within 90 minutes of training, >= 32 sacreBLEU within 60; the word-level lowercased "
              "model of the previous release: BLEU tok-lc 36.92, sacreBLEU 7.35 against the raw "
              "references; with --minutes 8, subword above word-raw in sacreBLEU."]
    lines += ["", f"sacreBLEU signature: `{first['bleu_detok_signature']}`",
              f"chrF signature: `{first['chrf_signature']}`",
              f"BLEU tok-lc signature: `{first['bleu_tok_lc_signature']}`", "", "Files scored:", ""]
    for name, r in results.items():
        for test, reports in [("test", r["test"])] + list(r.get("extra_tests", {}).items()):
            files = reports[beam_key]["files"]
            lines.append(f"- {name}, {test}: sources `{files['source']}`; raw references "
                         f"`{files['raw']}`; tokenized references `{files['tokenized']}`")
    return "\n".join(lines)


def main(argv=None):
    args = parse_args(argv)
    variants = [v.strip() for v in args.variants.split(",") if v.strip()]
    out = pathlib.Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    vocabs = [v.strip() for v in args.vocabs.split(",") if v.strip()]
    unknown = sorted(set(vocabs) - set(VOCABS))
    if unknown:
        raise SystemExit(f"--vocabs: unknown {', '.join(unknown)}; choose from {', '.join(VOCABS)}")
    results = {}
    for attention in variants:
        for vocab in vocabs or [None]:
            results[attention + (f" {vocab}" if vocab else "")] = train_variant(args, attention, vocab)

    import tensorflow as tf

    print("\n" + "=" * 100)
    print(f"Multi30k {args.pair} test 2016, {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs, TensorFlow {tf.__version__}"
          + (f", training subset {args.max_train} pairs" if args.max_train else ""))
    table = markdown(results, args.beam)
    print(table)
    (out / "benchmark.md").write_text(table + "\n")
    (out / "benchmark.json").write_text(json.dumps(
        {"args": vars(args), "results": results}, indent=2, default=str) + "\n")
    print(f"\nresults: {out / 'benchmark.json'}, {out / 'benchmark.md'}")
    return results


if __name__ == "__main__":
    main()
