"""A run knows what it was trained on and from what: a resume on a measurement set changed under it, or
from a checkpoint or teacher file with a changed byte, is refused in one line (exit 2), or, for a damaged
checkpoint with a good previous one, falls back to that with a warning."""

from __future__ import annotations

import shutil

import pytest
import torch

from tests.support.cli_runner import cli, ok
from rsd_sci.engine.checkpoint import load_safetensors, load_training_state
from rsd_sci.engine.runlog import read_log

pytestmark = pytest.mark.usefixtures("one_thread")
SMALL = ["--modality", "mri", "--size", "32", "--n-train", "16", "--n-test", "8", "--preset", "tiny", "--batch", "4",
         "--center-fraction", "0.1", "--no-eval"]


def make_set(out, *flags):
    ok("data", "make", "--out", out, "--n-train", 16, "--n-test", 8, "--center-fraction", 0.1, *flags)
    return out


@pytest.fixture(scope="module")
def sets(tmp_path_factory):
    """The set the runs train on (R = 4, 32 × 32) and two it is swapped for: 16 × 16 images, R = 8."""
    root = tmp_path_factory.mktemp("sets")
    return dict(r4=make_set(root / "r4", "--size", 32), small=make_set(root / "small", "--size", 16),
                r8=make_set(root / "r8", "--size", 32, "--accel", 8))


@pytest.fixture(scope="module")
def runs(tmp_path_factory, sets):
    """Two finished runs (teacher 2 steps, distillation 1 iteration): one on --data SET, one on its own
    RUN/data (phantoms)."""
    root = tmp_path_factory.mktemp("runs")
    ok("train", "--out", root / "on-set", "--data", sets["r4"], "--steps", 2, "--distill-steps", 1, *SMALL)
    ok("train", "--out", root / "own", "--steps", 2, "--distill-steps", 1, *SMALL)
    return root


def refused(result, *words):
    """exit 2, one line, no traceback, holding each of `words`."""
    lines = result.output.strip().splitlines()
    assert result.exit_code == 2 and len(lines) == 1 and "Traceback" not in result.output, result.output
    for word in words:
        assert word in lines[0], lines[0]
    return lines[0]


def swapped_run(tmp_path, runs, sets, which, into):
    """A copy of run `which` whose set (SET or RUN/data) has its train.h5 replaced by the set `into`'s;
    returns (run, the flags that resume it)."""
    run = tmp_path / "run"
    shutil.copytree(runs / which, run)
    data = tmp_path / "set"
    if which == "on-set":
        shutil.copytree(sets["r4"], data)
    else:
        data = run / "data"
    shutil.copy(sets[into] / "train.h5", data / "train.h5")
    flags = ["--data", data] if which == "on-set" else []
    if which == "on-set":   # the run's own config names the original set: point it at the copy
        config = (run / "config.yaml").read_text().replace(str(sets["r4"]), str(data))
        (run / "config.yaml").write_text(config)
    return run, flags


@pytest.mark.parametrize("which, into, said", [("on-set", "small", "operator shape [16, 16], was [32, 32]"),
                                               ("own", "r8", "operator mask acceleration 8.0, was 4.0")])
@pytest.mark.parametrize("stage, more", [("teacher", ["--steps", 4]), ("distill", ["--steps", 2, "--distill-steps", 2])])
def test_a_resume_on_a_changed_set_is_refused_naming_the_change(tmp_path, runs, sets, which, into, said, stage, more):
    run, flags = swapped_run(tmp_path, runs, sets, which, into)
    line = refused(cli("train", "--out", run, "--stage", stage, *flags, *more, *SMALL), "train.h5",
                   "changed since this run started", said)
    assert len(line) < 250
    assert read_log(run / "log.jsonl") == read_log(runs / which / "log.jsonl")   # nothing trained


def flip_a_weight_bit(path, tensor):
    """Flip one bit in the middle of `tensor`'s bytes inside the file at `path`."""
    data = bytearray(path.read_bytes())
    where = data.find(tensor.contiguous().numpy().tobytes())
    assert where >= 0
    data[where + tensor.numel() * tensor.element_size() // 2] ^= 0x10
    path.write_bytes(bytes(data))


def largest_weight(state):
    return max((t for t in state.values() if isinstance(t, torch.Tensor)), key=torch.Tensor.numel)


@pytest.mark.parametrize("stage, part, more", [("teacher", "model", ["--steps", 6]),
                                               ("distill", "generator", ["--steps", 2, "--distill-steps", 3])])
def test_a_damaged_checkpoint_gives_way_to_the_previous_one_with_a_warning(tmp_path, runs, stage, part, more, caplog):
    run = tmp_path / "run"
    shutil.copytree(runs / "own", run)
    longer = ["--steps", 4] if stage == "teacher" else ["--steps", 2, "--distill-steps", 2]
    ok("train", "--out", run, "--stage", stage, *longer, *SMALL)   # a second checkpoint: the first is kept
    state = run / "checkpoints" / stage / "state.pt"
    assert state.with_name("state.previous.pt").is_file()
    flip_a_weight_bit(state, largest_weight(load_training_state(state)[part]))
    ok("train", "--out", run, "--stage", stage, *more, *SMALL)
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    previous = 2 if stage == "teacher" else 1
    assert warnings == [f"{state}: damaged: its contents do not match the digest written with them (a changed "
                        f"byte); resuming from the previous checkpoint {state.with_name('state.previous.pt')} "
                        f"(step {previous})"]
    assert [r["step"] for r in read_log(run / "log.jsonl") if r["stage"] == stage][-1] == more[-1]


@pytest.mark.parametrize("stage, part, more", [("teacher", "model", ["--steps", 4]),
                                               ("distill", "generator", ["--steps", 2, "--distill-steps", 2])])
def test_a_damaged_checkpoint_without_a_previous_one_is_refused(tmp_path, runs, stage, part, more):
    run = tmp_path / "run"
    shutil.copytree(runs / "own", run)
    state = run / "checkpoints" / stage / "state.pt"
    flip_a_weight_bit(state, largest_weight(load_training_state(state)[part]))
    refused(cli("train", "--out", run, "--stage", stage, *more, *SMALL), str(state), "damaged")


def test_a_damaged_teacher_file_is_refused_by_the_distillation(tmp_path, runs):
    run = tmp_path / "run"
    shutil.copytree(runs / "own", run, ignore=shutil.ignore_patterns("distill", "generator.safetensors"))
    teacher = run / "teacher.safetensors"
    flip_a_weight_bit(teacher, largest_weight(load_safetensors(teacher)[0]))
    refused(cli("train", "--out", run, "--stage", "distill", "--steps", 2, "--distill-steps", 1, *SMALL),
            str(teacher), "damaged")
