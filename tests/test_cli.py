"""The shared command-line behaviour: quiet start-up, --verbose, exit statuses.

The start-up tests run a fresh interpreter each (TensorFlow prints its start-up lines once
per process, from C++, straight to file descriptor 2), with the environment emptied the way
a user's shell would have it.
"""

import argparse
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from seqapps import cli

ROOT = Path(__file__).resolve().parents[1]

# A verb that uses TensorFlow (an op on the device) and then issues a Python warning.
SCRIPT = textwrap.dedent("""
    import argparse, sys, warnings
    from seqapps import cli

    def verb(args):
        import tensorflow as tf
        print(float(tf.reduce_sum(tf.ones([3]))))
        warnings.warn("our warning after start-up", UserWarning)
        tf.get_logger().warning("tensorflow's logger after start-up")  # its handler was made during it
        return 0

    parser = argparse.ArgumentParser()
    cli.add_verbose_argument(parser)
    parser.set_defaults(run=verb)
    cli.run_verb(parser, sys.argv[1:])
""")


def fresh_python(*args, env=None, script=SCRIPT):
    environ = {"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "PYTHONPATH": str(ROOT)}
    environ.update(env or {})
    return subprocess.run(
        [sys.executable, "-c", script, *args], capture_output=True, text=True, env=environ, cwd=ROOT,
        timeout=300,
    )


def test_quiet_by_default_but_warnings_after_start_up_still_show():
    result = fresh_python()
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "3.0"
    lines = result.stderr.splitlines()
    # Only the warning (python -c shows no source line) and the log line.
    assert lines == ["<string>:8: UserWarning: our warning after start-up",
                     "WARNING:tensorflow:tensorflow's logger after start-up"], result.stderr


@pytest.mark.parametrize("how", ["flag", "env"])
def test_verbose_brings_the_start_up_lines_back(how):
    result = fresh_python(*(["--verbose"] if how == "flag" else []),
                          env={cli.VERBOSE_ENV: "1"} if how == "env" else None)
    assert result.returncode == 0, result.stderr
    assert "All log messages before absl::InitializeLog() is called are written to STDERR" in result.stderr
    assert "UserWarning: our warning after start-up" in result.stderr


def test_the_environment_variable_set_to_0_is_quiet(monkeypatch):
    monkeypatch.delenv(cli.VERBOSE_ENV, raising=False)
    assert not cli.is_verbose(argparse.Namespace())
    assert cli.is_verbose(argparse.Namespace(verbose=True))
    monkeypatch.setenv(cli.VERBOSE_ENV, "0")
    assert not cli.is_verbose(argparse.Namespace())
    monkeypatch.setenv(cli.VERBOSE_ENV, "yes")
    assert cli.is_verbose(argparse.Namespace())


def test_help_does_not_import_tensorflow():
    script = textwrap.dedent("""
        import argparse, sys
        from seqapps import cli
        parser = argparse.ArgumentParser()
        cli.add_verbose_argument(parser)
        parser.set_defaults(run=lambda args: 0)
        try:
            cli.run_verb(parser, ["--help"])
        except SystemExit:
            pass
        print("tensorflow" in sys.modules)
    """)
    result = fresh_python(script=script)
    assert result.returncode == 0, result.stderr
    assert "--verbose" in result.stdout and "SEQAPPS_VERBOSE" in result.stdout
    assert result.stdout.strip().splitlines()[-1] == "False"


def test_verbose_may_be_given_on_the_top_parser_and_on_a_verb():
    top = argparse.ArgumentParser()
    cli.add_verbose_argument(top)
    verbs = top.add_subparsers(dest="verb")
    cli.add_verbose_argument(verbs.add_parser("train"))
    assert cli.is_verbose(top.parse_args(["--verbose", "train"]))  # a verb's default would hide it
    assert cli.is_verbose(top.parse_args(["train", "--verbose"]))
    assert not hasattr(top.parse_args(["train"]), "verbose")


def test_a_malformed_data_file_is_one_line_on_stderr_and_the_data_error_status(tmp_path):
    bad = tmp_path / "bad.txt"
    bad.write_text("1 a fine film\nno label here\n")
    result = subprocess.run(
        [sys.executable, "-m", "apps.sentiment", "train", "--data", str(bad), "--run-dir",
         str(tmp_path / "run"), "--quiet"],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
        env={"PATH": os.environ["PATH"], "HOME": os.environ.get("HOME", "/tmp"), "PYTHONPATH": str(ROOT)},
    )
    assert result.returncode == cli.DATA_ERROR_STATUS
    assert result.stderr.splitlines() == [
        f"error: {bad}, line 2: expected one example a line: an integer label, a space, the "
        "sentence; got 'no label here'."
    ]


def test_run_verb_statuses(capsys):
    from seqapps.data import DataError

    def verb_raising(error):
        parser = argparse.ArgumentParser()
        parser.set_defaults(run=lambda args: (_ for _ in ()).throw(error))
        return parser

    with pytest.raises(SystemExit) as info:
        cli.run_verb(verb_raising(DataError("f.txt, line 3: expected X; got 'y'.")), [])
    assert info.value.code == cli.DATA_ERROR_STATUS != 2
    assert str(info.value) == "error: f.txt, line 3: expected X; got 'y'."
    assert capsys.readouterr().err == "error: f.txt, line 3: expected X; got 'y'.\n"

    with pytest.raises(SystemExit) as info:
        cli.run_verb(verb_raising(KeyboardInterrupt()), [])
    assert info.value.code == cli.INTERRUPTED_STATUS == 130
    assert "resume" in capsys.readouterr().err

    with pytest.raises(SystemExit) as info:  # argparse: the command line itself is wrong
        cli.run_verb(verb_raising(ValueError()), ["--no-such-option"])
    assert info.value.code == 2


def test_data_file_arguments_and_skip_bad_lines_around_the_verb(tmp_path, capsys):
    from seqapps.data import readers

    path = tmp_path / "data.txt"
    path.write_bytes("1 caf\u00e9\nbad\n0 ok\n".encode("latin-1"))
    parser = argparse.ArgumentParser()
    cli.add_data_file_arguments(parser)
    parser.set_defaults(run=lambda args: readers.read_labelled_sentences(path, args.encoding or "utf-8"))
    assert parser.parse_args([]).encoding is None and not parser.parse_args([]).skip_bad_lines
    with pytest.raises(SystemExit) as info:
        cli.run_verb(parser, [])
    assert info.value.code == cli.DATA_ERROR_STATUS and "--encoding latin-1" in str(info.value)
    with pytest.raises(SystemExit, match="line 2"):
        cli.run_verb(parser, ["--encoding", "latin-1"])
    capsys.readouterr()
    assert cli.run_verb(parser, ["--encoding", "latin-1", "--skip-bad-lines"]) == [("caf\u00e9", 1), ("ok", 0)]
    assert capsys.readouterr().err.startswith(f"{path}: skipped 1 malformed line (2); line 2: expected")


def test_the_start_up_window_drops_native_writes_only():
    script = textwrap.dedent("""
        import logging, os, sys
        from seqapps import cli
        with cli._native_stderr_silenced():
            os.write(2, b"native, during\\n")
            print("python, during", file=sys.stderr)
            handler = logging.StreamHandler()  # bound to sys.stderr as it is now
        os.write(2, b"native, after\\n")
        logging.getLogger("t").addHandler(handler)
        logging.getLogger("t").warning("handler made during, used after")
    """)
    result = fresh_python(script=script)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines() == ["python, during", "native, after", "handler made during, used after"]
