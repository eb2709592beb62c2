"""The ``scdcca`` command line: fast help, a version, help text on every option."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

import scdcca
from scdcca.cli import build_parser, main

_NO_TORCH = (
    "import sys\n"
    "from scdcca.cli import main\n"
    "try:\n"
    "    main({argv!r})\n"
    "except SystemExit:\n"
    "    pass\n"
    "heavy = [m for m in ('torch', 'scvi', 'lightning', 'scanpy') if m in sys.modules]\n"
    "print('loaded:', heavy)\n"
)


@pytest.mark.parametrize("argv", [["--help"], ["demo", "--help"], ["--version"]])
def test_help_and_version_do_not_load_torch(argv):
    result = subprocess.run(
        [sys.executable, "-c", _NO_TORCH.format(argv=argv)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "loaded: []" in result.stdout


def test_version(capsys):
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.strip() == f"scdcca {scdcca.__version__}"


def test_every_option_has_help():
    parser = build_parser()
    (commands,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    for name, sub in {"scdcca": parser, **commands.choices}.items():
        for action in sub._actions:
            assert action.help, f"{name}: {action.option_strings or action.dest} has no help"


def test_help_is_plain_text():
    text = build_parser().format_help()
    for markup in ("``", ":class:", ":meth:"):
        assert markup not in text
