import pytest
import torch


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="module")
def one_thread():
    """torch on one thread for a module (`pytestmark = pytest.mark.usefixtures("one_thread")`): on two
    busy cores, small CLI runs only contend with more."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="session")
def api_folder(tmp_path_factory):
    """A folder as docs/python.md and examples/ expect it: runs/mri-r4, a tiny single-coil 32 × 32 MRI run
    (teacher and generator, 2 + 2 steps, no evaluation) trained through `rsd_sci.train`, and scans/ with a
    single-coil fastMRI-schema file (2 slices, read-out oversampled ×2) and a NIfTI volume (3 slices),
    both of phantoms."""
    import nibabel as nib
    import numpy as np

    import rsd_sci
    from tests.support.fastmri_schema import make_fastmri_kspace, write_fastmri_file
    from rsd_sci.data.phantoms import mri_phantoms

    root = tmp_path_factory.mktemp("api")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rsd_sci.train(root / "runs" / "mri-r4", modality="mri", accel=4, size=32, n_train=8, n_test=4, preset="tiny",
                      batch=2, steps=2, distill_steps=2, evaluate=False, device="cpu")
    finally:
        torch.set_num_threads(threads)
    scans = root / "scans"
    scans.mkdir()
    write_fastmri_file(scans / "file_brain_001.h5", make_fastmri_kspace(2, 1, 64, 32, seed=0), recon_size=(32, 32),
                       target="esc")
    volume = np.abs(mri_phantoms(3, 32, seed=5)).transpose(1, 2, 0) * 800.0   # (H, W, slices), scanner-like units
    nib.save(nib.Nifti1Image(volume.astype(np.float32), np.diag([1.2, 1.2, 3.0, 1.0])), scans / "t1.nii.gz")
    return root
