"""`--config FILE` is read as a small configuration: what is not one ends in one line naming the file."""

from __future__ import annotations

import os

import pytest
from typer.testing import CliRunner

from cli.app import app

runner = CliRunner()


def _dry_run(config):
    return runner.invoke(app, ["train", "--dry-run", "--config", str(config)])


@pytest.mark.parametrize("name, text, message", [
    ("repeated", "steps: 5\nsteps: 7\n", "gives 'steps' more than once"),
    ("alias bomb", "a: &a [x, x, x]\nb: &b [*a, *a, *a]\nc: [*b, *b, *b]\n", "anchors or aliases"),
    ("deep", "steps: " + "[" * 20000 + "]" * 20000 + "\n", "nested more than"),
    ("python tag", "steps: !!python/object/apply:os.system ['true']\n", "cannot read YAML"),
])
def test_what_a_configuration_is_not_is_refused_in_one_line(tmp_path, name, text, message):
    config = tmp_path / "c.yaml"
    config.write_text(text)
    r = _dry_run(config)
    assert r.exit_code == 2 and message in r.output and str(config) in r.output, r.output
    assert r.output.count("\n") == 1 and len(r.output) < 300


def test_a_fifo_or_a_device_is_not_read(tmp_path):
    fifo = tmp_path / "fifo.yaml"
    os.mkfifo(fifo)
    for config in (fifo, "/dev/zero"):
        r = _dry_run(config)   # reading either would never end
        assert r.exit_code == 2 and "is not a regular file" in r.output, r.output


def test_a_file_too_large_for_a_configuration_is_not_read(tmp_path):
    config = tmp_path / "big.yaml"
    config.write_text("# " + "x" * (2 << 20) + "\n")
    r = _dry_run(config)
    assert r.exit_code == 2 and "too large for a configuration" in r.output, r.output


def test_a_plain_configuration_still_works(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text("steps: 5\nbatch: 2\nmodality: ct\n")
    r = _dry_run(config)
    assert r.exit_code == 0 and "steps: 5" in r.output and "modality: ct" in r.output, r.output
