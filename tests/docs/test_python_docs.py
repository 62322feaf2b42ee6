"""docs/python.md runs: its ```python blocks, in order and in one namespace, in a folder holding the tiny
run `runs/mri-r4` and the scans they read (the `api_folder` fixture), so the page cannot rot.

The iterative methods run 2 iterations here instead of their defaults (the same code, far quicker); the
page's `train` call resumes the fixture's finished run, which `rsd_sci.train` trained."""

import re
from pathlib import Path

import pytest

import rsd_sci
from rsd_sci.posterior.reconstruct import DEFAULT_STEPS

pytestmark = pytest.mark.usefixtures("one_thread")
PAGE = Path(__file__).resolve().parents[2] / "docs" / "python.md"


def python_blocks(text: str) -> list[str]:
    return re.findall(r"^```python\n(.*?)^```", text, flags=re.S | re.M)


def test_every_public_name_is_on_the_page():
    text = PAGE.read_text()
    missing = [name for name in rsd_sci.__all__ if f"`{name}" not in text]
    assert not missing, f"docs/python.md does not describe {missing}"


def test_the_examples_run(api_folder, monkeypatch, capsys):
    monkeypatch.chdir(api_folder)
    for method in DEFAULT_STEPS:
        monkeypatch.setitem(DEFAULT_STEPS, method, 2)
    blocks = python_blocks(PAGE.read_text())
    assert len(blocks) >= 7   # train, load, sample, two kinds of measurements, reconstruct, metrics
    namespace: dict = {}
    for i, block in enumerate(blocks, 1):
        exec(compile(block, f"docs/python.md, python block {i}", "exec"), namespace)
    printed = capsys.readouterr().out
    assert "complex64" in printed and "'ssim'" in printed and "'fid'" in printed
    mean, std, file_images = namespace["mean"], namespace["std"], namespace["file_images"]
    assert mean.shape == std.shape == (2, 1, 32, 32) and mean.is_complex() and not std.is_complex()
    assert file_images.shape == (2, 32, 32)    # the fastMRI file's slices at its reconstruction size
