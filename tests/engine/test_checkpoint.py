"""Training state (torch.save / weights_only load) and safetensors model exports."""

import json
import os

import pytest
import torch
from torch import nn

from rsd_sci import __version__
from rsd_sci.engine import checkpoint as ckpt
from rsd_sci.engine.checkpoint import (export_safetensors, load_safetensors, load_training_state,
                                       rng_state, save_training_state, set_rng_state)
from rsd_sci.errors import InputError


class Evil:
    """Unpickling this would run a command creating a marker file (it must never be constructed)."""

    marker = ""

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def _trained_adam():
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.9, 0.999))
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    return model, opt


def test_training_state_round_trip(tmp_path):
    model, opt = _trained_adam()
    state = {"model": model.state_dict(), "optimizer": opt.state_dict(), "step": 7, "lr": 2.5e-4,
             "stage": "teacher", "nested": {"a": [1, 2.0, "x"], "b": {"c": torch.arange(3)}},
             "flag": True, "none": None, "rng": rng_state()}
    path = tmp_path / "checkpoints" / "teacher" / "last.pt"
    save_training_state(path, state)
    loaded = load_training_state(path)
    assert loaded["step"] == 7 and loaded["lr"] == 2.5e-4 and loaded["stage"] == "teacher"
    assert loaded["nested"]["a"] == [1, 2.0, "x"] and torch.equal(loaded["nested"]["b"]["c"], torch.arange(3))
    assert loaded["flag"] is True and loaded["none"] is None
    for key, value in model.state_dict().items():
        assert torch.equal(loaded["model"][key], value)
    model2 = nn.Linear(3, 2)
    opt2 = torch.optim.Adam(model2.parameters())
    model2.load_state_dict(loaded["model"])
    opt2.load_state_dict(loaded["optimizer"])
    assert torch.equal(opt2.state[opt2.param_groups[0]["params"][0]]["exp_avg"],
                       opt.state[opt.param_groups[0]["params"][0]]["exp_avg"])
    assert opt2.param_groups[0]["betas"] == (0.9, 0.999)
    assert [p.name for p in tmp_path.rglob("*tmp*")] == []  # no temporary file left


def test_rng_state_restores_the_stream(tmp_path):
    torch.manual_seed(5)
    save_training_state(tmp_path / "s.pt", {"rng": rng_state()})
    expected = torch.rand(5)
    torch.manual_seed(99)
    set_rng_state(load_training_state(tmp_path / "s.pt")["rng"])
    assert torch.equal(torch.rand(5), expected)


def test_pickled_object_is_refused_and_never_constructed(tmp_path):
    marker = tmp_path / "code_ran"
    Evil.marker = str(marker)
    path = tmp_path / "evil.pt"
    torch.save({"step": 1, "payload": Evil()}, path)  # bypasses save_training_state's check
    with pytest.raises(InputError, match="refused"):
        load_training_state(path)
    assert not marker.exists()
    # the writer refuses such values up front, leaving any previous file intact
    good = tmp_path / "good.pt"
    save_training_state(good, {"step": 1})
    with pytest.raises(TypeError, match="payload"):
        save_training_state(good, {"step": 2, "payload": Evil()})
    assert load_training_state(good) == {"step": 1}


def test_unreadable_checkpoints_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="no such"):
        load_training_state(tmp_path / "missing.pt")
    text = tmp_path / "text.pt"
    text.write_text("not a checkpoint\n" * 5)
    with pytest.raises(InputError, match="not a readable"):
        load_training_state(text)
    good = tmp_path / "good.pt"
    save_training_state(good, {"w": torch.randn(1000)})
    cut = tmp_path / "cut.pt"
    cut.write_bytes(good.read_bytes()[:500])
    with pytest.raises(InputError):
        load_training_state(cut)


def test_save_is_atomic_when_the_write_fails(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    save_training_state(path, {"step": 1})

    def failing_save(obj, target):
        with open(target, "wb") as handle:
            handle.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(ckpt.torch, "save", failing_save)
    with pytest.raises(OSError, match="disk full"):
        save_training_state(path, {"step": 2})
    assert load_training_state(path) == {"step": 1}
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]


def test_safetensors_round_trip_with_metadata(tmp_path):
    lin = nn.Linear(4, 4)
    tied = {"a.weight": lin.weight, "b.weight": lin.weight, "bias": lin.bias.to(torch.bfloat16)}
    meta = {"config": {"preset": "tiny", "lr": 1e-4, "channels": [32, 64]}, "scale": 2.5, "steps": 100,
            "note": "plain text", "numeric_string": "123", "flag": False}
    path = tmp_path / "teacher.safetensors"
    export_safetensors(path, tied, meta)
    sd, decoded = load_safetensors(path)
    assert torch.equal(sd["a.weight"], lin.weight.detach()) and torch.equal(sd["b.weight"], sd["a.weight"])
    assert sd["bias"].dtype == torch.bfloat16
    for key, value in meta.items():
        assert decoded[key] == value and type(decoded[key]) is type(value)
    assert decoded["format"] == "rsd-sci model" and decoded["rsd_sci_version"] == __version__
    # in the file itself every value is a string (other tools read the metadata as text)
    from safetensors import safe_open
    with safe_open(str(path), "pt") as handle:
        raw = handle.metadata()
    assert all(isinstance(v, str) for v in raw.values())
    assert json.loads(raw["config"]) == meta["config"] and raw["note"] == "plain text"


def test_the_same_model_gives_the_same_bytes(tmp_path):
    """The safetensors library writes the metadata map in a random order; the export sorts it, so the
    same weights and metadata give a byte-identical file (a checksum a researcher can compare)."""
    meta = {f"key{i}": {"value": i} for i in range(12)} | {"name": "é"}
    written = []
    for i in range(4):
        export_safetensors(tmp_path / f"m{i}.safetensors", {"w": torch.arange(6.0), "b": torch.ones(2)}, meta)
        written.append((tmp_path / f"m{i}.safetensors").read_bytes())
    assert all(w == written[0] for w in written)
    n = int.from_bytes(written[0][:8], "little")
    keys = list(json.loads(written[0][8:8 + n])["__metadata__"])
    assert keys == sorted(keys) and load_safetensors(tmp_path / "m0.safetensors")[1]["name"] == "é"


def test_safetensors_metadata_validation(tmp_path):
    with pytest.raises(ValueError, match="reserved"):
        export_safetensors(tmp_path / "m.safetensors", {"w": torch.ones(1)}, {"format": "x"})
    with pytest.raises(TypeError, match="JSON"):
        export_safetensors(tmp_path / "m.safetensors", {"w": torch.ones(1)}, {"t": torch.ones(1)})
    assert not (tmp_path / "m.safetensors").exists()


def test_non_rsd_sci_files_are_input_errors(tmp_path):
    from safetensors.torch import save_file

    with pytest.raises(InputError, match="no such"):
        load_safetensors(tmp_path / "missing.safetensors")
    text = tmp_path / "text.safetensors"
    text.write_text("hello, this is not a model\n")
    with pytest.raises(InputError, match="not a safetensors"):
        load_safetensors(text)
    good = tmp_path / "good.safetensors"
    export_safetensors(good, {"w": torch.randn(256)}, {"k": 1})
    cut = tmp_path / "cut.safetensors"
    cut.write_bytes(good.read_bytes()[:-100])
    with pytest.raises(InputError, match="not a safetensors"):
        load_safetensors(cut)
    foreign = tmp_path / "foreign.safetensors"
    save_file({"w": torch.ones(2)}, str(foreign), metadata={"format": "pt"})
    with pytest.raises(InputError, match="without rsd-sci metadata"):
        load_safetensors(foreign)
    err = pytest.raises(InputError, load_safetensors, foreign).value
    assert err.path == str(foreign)


def test_a_full_disk_while_saving_is_one_line_and_the_last_checkpoint_stands(tmp_path, monkeypatch):
    """torch.save on a full disk fails with a RuntimeError about stream positions (seen on a 24 MiB
    tmpfs); with the disk nearly full that is one InputError naming the folder, and the previous file
    and no temporary remain."""
    import shutil
    from collections import namedtuple

    path = tmp_path / "ckpt" / "state.pt"
    save_training_state(path, {"step": 1})

    def full(*args, **kwargs):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 6692032 vs 6691920")

    monkeypatch.setattr(torch, "save", full)
    monkeypatch.setattr(shutil, "disk_usage", lambda p: namedtuple("u", "total used free")(2 ** 30, 2 ** 30, 0))
    with pytest.raises(InputError, match="the disk is full"):
        save_training_state(path, {"step": 2})
    assert load_training_state(path)["step"] == 1 and [p.name for p in path.parent.iterdir()] == ["state.pt"]
    monkeypatch.setattr(shutil, "disk_usage", lambda p: namedtuple("u", "total used free")(2 ** 40, 0, 2 ** 40))
    with pytest.raises(RuntimeError):   # with room on the disk it is not blamed on the disk
        save_training_state(path, {"step": 2})
