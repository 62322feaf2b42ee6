"""Does `rsd-sci data make` prepare a fastMRI folder in bounded memory? Peak resident memory for folders
of 5 and 20 multi-coil volumes, one table from one run.

    python benchmarks/data_make_memory.py [--volumes 5 20] [--slices 6] [--workers 2] [--keep DIR]

Each folder holds knee-sized fastMRI-schema files (15 coils, 640×368 complex64, `--slices` slices each,
written by tests/support/fastmri_schema.py into a temporary folder); the larger folder holds the smaller one's
files and more. Each is prepared by `rsd-sci data make --modality mri --source fastmri --input FOLDER
--accel 4 --virtual-coils 8 --workers W` in its own process under `/usr/bin/time -v`: wall time,
slices/s and the peak RSS of the main process and of the largest worker (the kernel's maximum resident
set size of the process tree's largest member, `Maximum resident set size`, counts the parent and each
child apart). Bounded memory: the peak does not grow with the number of volumes. Run it alone.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.support.fastmri_schema import make_fastmri_kspace, write_fastmri_file  # noqa: E402


def write_folder(folder: Path, volumes: int, slices: int) -> int:
    """`volumes` files in `folder` (made once, linked into the larger folders); returns their bytes."""
    folder.mkdir(parents=True, exist_ok=True)
    store = folder.parent / "store"
    store.mkdir(exist_ok=True)
    for v in range(volumes):
        made = store / f"file_knee_{v:03d}.h5"
        if not made.exists():
            write_fastmri_file(made, make_fastmri_kspace(slices, 15, 640, 368, seed=v), recon_size=(320, 320))
        (folder / made.name).symlink_to(made)
    return sum((folder / f"file_knee_{v:03d}.h5").stat().st_size for v in range(volumes))


def prepare(folder: Path, out: Path, workers: int) -> dict:
    """`data make` on `folder` under /usr/bin/time -v: wall seconds and peak RSS (MB)."""
    command = ["/usr/bin/time", "-v", sys.executable, "-m", "cli", "data", "make", "--modality", "mri",
               "--source", "fastmri", "--input", str(folder), "--accel", "4", "--virtual-coils", "8",
               "--workers", str(workers), "--out", str(out)]
    start = time.perf_counter()
    done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True)
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"data make failed:\n{done.stderr[-2000:]}")
    peak_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", done.stderr).group(1))
    return dict(wall_s=wall, peak_mb=peak_kb / 1024)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--volumes", type=int, nargs="+", default=[5, 20])
    parser.add_argument("--slices", type=int, default=6)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--keep", type=Path, default=None, help="Make the files here (default: a temporary folder).")
    args = parser.parse_args()
    root = args.keep or Path(tempfile.mkdtemp(prefix="data-make-memory-"))
    rows = []
    for volumes in sorted(args.volumes):
        folder = root / f"folder-{volumes}"
        size = write_folder(folder, volumes, args.slices)
        result = prepare(folder, root / f"set-{volumes}", args.workers)
        slices = volumes * args.slices
        rows.append((volumes, slices, size / 2 ** 30, result["wall_s"], slices / result["wall_s"], result["peak_mb"]))
        print(f"{volumes} volumes done: {result}", flush=True)
    print(f"\ndata make --workers {args.workers}, 15 coils 640×368 → 8 virtual coils, {args.slices} slices a volume")
    print("| volumes | slices | folder (GiB) | wall (s) | slices/s | peak RSS, largest process (MB) |")
    print("|---|---|---|---|---|---|")
    for volumes, slices, gib, wall, rate, peak in rows:
        print(f"| {volumes} | {slices} | {gib:.2f} | {wall:.1f} | {rate:.2f} | {peak:.0f} |")
    print(f"\nfiles in {root}" if args.keep else "")


if __name__ == "__main__":
    main()
