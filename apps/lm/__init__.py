"""Next-word and next-character language models: train, evaluate, generate, complete, score,
tune, export, and the seeds' diagnostics. `python -m apps.lm --help` lists the verbs; every
verb is also a function here with the same name (`apps.lm.train(...)`, `apps.lm.score(...)`).
"""

_COMMANDS = ("train", "evaluate", "generate", "complete", "score", "export", "load_run", "server_for")
_DIAGNOSTICS = ("gradient_flow", "cells", "embeddings")


def __getattr__(name):  # lazy: `python -m apps.lm --help` should not wait for TensorFlow
    if name in _COMMANDS:
        from apps.lm import commands

        return getattr(commands, name)
    if name in _DIAGNOSTICS:
        from apps.lm import diagnostics

        return getattr(diagnostics, name)
    if name == "tune":
        from apps.lm import tuning

        return tuning.tune
    raise AttributeError(f"module 'apps.lm' has no attribute {name!r}")


__all__ = [*_COMMANDS, *_DIAGNOSTICS, "tune"]
