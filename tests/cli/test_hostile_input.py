"""Hostile and careless input (issue 15), one table driving one test: every case is refused with one line
naming the problem, exit code 2, no traceback, and nothing left at the output path."""

from __future__ import annotations

import logging
import shutil

import h5py
import nibabel as nib
import numpy as np
import pytest
import torch

from tests.support.cli_runner import cli, ok
from tests.support.fastmri_schema import make_fastmri_kspace, write_fastmri_file

SMALL = ["--size", "32", "--n-train", "8", "--n-test", "2"]


def _huge_nifti(path, header_class=nib.Nifti1Header, shape=(32767, 32767, 100)):
    """A NIfTI header declaring `shape` float32 voxels and no data: NIfTI-1 32767 x 32767 x 100 (400 GiB),
    or NIfTI-2 100000 x 100000 x 10 (373 GiB)."""
    header = header_class()
    header.set_data_shape(shape)
    header.set_data_dtype(np.float32)
    header["vox_offset"] = header.single_vox_offset
    with open(path, "wb") as f:
        header.write_to(f)
        f.write(b"\0" * 4)
    return path


def _empty_nifti(path):
    nib.save(nib.Nifti1Image(np.zeros((16, 16, 0), np.float32), np.eye(4)), path)
    return path


NET = dict(features=[8, 16], num_res_blocks=1, attention_levels=[False, False], num_head_channels=8,
           norm_num_groups=8)
CT = dict(family="ct", image_size=32, n_angles=180, n_views=60, view_kind="sparse")


def _model_file(path, tensors=None, **meta_changes):
    """A generator file whose weights fit its metadata, with `meta_changes` (None removes a key) and
    `tensors` replacing some of its tensors."""
    from rsd_sci.diffusion.model import build_model
    from rsd_sci.engine.checkpoint import export_safetensors

    state = build_model(CT, NET, 0.0, "generator").denoiser.state_dict() | (tensors or {})
    meta = dict(kind="generator", modality="ct", operator=CT, network=NET, member="ambient", sigma_init=2.5,
                sigma_n={"max": 0.0, "mean": 0.0}, bank={"y_dtype": "float32", "y_shape": [1, 60, 45]})
    meta = {k: v for k, v in (meta | meta_changes).items() if v is not None}
    export_safetensors(path, state | {"bank.sigma_n": torch.zeros(16)}, meta)
    return path


def _text(path, content: bytes):
    path.write_bytes(content)
    return path


# (id, arguments with {tmp} for the test's folder and {out} for the output that must not appear, message)
CASES = [
    ("train lr negative", ["train", "--out", "{out}", "--lr", "-1"], "--lr must be above 0"),
    ("train lr nan", ["train", "--out", "{out}", "--lr", "nan"], "--lr must be a finite number"),
    ("train alpha nan", ["train", "--out", "{out}", "--alpha", "nan"], "--alpha must be a finite number"),
    ("train g-lr zero", ["train", "--out", "{out}", "--g-lr", "0"], "--g-lr must be above 0"),
    ("train t-max", ["train", "--out", "{out}", "--t-max", "2000"], "--t-max must be above 0 and at most 1000"),
    ("train sigma-init inf", ["train", "--out", "{out}", "--sigma-init", "inf"], "--sigma-init must be a finite"),
    ("train checkpoint-every 0", ["train", "--out", "{out}", "--checkpoint-every", "0"],
     "--checkpoint-every must be at least 1"),
    ("train sigma-n nan", ["train", "--out", "{out}", "--sigma-n", "nan", *SMALL], "--sigma-n must be a finite"),
    ("train batch above the set", ["train", "--out", "{out}", "--batch", "1000000", *SMALL],
     "--batch 1000000 is larger than its 8 training measurements"),
    ("make sigma-n inf", ["data", "make", "--out", "{out}", "--sigma-n", "inf"], "--sigma-n must be a finite"),
    ("make coils 0", ["data", "make", "--out", "{out}", "--coils", "0"], "--coils must be at least 1"),
    ("make coils 10000", ["data", "make", "--out", "{out}", "--coils", "10000"], "--coils must be at most 64"),
    ("make delta -1", ["data", "make", "--modality", "image", "--corruption", "inpaint", "--out", "{out}",
                       "--delta", "-1"], "--delta must be at least 0"),
    ("make delta 1", ["data", "make", "--modality", "image", "--corruption", "inpaint", "--out", "{out}",
                      "--delta", "1"], "--delta must be below 1"),
    ("make size 0", ["data", "make", "--out", "{out}", "--size", "0"], "--size must be at least 8"),
    ("make size 100000", ["data", "make", "--out", "{out}", "--size", "100000"], "--size 100000 needs about"),
    ("make n-train 0", ["data", "make", "--out", "{out}", "--n-train", "0"], "--n-train must be at least 1"),
    ("make accel nan", ["data", "make", "--out", "{out}", "--accel", "nan"], "--accel must be a finite number"),
    ("make blur-std 0", ["data", "make", "--modality", "image", "--corruption", "blur", "--out", "{out}",
                         "--blur-std", "0"], "--blur-std must be above 0"),
    ("config wrong type", ["train", "--out", "{out}", "--config", "{tmp}/types.yaml"], "option 'steps'"),
    ("config binary", ["train", "--out", "{out}", "--config", "{tmp}/binary.yaml"], "cannot read YAML"),
    ("config checkpoint_every 0", ["train", "--out", "{out}", "--config", "{tmp}/checkpoint.yaml"],
     "--checkpoint-every must be at least 1"),
    ("config a list", ["data", "make", "--out", "{out}", "--config", "{tmp}/list.yaml"], "must be a YAML mapping"),
    ("nifti huge header, data make", ["data", "make", "--source", "nifti", "--input", "{tmp}/huge.nii",
                                      "--out", "{out}"], "needs about"),
    ("nifti huge header, evaluate", ["evaluate", "--samples", "{tmp}/huge.nii", "--reference", "{tmp}/huge.nii",
                                     "--json", "{out}"], "needs about"),
    ("nifti without slices", ["data", "make", "--source", "nifti", "--input", "{tmp}/empty.nii", "--out", "{out}"],
     "holds no slices"),
    ("model without operator", ["sample", "--model", "{tmp}/noop.safetensors", "--out", "{out}.npy"],
     "lacks a valid 'operator'"),
    ("model of an unknown family", ["sample", "--model", "{tmp}/pet.safetensors", "--out", "{out}.npy"],
     "unknown operator family 'pet'"),
    ("model declaring a huge network", ["sample", "--model", "{tmp}/huge.safetensors", "--out", "{out}.npy"],
     "are not the network its metadata declare"),
    ("model with a wrong tensor shape", ["sample", "--model", "{tmp}/shape.safetensors", "--out", "{out}.npy"],
     "has shape [3, 3]"),
    ("sample -n beyond memory", ["sample", "--model", "{tmp}/good.safetensors", "-n", "1000000000", "--out",
                                 "{out}.npy"], "-n 1000000000 images of shape"),
    ("sample to an existing output, before loading", ["sample", "--model", "{tmp}/noop.safetensors", "--out",
                                                      "{tmp}/exists.npy"], "exists.npy: exists"),
    ("output below a file", ["data", "make", "--out", "{tmp}/exists.npy/set", *SMALL], "Not a directory"),
    ("sample output below a file", ["sample", "--model", "{tmp}/good.safetensors", "-n", "2", "--out",
                                    "{tmp}/exists.npy/s.npy"], "exists.npy: File exists"),
    ("model with NaN weights", ["sample", "--model", "{tmp}/nan.safetensors", "--out", "{out}.npy"],
     "nan.safetensors: holds NaN or Inf weights"),
    ("fastMRI file of zeros names the file", ["data", "make", "--source", "fastmri", "--input", "{tmp}/zero.h5",
                                              "--out", "{out}"], "zero.h5: slice"),
    ("card.yaml a list", ["info", "{tmp}/card_list"], "card.yaml: must be a YAML mapping"),
    ("card.yaml python-tagged", ["info", "{tmp}/card_python"], "could not determine a constructor"),
    ("operator attribute not JSON, info", ["info", "{tmp}/bad_operator"], "attribute is malformed"),
    ("operator attribute not JSON, train", ["train", "--data", "{tmp}/bad_operator", "--out", "{out}"],
     "attribute is malformed"),
    ("operator attribute not JSON, reconstruct", ["reconstruct", "--input", "{tmp}/bad_operator", "--out",
                                                  "{out}.h5", "--method", "zero-filled"], "attribute is malformed"),
    ("train into a file", ["train", "--out", "{tmp}/exists.npy", *SMALL], "exists.npy: is a file, not a run folder"),
    ("model with a huge bank", ["sample", "--model", "{tmp}/bank.safetensors", "--out", "{out}.npy"], "needs about"),
    ("generator without sigma_init", ["sample", "--model", "{tmp}/noinit.safetensors", "--out", "{out}.npy"],
     "lacks a valid 'sigma_init'"),
    ("model with sigma_n text", ["sample", "--model", "{tmp}/sigma.safetensors", "--out", "{out}.npy"],
     "lacks a valid 'sigma_n'"),
    ("nifti without slices in a folder", ["data", "make", "--source", "nifti", "--input", "{tmp}/volumes",
                                          "--out", "{out}"], "empty.nii"),
    ("nifti huge header, info", ["info", "{tmp}/huge.nii"], "huge.nii: its image of shape (32767, 32767, 100) needs"),
    ("nifti huge header, reconstruct", ["reconstruct", "--input", "{tmp}/huge.nii", "--out", "{out}.nii.gz",
                                        "--method", "zero-filled"], "huge.nii: its image of shape"),
    ("nifti-2 1e5 x 1e5, info", ["info", "{tmp}/huge2.nii"], "huge2.nii: its image of shape (100000, 100000, 10)"),
    ("nifti-2 1e5 x 1e5, data make", ["data", "make", "--source", "nifti", "--input", "{tmp}/huge2.nii", "--out",
                                      "{out}"], "huge2.nii: its image of shape (100000, 100000, 10)"),
    ("nifti-2 1e5 x 1e5, reconstruct", ["reconstruct", "--input", "{tmp}/huge2.nii", "--out", "{out}.nii.gz",
                                        "--method", "fbp"], "huge2.nii: its image of shape (100000, 100000, 10)"),
    ("nifti-2 1e5 x 1e5, evaluate", ["evaluate", "--samples", "{tmp}/huge2.nii", "--reference", "{tmp}/huge2.nii",
                                     "--json", "{out}"], "huge2.nii: its image of shape (100000, 100000, 10)"),
    ("dicom RescaleSlope NaN", ["data", "make", "--modality", "ct", "--source", "dicom", "--input", "{tmp}/dicom_nan",
                                "--out", "{out}", "--size", "16", "--views", "30"],
     "dicom_nan: its values are NaN or Inf after RescaleSlope"),
    ("lodopab file without slices", ["data", "make", "--modality", "ct", "--source", "lodopab", "--input",
                                     "{tmp}/lodopab/ground_truth_train_000.hdf5", "--out", "{out}", "--size", "16"],
     "ground_truth_train_000.hdf5: holds no slices"),
    ("lodopab folder with a file without slices", ["data", "make", "--modality", "ct", "--source", "lodopab",
                                                   "--input", "{tmp}/lodopab", "--out", "{out}", "--size", "16"],
     "ground_truth_train_000.hdf5: holds no slices"),
    ("evaluate --json on NaN predictions", ["evaluate", "--targets", "{tmp}/targets", "--predictions",
                                            "{tmp}/nan_predictions", "--json", "{out}.json"],
     "v.h5: 'reconstruction' holds NaN or Inf values (slice(s) 1)"),
    ("card.yaml not YAML", ["info", "{tmp}/card_broken"], "card.yaml: is not readable YAML"),
    ("data make --out an existing file", ["data", "make", "--out", "{tmp}/exists.npy", *SMALL],
     "exists.npy: exists (use --force"),
    ("reconstruct --out an existing file", ["reconstruct", "--input", "{tmp}/set", "--out", "{tmp}/exists.npy",
                                            "--method", "zero-filled"], "exists.npy: exists (use --force)"),
    # what the preparation of a slice refuses names the input file, not the output folder (item 8)
    ("sigma estimate names the input file", ["data", "make", "--source", "nifti", "--input", "{tmp}/odd",
                                             "--out", "{out}", "--size", "16", "--sigma-n", "auto"],
     "odd0.nii: slice 0: only 9 sampled k-space values in the periphery; need 32 to estimate sigma"),
    ("calib_lines names the input file", ["data", "make", "--source", "nifti", "--input", "{tmp}/odd", "--out",
                                          "{out}", "--size", "16", "--coils", "4"],
     "odd0.nii: slice 0: the calibration region has 1 lines; ESPIRiT needs at least 5"),
    ("size error names the input file", ["data", "make", "--modality", "image", "--corruption", "downsample",
                                         "--source", "nifti", "--input", "{tmp}/odd", "--out", "{out}"],
     "odd0.nii: slice 0: image sides (33, 33) must be divisible by factor 2"),
]


@pytest.fixture(scope="module")
def inputs(tmp_path_factory):
    """The hostile inputs, made once (read, never written, by every case)."""
    tmp_path = tmp_path_factory.mktemp("inputs")
    _text(tmp_path / "types.yaml", b"steps: many\n")
    _text(tmp_path / "binary.yaml", bytes(range(256)) * 4)
    _text(tmp_path / "list.yaml", b"- 1\n- 2\n")
    _text(tmp_path / "checkpoint.yaml", b"checkpoint_every: 0\n")   # the key is known, its value checked
    _huge_nifti(tmp_path / "huge.nii")
    _empty_nifti(tmp_path / "empty.nii")
    ok("data", "make", "--out", tmp_path / "card_list", "--size", 16, "--n-train", 2, "--n-test", 1,
       "--center-fraction", 0.2)
    for name in ("card_python", "bad_operator", "card_broken", "set"):
        shutil.copytree(tmp_path / "card_list", tmp_path / name)
    _text(tmp_path / "card_list" / "card.yaml", b"- a\n- b\n")
    _text(tmp_path / "card_python" / "card.yaml", b"!!python/object:os.system x\n")
    _text(tmp_path / "card_broken" / "card.yaml", b"a: [1, 2\n  b: {\n")
    with h5py.File(tmp_path / "bad_operator" / "train.h5", "a") as f:
        f.attrs["operator"] = "{not json"
    _model_file(tmp_path / "good.safetensors")
    _model_file(tmp_path / "nan.safetensors", tensors={"backbone.unet.conv_in.conv.bias": torch.full((8,), float("nan"))})
    write_fastmri_file(tmp_path / "zero.h5", make_fastmri_kspace(6, 4, 64, 32, seed=0) * 0, recon_size=(32, 32))
    _text(tmp_path / "exists.npy", b"")
    _model_file(tmp_path / "noop.safetensors", operator=None)
    _model_file(tmp_path / "pet.safetensors", operator=CT | {"family": "pet"})
    _model_file(tmp_path / "huge.safetensors", network=NET | {"features": [8192, 8192]})   # 1.2 G parameters
    _model_file(tmp_path / "shape.safetensors",
                tensors={"backbone.unet.conv_in.conv.weight": torch.zeros(3, 3)})
    _model_file(tmp_path / "bank.safetensors", bank={"y_dtype": "float32", "y_shape": [100000, 100000, 100]})
    _model_file(tmp_path / "sigma.safetensors", sigma_n="x")
    _model_file(tmp_path / "noinit.safetensors", sigma_init=None)
    (tmp_path / "volumes").mkdir()
    _empty_nifti(tmp_path / "volumes" / "empty.nii")
    for i in range(2):
        volume = np.random.default_rng(i).random((16, 16, 6)).astype(np.float32)
        nib.save(nib.Nifti1Image(volume, np.eye(4)), tmp_path / "volumes" / f"good{i}.nii")
    _huge_nifti(tmp_path / "huge2.nii", nib.Nifti2Header, (100000, 100000, 10))
    (tmp_path / "odd").mkdir()   # 33 x 33: odd sides, and too small for a sigma estimate or ESPIRiT at --size 16
    for i in range(3):
        volume = np.random.default_rng(i).random((33, 33, 6)).astype(np.float32)
        nib.save(nib.Nifti1Image(volume, np.eye(4)), tmp_path / "odd" / f"odd{i}.nii")
    _dicom_series_with_a_nan_slope(tmp_path / "dicom_nan")
    (tmp_path / "lodopab").mkdir()
    for i, n in enumerate((0, 5, 5)):   # the published 362 x 362 (another size logs a warning line)
        with h5py.File(tmp_path / "lodopab" / f"ground_truth_train_{i:03d}.hdf5", "w") as f:
            f["data"] = np.random.default_rng(i).random((n, 362, 362)).astype(np.float32)
    for folder, key, value in (("targets", "reconstruction_rss", 1.0), ("nan_predictions", "reconstruction", np.nan)):
        (tmp_path / folder).mkdir()
        with h5py.File(tmp_path / folder / "v.h5", "w") as f:
            data = np.ones((2, 8, 8), np.float32)
            data[1, 3, 3] = value
            f[key] = data
    return tmp_path


def _dicom_series_with_a_nan_slope(folder):
    """A CT series of 8 slices whose fourth has RescaleSlope NaN."""
    from pydicom.uid import generate_uid

    from tests.data.test_dicom import _write_slice

    folder.mkdir()
    series = generate_uid()
    for k in range(8):
        _write_slice(folder / f"IM{k}", np.ones((16, 16)), series=series, position=(0.0, 0.0, float(k)),
                     slope=float("nan") if k == 3 else 1.0)


@pytest.mark.parametrize("args, message", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_refused_in_one_line_and_nothing_left(inputs, args, message, caplog):
    out = inputs / "out"
    caplog.set_level(logging.WARNING)
    r = cli(*[a.format(tmp=inputs, out=out) for a in args])
    assert r.exit_code == 2 and message in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1 and "Traceback" not in r.output, r.output
    assert not caplog.records, caplog.text   # a user sees a warning logged before the refusal as a line more
    assert not out.exists() and not list(inputs.glob("out*"))


@pytest.mark.parametrize("content", [b"", b"- a list\n", b"steps: [1, 2]\n"], ids=["empty", "list", "wrong type"])
def test_a_broken_run_configuration_is_refused(tmp_path, content):
    run = tmp_path / "run"
    run.mkdir()
    (run / "config.yaml").write_bytes(content)
    r = cli("train", "--out", run)
    assert r.exit_code == 2 and "config.yaml" in r.output and "Traceback" not in r.output, r.output


def test_a_refused_start_does_not_poison_the_folder(tmp_path):
    """A start refused while building the data leaves nothing; the next start with good data runs."""
    bad = _text(tmp_path / "random.h5", np.random.default_rng(0).bytes(4096))
    run = tmp_path / "run"
    r = cli("train", "--data", bad, "--out", run)
    assert r.exit_code == 2 and "Traceback" not in r.output, r.output
    assert not run.exists()
    ok("train", "--out", run, "--steps", 1, "--stage", "teacher", *SMALL, "--batch", 4, "--center-fraction", 0.2)
    assert (run / "teacher.safetensors").is_file()


@pytest.mark.parametrize("args", [["data", "make", "--out", "{out}", *SMALL],
                                  ["train", "--out", "{out}", *SMALL],
                                  ["sample", "--model", "{tmp}/good.safetensors", "-n", "64", "--out", "{out}.h5"],
                                  ["sample", "--model", "{tmp}/good.safetensors", "-n", "64", "--out", "{out}.npy"],
                                  ["sample", "--model", "{tmp}/good.safetensors", "-n", "64", "--out", "{out}.nii"],
                                  ["sample", "--model", "{tmp}/good.safetensors", "-n", "64", "--out", "{out}.nii.gz",
                                   "--split"],
                                  ["reconstruct", "--input", "{tmp}/set", "--out", "{out}.h5", "--method",
                                   "zero-filled"]],
                         ids=["data make", "train's data", "sample to h5", "sample to npy", "sample to nii",
                              "sample --split to nii", "reconstruct to h5"])
def test_a_full_disk_is_one_line_and_nothing_left(inputs, args, monkeypatch):
    """A disk with 1 MiB free (shutil.disk_usage as a 1 MiB tmpfs reports it; a real one made h5py die by
    SIGSEGV with 7,500 lines of errors) is refused before writing."""
    import shutil
    from collections import namedtuple

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(shutil, "disk_usage", lambda path: usage(2 ** 20, 0, 2 ** 20))
    out = inputs / "out"
    r = cli(*[a.format(tmp=inputs, out=out) for a in args])
    assert r.exit_code == 2 and "on disk; 1.0 MiB are free" in r.output, r.output
    assert len(r.output.strip().splitlines()) == 1 and not out.exists() and not list(inputs.glob("out*"))
