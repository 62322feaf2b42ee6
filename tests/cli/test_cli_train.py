"""`rsd-sci train` (mostly --stage teacher) on small phantoms, in-process (one torchrun run in a subprocess)."""

import functools
import os
import subprocess
import sys

import pytest
import torch
import yaml
from safetensors.torch import load_file

from tests.support import cli_runner
from rsd_sci.data.batches import load_batch
from rsd_sci.data.measurement_set import open_measurement_set
from rsd_sci.diffusion.model import build_model
from rsd_sci.engine.runlog import read_log
from rsd_sci.engine.model import load_model
from rsd_sci.engine.teacher import heldout_loss

SMALL = ["--stage", "teacher", "--size", "32", "--n-train", "16", "--n-test", "8", "--preset", "tiny", "--batch", "4",
         "--center-fraction", "0.2"]


train = functools.partial(cli_runner.cli, "train")   # `rsd-sci train ARGS`
ok = functools.partial(cli_runner.ok, "train")


@pytest.fixture(scope="module")
def mri_set(tmp_path_factory):
    out = tmp_path_factory.mktemp("sets") / "mri"
    cli_runner.ok("data", "make", "--out", out, "--size", "32", "--n-train", "16", "--n-test", "8",
                  "--center-fraction", "0.2")
    return out


def test_loss_falls_on_phantoms(tmp_path):
    run = tmp_path / "run"
    ok("--modality", "image", "--corruption", "noise", "--out", run, "--steps", "60", *SMALL)
    train_set, test_set = open_measurement_set(run / "data")
    teacher = load_model(run / "teacher.safetensors", kind="teacher")
    meta = teacher.meta
    assert meta["member"] == "tweedie" and meta["kind"] == "teacher"
    m = teacher.family.measure(load_batch(test_set, range(8)))
    torch.manual_seed(0)
    fresh = build_model(meta["operator"], meta["network"], meta["sigma_n"]["max"])
    trained, untrained = heldout_loss(teacher.denoiser, teacher, m, 0), heldout_loss(fresh.denoiser, fresh, m, 0)
    assert trained < 0.7 * untrained, (trained, untrained)
    assert (run / "log.jsonl").is_file() and (run / "config.yaml").is_file()
    assert (run / "checkpoints" / "teacher" / "state.pt").is_file()


def test_interrupt_and_resume_equals_an_uninterrupted_run(tmp_path, mri_set):
    ok("--data", mri_set, "--out", tmp_path / "straight", "--steps", "6", *SMALL)
    ok("--data", mri_set, "--out", tmp_path / "resumed", "--steps", "3", *SMALL)
    ok("--data", mri_set, "--out", tmp_path / "resumed", "--steps", "6", *SMALL)  # more steps: resumes at 3
    a = load_file(tmp_path / "straight" / "teacher.safetensors")
    b = load_file(tmp_path / "resumed" / "teacher.safetensors")
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-6, atol=1e-7)
    steps = [r["step"] for r in read_log(tmp_path / "resumed" / "log.jsonl")]
    assert steps[-1] == 6


@pytest.mark.parametrize("name, code", [("SIGTERM", 143), ("SIGINT", 130)])
def test_a_stage_stopped_by_a_signal_exits_128_plus_its_number_with_one_line(tmp_path, monkeypatch, mri_set,
                                                                             name, code):
    import rsd_sci.apps.train as run_module
    from rsd_sci.engine.loop import StageInterrupted

    def interrupted(*args, **kwargs):
        raise StageInterrupted(f"teacher: interrupted ({name}) at step 3 of 5; checkpoint saved; resume with "
                               "the same command", 3, name)

    monkeypatch.setattr(run_module, "run_training", interrupted)
    r = train("--data", mri_set, "--out", tmp_path / "run", "--steps", "5", *SMALL)
    assert r.exit_code == code and r.output.count("\n") == 1 and f"interrupted ({name})" in r.output


def test_conflicting_flags_are_refused(tmp_path, mri_set):
    run = tmp_path / "run"
    ok("--data", mri_set, "--out", run, "--steps", "2", *SMALL)
    r = train("--data", mri_set, "--out", run, "--steps", "2", *SMALL, "--lr", "0.1")
    assert r.exit_code == 2 and "conflict" in r.output and "lr" in r.output and "Traceback" not in r.output
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["lr"] != 0.1


@pytest.mark.parametrize("args,message", [
    (["--accel", "0.5"], "--accel must be at least 1"),
    (["--modality", "pet"], "unknown modality"),
    (["--preset", "huge"], "unknown preset"),
    (["--steps", "0"], "--steps must be at least 1"),
])
def test_bad_flags(tmp_path, args, message):
    r = train("--out", tmp_path / "run", *args)
    assert r.exit_code == 2 and message in r.output and "Traceback" not in r.output, r.output
    assert not (tmp_path / "run").exists()


def test_data_folder_without_usable_files(tmp_path):
    (tmp_path / "src").mkdir()
    (tmp_path / "src" / "readme.txt").write_text("nothing")
    r = train("--data", tmp_path / "src", "--out", tmp_path / "run", "--steps", "1")
    assert r.exit_code == 2 and "no usable data" in r.output


def test_modality_must_match_the_data(tmp_path, mri_set):
    r = train("--data", mri_set, "--modality", "ct", "--out", tmp_path / "run", "--steps", "1", *SMALL)
    assert r.exit_code == 2 and "holds mri data" in r.output


def test_out_of_memory_is_a_one_line_error(tmp_path, monkeypatch, mri_set):
    import rsd_sci.apps.train as run_module

    def oom(*args, **kwargs):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory")

    monkeypatch.setattr(run_module, "run_training", oom)
    r = train("--data", mri_set, "--out", tmp_path / "run", "--steps", "1", *SMALL)
    assert r.exit_code == 2 and "does not fit in GPU memory" in r.output and "Traceback" not in r.output


def test_dry_run_prints_the_config_and_writes_nothing(tmp_path):
    r = train("--modality", "ct", "--out", tmp_path / "run", "--dry-run")
    assert r.exit_code == 0
    cfg = yaml.safe_load(r.output)
    assert cfg["modality"] == "ct" and cfg["preset"] == "tiny" and cfg["make"]["views"] == 20
    assert not (tmp_path / "run").exists()


def test_two_processes_match_one(tmp_path, mri_set):
    """torchrun with 2 gloo processes and the same global batch gives the same teacher AND generator as
    1 process (--stage all: both engines' keyed draws, sharding and DDP). float32: bf16 autocast rounds a
    half batch's convolutions otherwise than a whole one's, above this test's tolerance."""
    both = [a for a in SMALL if a not in ("--stage", "teacher")] + ["--stage", "all", "--distill-steps", "2", "--no-eval",
                                                                    "--precision", "float32"]
    ok("--data", mri_set, "--out", tmp_path / "one", "--steps", "3", *both, "--device", "cpu")
    env = dict(os.environ, OMP_NUM_THREADS="1")
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "cli",
           "train", "--data", str(mri_set), "--out", str(tmp_path / "two"), "--steps", "3", *both,
           "--device", "cpu"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    for name in ("teacher.safetensors", "generator.safetensors"):
        a = load_file(tmp_path / "one" / name)
        b = load_file(tmp_path / "two" / name)
        for k in a:
            # float noise: the gloo all-reduce sums in another order, and Adam's first steps are about
            # lr·sign(g), so a gradient within an ulp of 0 may step the other way in one element; a wrong
            # average or shard moves every element. So compare each tensor as a whole, relative to its norm.
            x, y = a[k].double(), b[k].double()
            assert torch.linalg.vector_norm(x - y) <= 1e-3 * torch.linalg.vector_norm(x) + 1e-9, (name, k)
