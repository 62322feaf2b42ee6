"""The training loader's rate from a measurement set on disk at fastMRI size, printed as one table.

    python benchmarks/loader.py                      # the two sets under /work/loader-set (written if missing)
    python benchmarks/loader.py --device cuda        # the batches on the GPU (pinned memory, non-blocking copies)
    python benchmarks/loader.py --quick              # small sets in a temporary folder: a smoke run (~10 s)

What is timed: everything a teacher step needs before the network, for `--samples` samples per run
(default: one epoch of the set) in random order (the training's `global_batch_indices`, batch 8, a new
seed every run): read the step's measurements, masks, centres, coil maps and scalars from the set's
train.h5 (`load_batch`), collate, put the batch on the device and build its operator (`family.measure`,
which folds the coil maps); on CUDA followed by a synchronize. The workers' start is inside the time. Contenders, each a run of `rsd_sci.data.batch_stream.step_batches`:
    load_batch       the training process reads each batch when the step asks for it, sample by sample
                     (`load_batch`: what training did before `--loader-workers`)
    training process workers 0: the same, each array read straight into one batch buffer (`StepBatches`;
                     training on the CPU by default)
    N workers        a torch DataLoader of N worker processes, each reading whole batches (`StepBatches`,
                     into shared memory), PREFETCH per worker ahead; the operator is built in the training
                     process (training on CUDA: 4 by default)
Page cache: "cold" runs follow os.posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED) on every file of the set
(no root needed; the share of the set still resident, from util-linux `fincore` where it exists, is
printed); "warm" runs follow one sequential read of every file. Each round runs every contender cold,
then every contender warm, in an order rotating from round to round; the median and best over rounds.
Beside the rates, the CPU time a sample costs the training process and the workers (`os.times`, the
workers' as the children's once they are joined): the rate N workers reach on N free cores is about
N / (the workers' CPU time a sample), below the disk's bandwidth when cold; the training process's
share, its operator aside, is what a GPU run keeps of it (receiving the batch, the copy to the GPU).
Printed last, per set, from the warm runs with workers: the rate N free cores would give and the
training process's ceiling, against `--need` (samples/s at 384², scaled by the pixels: the network
runs at the k-space size), and the best cold rate the disk gave.

The sets (written once with rsd-sci's `MeasurementSetWriter`, the writer `data make` uses, so the
layout, dtypes and per-sample chunks are those of a prepared set; k-space is random complex Gaussian
under a fastMRI random line mask, R = 4, and the coil maps are birdcage maps, since the values do not
change the cost of reading uncompressed arrays):
    knee-15coil   15 coils, 640×368 k-space (fastMRI knee), 64 samples, 3.6 GB
    brain-4vc     4 virtual coils, 384×384 (recipes/fastmri-brain-r4.yaml), 384 samples, 3.6 GB
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import Load, environment, make_sync, median, print_table  # noqa: E402  (sibling)

from rsd_sci.data.batch_stream import step_batches  # noqa: E402
from rsd_sci.data.batches import global_batch_indices, load_batch  # noqa: E402
from rsd_sci.data.measurement_set import FORMAT, VERSION, MeasurementSetWriter, MeasurementSet  # noqa: E402
from rsd_sci.measurement import family_of  # noqa: E402
from rsd_sci.physics.coil_maps import birdcage_maps  # noqa: E402
from rsd_sci.physics.masks import MaskSpec  # noqa: E402

BATCH = 8                     # the recipe's teacher batch
SETS = {   # name -> (coils, (H, W) k-space, training samples, centre fraction)
    "knee-15coil": (15, (640, 368), 64, 0.08),
    "brain-4vc": (4, (384, 384), 384, 0.0625),
}
QUICK_SETS = {"knee-15coil": (15, (64, 48), 32, 0.2), "brain-4vc": (4, (48, 48), 64, 0.2)}


# ---- the sets ----------------------------------------------------------------------------------------
def write_set(folder: Path, coils: int, shape: tuple[int, int], n: int, center_fraction: float, seed: int = 0):
    """A training split of n samples (y (C, H, W) complex64, masks and centres (W,), maps (C, H, W)) and
    its card, written into FOLDER.partial and renamed onto `folder`."""
    part = folder.with_name(folder.name + ".partial")
    shutil.rmtree(part, ignore_errors=True)
    part.mkdir(parents=True)
    height, width = shape
    mask_spec = MaskSpec(kind="random", acceleration=4.0, center_fraction=center_fraction)
    operator = dict(family="mri", shape=[height, width], coils=coils, mask=mask_spec.to_dict())
    maps = birdcage_maps(coils, height, width)
    rng = np.random.default_rng(seed)
    with MeasurementSetWriter(part / "train.h5", "mri", operator, "train", seed) as writer:
        for i in range(n):
            lines = mask_spec.make(shape, seed=(seed, i))
            k = rng.standard_normal((2, coils, height, width), dtype=np.float32)
            y = (k[0] + 1j * k[1]).astype(np.complex64) * lines.mask
            writer.append(measurements=y, masks=lines.mask, centers=lines.center, coil_maps=maps, scale=1.0,
                          offset=0.0, sigma_n=0.0, source=f"volume-{i // 16:03d}", slice_index=i % 16)
    card = dict(format=FORMAT, version=VERSION, made_with="benchmarks/loader.py (MeasurementSetWriter, random "
                "k-space, birdcage maps)", operator=operator, n_train=n, n_test=0)
    (part / "card.yaml").write_text(yaml.safe_dump(card, sort_keys=False))
    part.rename(folder)


def ensure_set(root: Path, name: str, sets: dict) -> Path:
    """ROOT/NAME, written first if missing (it is kept for the next run)."""
    folder = root / name
    if not (folder / "card.yaml").is_file():
        coils, shape, n, fraction = sets[name]
        print(f"writing {folder} ({n} samples, {coils} coils, {shape[0]}×{shape[1]}) ...", flush=True)
        start = time.perf_counter()
        write_set(folder, coils, shape, n, fraction)
        print(f"  {set_bytes(folder) / 1e9:.2f} GB in {time.perf_counter() - start:.0f} s", flush=True)
    return folder


def set_files(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.is_file())


def set_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in set_files(folder))


# ---- the page cache ----------------------------------------------------------------------------------
def drop_cache(folder: Path) -> None:
    """Ask the kernel to drop the set's clean pages (POSIX_FADV_DONTNEED on every file; no root needed)."""
    for path in set_files(folder):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def warm_cache(folder: Path) -> None:
    """Read every file of the set once, sequentially, into the page cache."""
    for path in set_files(folder):
        with open(path, "rb", buffering=0) as f:
            while f.read(64 * 2**20):
                pass


def cached_share(folder: Path) -> float | None:
    """The share of the set's bytes in the page cache (util-linux `fincore`); None where it is missing."""
    try:
        out = subprocess.run(["fincore", "--bytes", "--noheadings", "--output", "RES", *map(str, set_files(folder))],
                             capture_output=True, text=True, check=True).stdout
    except (OSError, subprocess.CalledProcessError):
        return None
    return sum(int(v) for v in out.split()) / set_bytes(folder)


# ---- timing ------------------------------------------------------------------------------------------
def run_once(folder: Path, family, workers: int, steps: int, seed: int, device: torch.device
             ) -> tuple[float, float, float, float]:
    """(wall seconds, CPU seconds of this process, of which building the operators, CPU seconds of the
    workers) to deliver `steps` batches with their operators on the device, the workers' start and end
    included."""
    sync = make_sync(device)
    start, cpu = time.perf_counter(), os.times()
    if workers < 0:   # load_batch, as training read before
        ms = MeasurementSet(folder / "train.h5")
        batches = (load_batch(ms, global_batch_indices(len(ms), BATCH, s, seed).tolist(), device) for s in range(steps))
    else:
        batches = step_batches(folder / "train.h5", BATCH, seed, 0, steps, workers, device)
    operator = 0.0
    for batch in batches:
        before = time.process_time()
        family.measure(batch)
        operator += time.process_time() - before
    sync()
    end = os.times()   # the workers have exited and been joined: their time is the children's
    return (time.perf_counter() - start, end.user + end.system - cpu.user - cpu.system, operator,
            end.children_user + end.children_system - cpu.children_user - cpu.children_system)


@dataclasses.dataclass
class Row:
    set: str
    loader: str
    cache: str
    resident: str
    runs: str
    samples: str
    rate: str
    mb_s: str
    cpu: str
    others: str


def measure(folder: Path, name: str, workers_list: list[int], rounds: int, samples: int,
            device: torch.device, need: float) -> tuple[list[Row], str]:
    """The table's rows of one set, and the rate its warm CPU costs give N free cores against `need`."""
    ms = MeasurementSet(folder / "train.h5")
    family = family_of(ms.info.operator)
    steps = max(1, min(samples, len(ms)) // BATCH)
    per_sample = set_bytes(folder) / len(ms)
    runs = {(w, c): [] for w in workers_list for c in ("cold", "warm")}
    resident = {key: [] for key in runs}
    others = {key: [] for key in runs}
    cpu = {key: [] for key in runs}
    seed = 0
    for r in range(rounds):
        order = workers_list[r % len(workers_list):] + workers_list[:r % len(workers_list)]
        for cache in ("cold", "warm"):
            if cache == "warm":
                warm_cache(folder)
            for workers in order:
                if cache == "cold":
                    drop_cache(folder)
                resident[workers, cache].append(cached_share(folder))
                seed += 1
                with Load() as load:
                    seconds, *cpu_seconds = run_once(folder, family, workers, steps, seed, device)
                runs[workers, cache].append(steps * BATCH / seconds)
                cpu[workers, cache].append([c / (steps * BATCH) for c in cpu_seconds])
                others[workers, cache].append(load.others())
    rows = []
    for (workers, cache), rates in sorted(runs.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        shares = [s for s in resident[workers, cache] if s is not None]
        loader = {-1: "load_batch (before)", 0: "training process"}.get(workers, f"{workers} worker{'s' * (workers > 1)}")
        rows.append(Row(name, loader,
                        cache, f"{max(shares):.0%}" if shares else "n/a", str(len(rates)), str(steps * BATCH),
                        f"{median(rates):.1f} ({max(rates):.1f})", f"{median(rates) * per_sample / 1e6:,.0f}",
                        "{:.1f} ({:.1f}) + {:.1f}".format(*(1e3 * median([c[k] for c in cpu[workers, cache]])
                                                            for k in range(3))),
                        " ".join(others[workers, cache])))
    warm = [c for (w, cache), cs in cpu.items() if w > 0 and cache == "warm" for c in cs]
    if not warm:
        return rows, ""
    worker, training = median([c[2] for c in warm]), median([c[0] - c[1] for c in warm])
    cold_mb = max(r for (w, cache), rs in runs.items() if cache == "cold" for r in rs) * per_sample / 1e6
    return rows, (f"{name}: need {need:.0f} samples/s ({need * per_sample / 1e9:.2f} GB/s). Warm: a worker spends "
                  f"{worker * 1e3:.1f} ms a sample, so N free cores give N × {1 / worker:.0f} samples/s "
                  f"({math.ceil(need * worker)} workers for the need); the training process, its operator aside "
                  f"(on the GPU under CUDA), {training * 1e3:.1f} ms: at most {1 / training:.0f} samples/s "
                  f"({'keeps up' if 1 / training >= need else 'does NOT keep up'}). Cold: the disk gave at best "
                  f"{cold_mb:,.0f} MB/s here.")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path("/work/loader-set"), help="where the sets live")
    parser.add_argument("--sets", default=",".join(SETS))
    parser.add_argument("--workers", default="-1,0,1,2,4", help="-1: load_batch, 0: the training process")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--samples", type=int, default=384, help="samples per run (at most the set's: one epoch)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--need", type=float, default=180.0,
                        help="samples/s at 384² the loader must give (benchmarks/recipe_cost.py: 2× what an H100 "
                             "takes at 40 %% of its bf16 peak); scaled by the pixels for other sizes")
    parser.add_argument("--quick", action="store_true", help="small sets in a temporary folder, 1 round")
    args = parser.parse_args()
    device = torch.device(args.device)
    warnings.filterwarnings("ignore", message="This DataLoader will create")   # more workers than cores, on purpose
    sets, root = SETS, args.root
    if args.quick:
        sets, root, args.rounds = QUICK_SETS, Path(tempfile.mkdtemp(prefix="rsd-loader-")), 1
    for line in environment(device):
        print(line)
    workers_list = [int(w) for w in args.workers.split(",")]
    rows, verdicts = [], []
    for name in args.sets.split(","):
        folder = ensure_set(root, name, sets)
        coils, shape, n, _ = sets[name]
        print(f"{name}: {folder}, {n} samples of {coils} coils × {shape[0]}×{shape[1]} k-space and maps, "
              f"{set_bytes(folder) / 1e9:.2f} GB, {set_bytes(folder) / n / 1e6:.1f} MB a sample", flush=True)
        set_rows, verdict = measure(folder, name, workers_list, args.rounds, args.samples, device,
                                    args.need * 384 ** 2 / (shape[0] * shape[1]))
        rows, verdicts = rows + set_rows, verdicts + [verdict]
    print()
    print_table(Row("set", "loader", "page cache", "resident before", "runs", "samples a run",
                    "samples/s median (best)", "MB/s median",
                    "CPU ms a sample: training process (its operator) + workers",
                    "others' CPU per run"), rows)
    print("\n".join(["", *verdicts]))
    if args.quick:
        shutil.rmtree(root)


if __name__ == "__main__":
    main()
