"""Writing generated samples: each format read back by its own library (nibabel, h5py, numpy, matplotlib)."""

from __future__ import annotations

import gzip
import json

import h5py
import nibabel as nib
import numpy as np
import pytest
from matplotlib.image import imread

from rsd_sci.data.image_output import SAMPLE_SUFFIXES, output_kind, write_samples
from rsd_sci.errors import InputError

N, H, W = 3, 5, 7  # H != W so that a transposed image cannot pass


def _real(n: int = N) -> np.ndarray:
    """float64 on purpose: the writers must store float32."""
    return np.random.default_rng(0).normal(size=(n, H, W))


def _complex(n: int = N) -> np.ndarray:
    return np.random.default_rng(1).normal(size=(n, 2, H, W))


def _files(folder) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


def _grey(path) -> np.ndarray:
    """A written PNG as grey levels in [0, 1] (R = G = B for a grey image)."""
    pixels = imread(path)
    np.testing.assert_array_equal(pixels[..., 0], pixels[..., 1])
    return pixels[..., 0]


def _tile(grid: np.ndarray, k: int, cols: int, h: int = H, w: int = W) -> np.ndarray:
    r, c = divmod(k, cols)
    return grid[r * (h + 2): r * (h + 2) + h, c * (w + 2): c * (w + 2) + w]


@pytest.mark.parametrize(
    "name, kind",
    [("s.nii.gz", "nifti"), ("S.NII.GZ", "nifti"), ("s.nii", "nifti"), ("s.H5", "h5"), ("s.npy", "npy"),
     ("s.png", "png")],
)
def test_output_kind(name, kind):
    assert output_kind(name) == kind
    assert name.lower().endswith(SAMPLE_SUFFIXES)


@pytest.mark.parametrize("name", ["s.txt", "s", "s.gz", "s.nii.zip", "s.hdf5"])
def test_unknown_suffix_raises_and_writes_nothing(tmp_path, name):
    with pytest.raises(InputError, match="unknown output format .*expected .nii.gz, .nii, .h5, .npy or .png"):
        output_kind(name)
    with pytest.raises(InputError, match="unknown output format"):
        write_samples(tmp_path / name, _real())
    assert _files(tmp_path) == []


@pytest.mark.parametrize("name, gzipped", [("s.nii.gz", True), ("s.nii", False), ("S.NII.GZ", True)])
def test_nifti_volume_round_trips(tmp_path, name, gzipped):
    images = _real()
    assert write_samples(tmp_path / name, images) == [tmp_path / name]
    assert _files(tmp_path) == [name]
    assert ((tmp_path / name).read_bytes()[:2] == b"\x1f\x8b") == gzipped
    image = nib.load(tmp_path / name)
    assert image.shape == (H, W, N)
    assert image.get_data_dtype() == np.float32
    np.testing.assert_array_equal(image.affine, np.eye(4))
    data = image.get_fdata(dtype=np.float32)
    for k in range(N):
        np.testing.assert_array_equal(data[:, :, k], images[k].astype(np.float32))


def test_mixed_case_nifti_name_is_kept(tmp_path):
    """nib.save would write 's.nii.Gz' for 's.Nii.Gz'; the file must appear under the name asked for."""
    images = _real()
    write_samples(tmp_path / "s.Nii.Gz", images)
    assert _files(tmp_path) == ["s.Nii.Gz"]
    image = nib.Nifti1Image.from_bytes(gzip.decompress((tmp_path / "s.Nii.Gz").read_bytes()))
    np.testing.assert_array_equal(image.get_fdata(dtype=np.float32)[:, :, 1], images[1].astype(np.float32))


def test_split_nifti_writes_one_2d_file_per_image(tmp_path):
    images = _real()
    written = write_samples(tmp_path / "s.nii.gz", images, split=True)
    names = [f"s_{k:04d}.nii.gz" for k in range(N)]
    assert written == [tmp_path / n for n in names]
    assert _files(tmp_path) == names
    for k, name in enumerate(names):
        image = nib.load(tmp_path / name)
        assert image.shape == (H, W)
        np.testing.assert_array_equal(image.get_fdata(dtype=np.float32), images[k].astype(np.float32))


def test_complex_nifti_has_real_imaginary_last_axis(tmp_path):
    images = _complex()
    write_samples(tmp_path / "c.nii.gz", images)
    data = nib.load(tmp_path / "c.nii.gz").get_fdata(dtype=np.float32)
    assert data.shape == (H, W, N, 2)
    for k in range(N):
        np.testing.assert_array_equal(data[:, :, k, 0], images[k, 0].astype(np.float32))
        np.testing.assert_array_equal(data[:, :, k, 1], images[k, 1].astype(np.float32))
    write_samples(tmp_path / "one.nii", images, split=True)
    data = nib.load(tmp_path / "one_0002.nii").get_fdata(dtype=np.float32)
    assert data.shape == (H, W, 1, 2)
    np.testing.assert_array_equal(data[:, :, 0, 1], images[2, 1].astype(np.float32))


@pytest.mark.parametrize("make", [_real, _complex])
def test_h5_samples_and_metadata(tmp_path, make):
    images = make()
    metadata = {"model": "run/generator.safetensors", "seed": 3, "steps": [1, 2]}
    assert write_samples(tmp_path / "s.h5", images, metadata=metadata) == [tmp_path / "s.h5"]
    with h5py.File(tmp_path / "s.h5", "r") as f:
        assert f["samples"].dtype == np.float32
        np.testing.assert_array_equal(f["samples"][()], images.astype(np.float32))
        assert json.loads(f.attrs["metadata"]) == metadata
    write_samples(tmp_path / "bare.h5", images)
    with h5py.File(tmp_path / "bare.h5", "r") as f:
        assert "metadata" not in f.attrs


@pytest.mark.parametrize("make", [_real, _complex])
def test_npy_round_trips_as_float32(tmp_path, make):
    images = make()
    write_samples(tmp_path / "s.NPY", images)
    assert _files(tmp_path) == ["s.NPY"]
    loaded = np.load(tmp_path / "s.NPY")
    assert loaded.dtype == np.float32
    np.testing.assert_array_equal(loaded, images.astype(np.float32))


def test_png_grid_size_order_and_gaps(tmp_path):
    images = np.stack([np.full((H, W), float(k)) for k in range(5)])  # image k is the constant k
    write_samples(tmp_path / "g.png", images)
    grid = _grey(tmp_path / "g.png")
    cols, rows = 3, 2  # ceil(sqrt(5)) columns
    assert grid.shape == (rows * H + 2 * (rows - 1), cols * W + 2 * (cols - 1))
    means = [_tile(grid, k, cols).mean() for k in range(5)]
    assert means[0] == 0.0 and means[4] == 1.0  # window [0, 99.5th percentile]
    assert all(a < b for a, b in zip(means, means[1:]))  # row-major, brighter with k
    assert grid[:, W: W + 2].max() == 0.0 and grid[H: H + 2, :].max() == 0.0  # dark gaps
    assert _tile(grid, 5, cols).max() == 0.0  # the unused cell


def test_png_window_ignores_a_few_hot_pixels(tmp_path):
    images = np.ones((4, 16, 16))
    images[0, 0, 0] = 1000.0  # 1 pixel in 1024: above the 99.5th percentile
    write_samples(tmp_path / "g.png", images)
    tile = _tile(_grey(tmp_path / "g.png"), 1, cols=2, h=16, w=16)
    assert tile.min() == 1.0  # a [min, max] window would show these at 1/1000


def test_png_of_complex_images_shows_magnitude(tmp_path):
    re_im = [(1.0, 0.0), (0.0, 1.0), (0.6, 0.8), (0.0, 0.0)]  # magnitudes 1, 1, 1, 0
    images = np.stack([np.stack([np.full((H, W), re), np.full((H, W), im)]) for re, im in re_im])
    write_samples(tmp_path / "c.png", images)
    grid = _grey(tmp_path / "c.png")
    means = [_tile(grid, k, cols=2).mean() for k in range(4)]
    assert means[:3] == pytest.approx([1.0, 1.0, 1.0], abs=1 / 255)
    assert means[3] == 0.0


def test_split_png_shares_one_window(tmp_path):
    images = np.stack([np.full((H, W), 1.0), np.full((H, W), 2.0)])
    written = write_samples(tmp_path / "s.png", images, split=True)
    assert _files(tmp_path) == ["s_0000.png", "s_0001.png"]
    dim, bright = (_grey(p) for p in written)
    assert dim.shape == bright.shape == (H, W)
    assert dim.mean() == pytest.approx(128 / 255) and bright.mean() == 1.0


@pytest.mark.parametrize("name", ["s.nii.gz", "s.h5", "s.npy", "s.png"])
def test_existing_file_is_kept_without_overwrite(tmp_path, name):
    (tmp_path / name).write_bytes(b"old")
    with pytest.raises(InputError, match="exists; pass --force to overwrite"):
        write_samples(tmp_path / name, _real())
    assert (tmp_path / name).read_bytes() == b"old"
    assert _files(tmp_path) == [name]
    write_samples(tmp_path / name, _real(), overwrite=True)
    assert (tmp_path / name).read_bytes() != b"old"
    assert _files(tmp_path) == [name]


def test_split_checks_every_target_before_writing(tmp_path):
    (tmp_path / "s_0002.nii.gz").write_bytes(b"old")
    with pytest.raises(InputError, match="s_0002.nii.gz: exists"):
        write_samples(tmp_path / "s.nii.gz", _real(), split=True)
    assert _files(tmp_path) == ["s_0002.nii.gz"]


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e39])  # 1e39 overflows float32
@pytest.mark.parametrize("name, split", [("s.nii.gz", False), ("s.nii.gz", True), ("s.h5", False),
                                         ("s.npy", False), ("s.png", False), ("s.png", True)])
def test_non_finite_samples_raise_and_write_nothing(tmp_path, bad, name, split):
    images = _real()
    images[1, 2, 3] = bad
    with pytest.raises(InputError, match="samples contain NaN or Inf values"):
        write_samples(tmp_path / "out" / name, images, split=split)
    assert _files(tmp_path) == []


@pytest.mark.parametrize("shape", [(H, W), (N, 3, H, W), (N, 1, H, W), (0, H, W), (N, 2, H, W, 1)])
def test_bad_shapes_raise(tmp_path, shape):
    with pytest.raises(InputError, match=r"samples must be|no samples"):
        write_samples(tmp_path / "s.npy", np.zeros(shape))
    assert _files(tmp_path) == []


def test_complex_dtype_is_refused(tmp_path):
    with pytest.raises(InputError, match=r"\(N, 2, H, W\)"):
        write_samples(tmp_path / "s.npy", np.zeros((N, H, W), np.complex64))


@pytest.mark.parametrize("name", ["s.npy", "s.h5"])
def test_split_with_npy_or_h5_raises(tmp_path, name):
    with pytest.raises(InputError, match="--split applies to NIfTI and PNG output only"):
        write_samples(tmp_path / name, _real(), split=True)
    assert _files(tmp_path) == []


def test_failure_while_writing_leaves_no_temporary(tmp_path):
    with pytest.raises(TypeError):  # not JSON-serialisable: fails inside the open HDF5 file
        write_samples(tmp_path / "s.h5", _real(), metadata={"bad": object()})
    assert _files(tmp_path) == []


def test_missing_parent_folders_are_created(tmp_path):
    target = tmp_path / "a" / "b" / "s.npy"
    assert write_samples(target, _real()) == [target]
    np.testing.assert_array_equal(np.load(target), _real().astype(np.float32))


def test_split_output_is_all_or_none(tmp_path, monkeypatch):
    """A --split write that fails at the third file (a full disk) leaves none of the files it wrote."""
    import matplotlib.image

    calls = {"n": 0}
    real = matplotlib.image.imsave

    def failing(*args, **kwargs):
        calls["n"] += 1
        if calls["n"] == 3:
            raise OSError(28, "No space left on device")
        return real(*args, **kwargs)

    monkeypatch.setattr(matplotlib.image, "imsave", failing)
    with pytest.raises(OSError):
        write_samples(tmp_path / "s.png", np.random.default_rng(0).random((5, 8, 8)), split=True)
    assert list(tmp_path.iterdir()) == []
