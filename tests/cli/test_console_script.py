"""The console script (`cli.app.main`): a mistyped option or argument is one line, exit 2, not a usage box."""

from __future__ import annotations

import sys

import pytest

from cli.app import main


def _main(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["rsd-sci", *args])
    with pytest.raises(SystemExit) as stop:
        main()
    return stop.value.code, capsys.readouterr()


def test_a_path_that_looks_like_an_option_is_one_line_saying_how_to_give_it(monkeypatch, capsys):
    code, out = _main(monkeypatch, capsys, "info", "-dash.h5")
    assert code == 2 and out.err.count("\n") == 1 and "'--'" in out.err and "╭" not in out.err, out.err


@pytest.mark.parametrize("args, says", [(["train", "--bogus"], "No such option: --bogus"),
                                        (["train", "--steps", "abc"], "'--steps'"),
                                        (["nonsense"], "No such command")])
def test_a_mistyped_option_or_value_is_one_line(monkeypatch, capsys, args, says):
    code, out = _main(monkeypatch, capsys, *args)
    assert code == 2 and out.err.count("\n") == 1 and says in out.err and out.err.startswith("rsd-sci: error:"), out.err


def test_the_commands_own_exit_codes_pass_through(monkeypatch, capsys, tmp_path):
    assert _main(monkeypatch, capsys, "info", str(tmp_path / "missing.h5"))[0] == 2
    assert _main(monkeypatch, capsys, "--help")[0] == 0
