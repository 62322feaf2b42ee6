"""recipes/fastmri-brain-r4*.yaml, the published fastMRI brain R = 4 experiment: their keys are options and
hold the published values, and the two commands run end to end at smoke size on fastMRI-schema files."""

from pathlib import Path

import h5py
import pytest
import yaml

from cli.config_file import read_config
from tests.support.cli_runner import ok
from tests.support.fastmri_schema import make_fastmri_kspace, write_fastmri_file

pytestmark = pytest.mark.usefixtures("one_thread")
RECIPES = Path(__file__).resolve().parents[2] / "recipes"
TRAIN, DATA = RECIPES / "fastmri-brain-r4.yaml", RECIPES / "fastmri-brain-r4-data.yaml"


def test_the_train_recipe_resolves_to_the_published_values(tmp_path):
    cfg = yaml.safe_load(ok("train", "--config", TRAIN, "--dry-run", "--out", tmp_path / "run").output)
    published = dict(modality="mri", preset="fastmri", lr=2e-4, batch=8, grad_clip=1.0, g_lr=1e-6, fake_lr=5e-6,
                     alpha=1.2, t_max=800, sigma_init=2.5, fake_updates=1, fake_warmup=0, gan_weight=0.0,
                     loss_space="full")
    assert {k: cfg[k] for k in published} == published


def test_the_data_recipe_holds_the_published_preparation():
    from rsd_sci.data.make import MakeSpec
    from rsd_sci.physics.masks import fastmri_line_mask

    options = read_config(DATA)
    make_spec = MakeSpec(**options, input="brain/")   # every key a `data make` option MakeSpec takes
    make_spec.validate()
    assert (make_spec.source, make_spec.accel, make_spec.mask, make_spec.virtual_coils) == ("fastmri", 4, "random", 4)
    mask = fastmri_line_mask("random", 320, [make_spec.center_fraction], [4], seed=0)
    assert int(mask.center.sum()) == 20          # 20 calibration lines of 320


def test_the_recipe_runs_end_to_end_at_smoke_size(tmp_path):
    """3 volumes of 2 slices, 6 coils, 64 × 96 k-space (×2 read-out oversampling; 6 calibration lines): the
    data recipe (4 virtual coils), then the train recipe with the tiny network and 2 steps of each stage,
    and the distillation again at another batch from the teacher (as the guide runs the published 24)."""
    src = tmp_path / "brain"
    src.mkdir()
    for v in range(3):
        write_fastmri_file(src / f"file_brain_AXT2_{v:03d}.h5", make_fastmri_kspace(2, 6, 64, 96, seed=v),
                           recon_size=(32, 96))
    ok("data", "make", "--config", DATA, "--input", src, "--out", tmp_path / "set")
    with h5py.File(tmp_path / "set" / "train.h5") as f:
        assert f["measurements"].shape[1:] == (4, 32, 96)    # 4 virtual coils, cropped in read-out
    run = tmp_path / "run"
    ok("train", "--config", TRAIN, "--data", tmp_path / "set", "--out", run, "--preset", "tiny", "--steps", 2,
       "--distill-steps", 2, "--batch", 2, "--device", "cpu", "--no-eval")
    assert (run / "teacher.safetensors").is_file() and (run / "generator.safetensors").is_file()
    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert (saved["g_lr"], saved["fake_lr"], saved["lr"], saved["t_max"]) == (1e-6, 5e-6, 2e-4, 800)
    ok("train", "--config", TRAIN, "--stage", "distill", "--teacher", run / "teacher.safetensors", "--data",
       tmp_path / "set", "--out", tmp_path / "run-b3", "--preset", "tiny", "--distill-steps", 2, "--batch", 3,
       "--device", "cpu")
    assert (tmp_path / "run-b3" / "generator.safetensors").is_file()
    assert yaml.safe_load((tmp_path / "run-b3" / "config.yaml").read_text())["batch"] == 3
