"""One export helper for every app: raw-string signatures in a versioned SavedModel folder.

    export_dir/
      1/  saved_model.pb, variables/, assets/   <- TensorFlow Serving's <model>/<version>/ layout
          signatures.md                        <- the inputs and outputs of every signature
          metadata.json                        <- model card: data, vocabulary, metrics, config
      2/  ...

Tracing happens with the cuDNN kernel and XLA-compiled loops switched off, so the graph
holds only ops every TensorFlow build has: an export made on a GPU machine serves on CPU.
It also happens with the recurrences forward-only (`seqapps.layers.forward_only`): serving
needs no gradient, and a SavedModel that carried our hand-written (custom) gradient would
warn on every load that the gradient was not saved.
"""

import json
import pathlib

import keras
import tensorflow as tf

import seqapps
from seqapps.layers import compiled_loops, cudnn_allowed, forward_only


def next_version_dir(export_dir):
    """`export_dir/<n+1>` where n is the highest numbered version already there."""
    export_dir = pathlib.Path(export_dir)
    versions = [int(p.name) for p in export_dir.glob("*") if p.name.isdigit()]
    return export_dir / str(max(versions, default=0) + 1)


def latest_version_dir(export_dir):
    """The folder to load: `export_dir` itself if it is a SavedModel, else its newest version."""
    export_dir = pathlib.Path(export_dir)
    if (export_dir / "saved_model.pb").exists():
        return export_dir
    versions = [int(p.name) for p in export_dir.glob("*") if p.name.isdigit()]
    if not versions:
        raise FileNotFoundError(
            f"no SavedModel in {export_dir}: expected saved_model.pb or numbered version folders "
            "(run the app's `export` first)"
        )
    return export_dir / str(max(versions))


def export_saved_model(export_dir, endpoints, *, track=(), metadata=None, version=None):
    """Writes a SavedModel with one signature per endpoint.

    endpoints: {name: (tf.function-able fn, input_signature list)}; the first is also
        `serving_default`.
    track: Keras layers/models whose variables and lookup tables the functions use.
    Returns the version folder written.
    """
    export_dir = pathlib.Path(export_dir)
    for path in (export_dir, *export_dir.parents):  # checked before anything is traced
        if path.exists():
            if not path.is_dir():
                raise ValueError(
                    f"{path}: is a file, not a folder; the export writes numbered version "
                    f"folders inside {export_dir}: pass a new or existing folder"
                )
            break
    out = export_dir / str(version) if version else next_version_dir(export_dir)
    archive = keras.export.ExportArchive()
    for resource in track:
        archive.track(resource)
    with cudnn_allowed(False), compiled_loops(False), forward_only(True):
        for i, (name, (fn, signature)) in enumerate(endpoints.items()):
            archive.add_endpoint(name, fn, input_signature=signature)
            if i == 0 and name != "serving_default":
                archive.add_endpoint("serving_default", fn, input_signature=signature)
        archive.write_out(str(out), verbose=False)
    write_signatures_md(out)
    card = {"seqapps_version": seqapps.__version__, "tensorflow_version": tf.__version__}
    card.update(metadata or {})
    (out / "metadata.json").write_text(json.dumps(card, indent=2, sort_keys=True, default=str) + "\n")
    return out


def write_signatures_md(saved_model_dir):
    """Lists every signature's inputs and outputs (what a serving client must send)."""
    loaded = tf.saved_model.load(str(saved_model_dir))
    lines = [f"# Signatures of {pathlib.Path(saved_model_dir).name}", ""]
    for name, fn in sorted(loaded.signatures.items()):
        lines.append(f"## `{name}`")
        lines.append("")
        lines.append("| | name | dtype | shape |")
        lines.append("|---|---|---|---|")
        for arg, spec in sorted(fn.structured_input_signature[1].items()):
            lines.append(f"| input | `{arg}` | {spec.dtype.name} | {spec.shape} |")
        for out, spec in sorted(fn.structured_outputs.items()):
            lines.append(f"| output | `{out}` | {spec.dtype.name} | {spec.shape} |")
        lines.append("")
    (pathlib.Path(saved_model_dir) / "signatures.md").write_text("\n".join(lines))


def clean_utf8(strings):
    """Invalid UTF-8 bytes become U+FFFD instead of failing the request."""
    return tf.strings.unicode_transcode(
        strings, "UTF-8", "UTF-8", errors="replace", replacement_char=0xFFFD
    )
