"""Operator speed: rsd-sci against sigpy, scikit-image and plain h5py, printed as one table.

    python benchmarks/operators.py                    # full run (~1.5 min on a 2-core CPU)
    python benchmarks/operators.py --quick            # smaller sizes, a smoke run (~10 s)
    python benchmarks/operators.py --device cuda      # rsd-sci on the GPU (sigpy too when cupy is installed)

Sections (every figure comes from this one run, on the same inputs for every contender):
  1. multi-coil SENSE A then A^H (per-sample birdcage maps, fastMRI random line masks at R = 4):
     rsd-sci `MRIOperator` against a loop of `sigpy.mri.linop.Sense` (forward then adjoint).
  2. ESPIRiT maps per slice as `rsd-sci data make` computes them: ours on torch (`espirit_maps`, the
     default `--maps torch`) against sigpy's EspiritCalib (`--maps sigpy`), with their agreement.
  3. CT: rsd-sci `ParallelBeamCT` A and A^T against skimage's radon and unfiltered iradon, per image;
     the adjoint/forward time ratio; the one-off sparse system-matrix build.
  4. Reading a fastMRI-schema multi-coil file slice by slice: `FastMRIFile.kspace(i)` against h5py.
  5. (CUDA only) SENSE time against the memory-bandwidth floor.

Timing: one untimed warm-up call per contender, then `--rounds` rounds; in each round every contender
runs once, in an order that rotates from round to round, so load from other processes falls on all of
them alike. Best and median over the rounds are reported; ratios are reference / rsd-sci (speed-up).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # tests/support/fastmri_schema.py writes the fastMRI-schema file
sys.path.insert(0, str(Path(__file__).resolve().parent))
from timing import (Load, Row, best, environment, goal_text, interleave, make_sync, median, ms, num,  # noqa: E402
                    print_table, ratio, sec, timed)


HEADER = Row("#", "operation", "implementation", "rounds", "best", "median", "rate (median)",
             "ratio: median (best)", "goal")


# ---- inputs ------------------------------------------------------------------------------------------
def sense_inputs(batch: int, coils: int, size: int, seed: int):
    """Per-sample unit-RSS birdcage maps (random radius, random coil phases), R = 4 line masks, x."""
    from rsd_sci.physics.coil_maps import birdcage_maps
    from rsd_sci.physics.masks import fastmri_line_mask

    rng = np.random.default_rng(seed)
    maps = np.stack([
        birdcage_maps(coils, size, size, radius=float(rng.uniform(1.2, 2.0)))
        * np.exp(1j * rng.uniform(0, 2 * np.pi, (coils, 1, 1)))
        for _ in range(batch)]).astype(np.complex64)
    masks = np.stack([fastmri_line_mask("random", size, [0.08], [4], seed=seed + i).mask
                      for i in range(batch)]).astype(np.float32)
    x = (rng.standard_normal((batch, 1, size, size), dtype=np.float32)
         + 1j * rng.standard_normal((batch, 1, size, size), dtype=np.float32)).astype(np.complex64)
    return maps, masks, x


def cupy_available() -> bool:
    try:
        import cupy  # noqa: F401

        return cupy.cuda.runtime.getDeviceCount() > 0
    except Exception:  # noqa: BLE001 (not installed, no driver, no device: all mean "no")
        return False


# ---- 1. SENSE ----------------------------------------------------------------------------------------
def bench_sense(args, device, cfg, rows, notes):
    import sigpy
    import sigpy.mri

    from rsd_sci.physics.mri import MRIOperator

    b, c, n = cfg["sense"]
    maps, masks, x = sense_inputs(b, c, n, args.seed)
    op = MRIOperator(torch.from_numpy(masks).view(b, 1, 1, n), torch.from_numpy(maps)).to(device)
    xt = torch.from_numpy(x).to(device)
    sync = make_sync(device)

    sp_dev = sigpy.Device(0 if device.type == "cuda" and cupy_available() else -1)
    sp_label = "sigpy Sense loop" + (" (GPU, cupy)" if sp_dev.id >= 0 else " (CPU, numpy)")
    with sp_dev:
        sp_maps = [sigpy.to_device(maps[i], sp_dev) for i in range(b)]
        sp_w = [sigpy.to_device(masks[i][None, None, :], sp_dev) for i in range(b)]
        sp_x = [sigpy.to_device(x[i, 0], sp_dev) for i in range(b)]
    linops = [sigpy.mri.linop.Sense(sp_maps[i], weights=sp_w[i]) for i in range(b)]

    def ours():
        with torch.no_grad():
            return op.A_adjoint(op.A(xt))

    def reference():
        with sp_dev:
            return [linops[i].H(linops[i](sp_x[i])) for i in range(b)]

    # the two compute the same thing
    got = ours().cpu().numpy()[:, 0]
    want = np.stack([sigpy.to_device(z, sigpy.cpu_device) for z in reference()])
    notes.append(f"SENSE: rsd-sci and sigpy agree to {np.linalg.norm(got - want) / np.linalg.norm(want):.1e} "
                 "relative L2")

    contenders = {"ours": ours, "ref": reference}
    syncs = {"ours": sync}
    if sp_dev.id >= 0:
        import cupy

        syncs["ref"] = cupy.cuda.Device(sp_dev.id).synchronize
    if device.type == "cpu" and torch.get_num_threads() > 1:
        contenders["ours1"] = one_thread(ours)
    t = interleave(contenders, args.rounds, syncs)

    what = f"SENSE A then A^H, batch {b}, {c} coils, {n}×{n}"
    per = lambda ts: f"{median(ts) / b * 1e3:.3g} ms/sample"  # noqa: E731
    threads = "" if device.type != "cpu" else f", {torch.get_num_threads()} threads"
    rows.append(timed("1", what, f"rsd-sci MRIOperator ({device.type}{threads})", t["ours"], rate=per(t["ours"]),
                      ratio=ratio(t["ref"], t["ours"]),
                      goal=goal_text(median(t["ref"]) / median(t["ours"]), 1.5, True, "≥ 1.5×")))
    if "ours1" in t:
        rows.append(timed("1", what, "rsd-sci MRIOperator (cpu, 1 thread)", t["ours1"], rate=per(t["ours1"]),
                          ratio=ratio(t["ref"], t["ours1"]), goal="(information)"))
    rows.append(timed("1", what, sp_label + " [reference]", t["ref"], rate=per(t["ref"]), ratio="1"))
    return t["ours"], (b, c, n)


# ---- 2. ESPIRiT ----------------------------------------------------------------------------------------
def espirit_input(coils: int, size: int, seed: int):
    """Undersampled (R = 4, centre fraction 0.08) k-space of a phantom under birdcage maps, as data make
    sees it, and the calibration width data make uses: min(centre lines, 24) (24 at 320, 10 at 128)."""
    from rsd_sci.data.phantoms import mri_phantoms
    from rsd_sci.data.simulate_mri import ESPIRIT_MAX_CALIB, fft2c_np
    from rsd_sci.physics.coil_maps import birdcage_maps
    from rsd_sci.physics.masks import fastmri_line_mask

    image = mri_phantoms(1, size, seed)[0]
    kspace = fft2c_np(birdcage_maps(coils, size, size) * image[None])
    mask = fastmri_line_mask("random", size, [0.08], [4], seed=seed)  # data make's default mask
    calib = min(int(mask.center.sum()), ESPIRIT_MAX_CALIB)
    return (kspace * mask.mask[None, None, :]).astype(np.complex64), calib


def bench_espirit(args, device, cfg, rows, notes):
    """Ours (`rsd_sci.physics.espirit` via `espirit_maps(method="torch")`, CPU, and CUDA with --device
    cuda) against sigpy's EspiritCalib (CPU; GPU only with cupy), interleaved in one run."""
    from rsd_sci.physics.coil_maps import espirit_maps

    c, n = cfg["espirit"]
    y, calib = espirit_input(c, n, args.seed)
    kernel = min(6, calib - 2)
    rounds = cfg["espirit_rounds"]
    what = f"ESPIRiT maps, {c} coils, {n}×{n}, calib {calib}"
    run = lambda method, dev: lambda: espirit_maps(y, calib_width=calib, kernel_width=kernel, crop=0.0,  # noqa: E731
                                                  method=method, device=dev)
    contenders = {"ours": run("torch", "cpu"), "ref": run("sigpy", "cpu")}
    if torch.get_num_threads() > 1:  # one thread: what each `data make --workers N` process uses
        contenders["ours1"] = one_thread(contenders["ours"])
    if device.type == "cuda":  # espirit_maps returns numpy arrays: synchronous
        contenders["gpu"] = run("torch", str(device))
    t = interleave(contenders, rounds)
    rate = lambda ts: f"{num(1 / median(ts))} slices/s"  # noqa: E731
    threads = f"{torch.get_num_threads()} threads"
    rows.append(timed("2", what, f"rsd-sci espirit (torch, cpu, {threads})", t["ours"], fmt=sec, rate=rate(t["ours"]),
                      ratio=ratio(t["ref"], t["ours"]),
                      goal=goal_text(median(t["ref"]) / median(t["ours"]), 10, True, "≥ 10×")))
    if "ours1" in t:
        rows.append(timed("2", what, "rsd-sci espirit (torch, cpu, 1 thread)", t["ours1"], fmt=sec,
                          rate=rate(t["ours1"]), ratio=ratio(t["ref"], t["ours1"]),
                          goal=goal_text(median(t["ref"]) / median(t["ours1"]), 10, True, "≥ 10×")))
    if "gpu" in t:
        rows.append(timed("2", what, f"rsd-sci espirit (torch, {device})", t["gpu"], fmt=sec, rate=rate(t["gpu"]),
                          ratio=ratio(t["ref"], t["gpu"]), goal="(information)"))
    else:
        rows.append(Row("2", what, "rsd-sci espirit, GPU: not measured (no --device cuda)"))
    rows.append(timed("2", what, "sigpy EspiritCalib (CPU) [reference]", t["ref"], fmt=sec, rate=rate(t["ref"]),
                      ratio="1"))
    if device.type == "cuda" and cupy_available():
        tg = interleave({"gpu": run("sigpy", "cuda:0")}, rounds)
        rows.append(timed("2", what, "sigpy EspiritCalib (GPU device 0)", tg["gpu"], fmt=sec, rate=rate(tg["gpu"]),
                          ratio=ratio(t["ref"], tg["gpu"]), goal="(information)"))
    ours, ref = contenders["ours"](), contenders["ref"]()
    inside = espirit_support(c, n, args.seed)
    err = np.linalg.norm((ours - ref)[:, inside]) / np.linalg.norm(ref[:, inside])
    notes.append(f"ESPIRiT: ours and sigpy agree to {err:.1e} relative L2 inside the phantom "
                 f"({inside.mean():.0%} of the pixels)")


def one_thread(fn):
    """fn run with torch on one thread (the setting is restored after the call)."""
    def run():
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            return fn()
        finally:
            torch.set_num_threads(threads)
    return run


def espirit_support(coils: int, size: int, seed: int) -> np.ndarray:
    """The phantom of `espirit_input` where its magnitude exceeds 5 % of the peak: (size, size) bool."""
    from rsd_sci.data.phantoms import mri_phantoms

    image = np.abs(mri_phantoms(1, size, seed)[0])
    return image > 0.05 * image.max()


# ---- 3. CT -------------------------------------------------------------------------------------------
def bench_ct(args, device, cfg, rows, notes):
    from skimage.transform import iradon, radon

    from rsd_sci.data.phantoms import ct_phantoms
    from rsd_sci.physics import radon_matrix
    from rsd_sci.physics.ct import ParallelBeamCT

    b, n, views = cfg["ct"]
    images = ct_phantoms(b, n, args.seed)  # zero outside the inscribed circle, as circle=True assumes
    theta = np.linspace(0.0, 180.0, views, endpoint=False)
    op = ParallelBeamCT(n, views)
    x = torch.from_numpy(images)[:, None].to(device)
    sync = make_sync(device)

    radon_matrix.clear_cache()
    sync()
    start = time.perf_counter()
    with torch.no_grad():
        y = op.A(x)
    sync()
    first = time.perf_counter() - start
    sino_sk = [radon(images[i], theta, circle=True) for i in range(b)]  # (detectors, views)

    def ours_a():
        with torch.no_grad():
            return op.A(x)

    def ours_at():
        with torch.no_grad():
            return op.A_adjoint(y)

    def sk_radon():
        return [radon(images[i], theta, circle=True) for i in range(b)]

    def sk_iradon():
        return [iradon(sino_sk[i], theta, circle=True, filter_name=None) for i in range(b)]

    t = interleave({"A": ours_a, "AT": ours_at, "radon": sk_radon, "iradon": sk_iradon}, cfg["ct_rounds"],
                   {"A": sync, "AT": sync})
    geo = f"{n}×{n}, {views} views, batch {b}, per image"
    for label, ours, ref, impl, ref_impl in (
            ("forward", "A", "radon", "A", "skimage radon"),
            ("back-projection", "AT", "iradon", "A_adjoint", "skimage iradon, filter_name=None")):
        rate = lambda ts: f"{num(b / median(ts))} images/s"  # noqa: E731
        rows.append(timed("3", f"CT {label}, {geo}", f"rsd-sci ParallelBeamCT.{impl} ({device.type})", t[ours],
                          per=b, rate=rate(t[ours]), ratio=ratio(t[ref], t[ours])))
        rows.append(timed("3", f"CT {label}, {geo}", f"{ref_impl} [reference]", t[ref], per=b, rate=rate(t[ref]),
                          ratio="1"))
    adj_over_fwd = median(t["AT"]) / median(t["A"])
    rows.append(Row("3", "CT A_adjoint time / A time", "rsd-sci", str(len(t["A"])),
                    f"{best(t['AT']) / best(t['A']):.2f}", f"{adj_over_fwd:.2f}", "", "",
                    goal_text(adj_over_fwd, 2.0, False, "≤ 2")))
    rows.append(Row("3", f"CT system-matrix build, {n}×{n}, {views} views",
                    "rsd-sci first A call, cache cleared", "1", sec(first), sec(first), "", "", "one-off"))

    # the same geometry: forward against radon (~1 % by design), adjoint against iradon unfiltered
    sk = np.stack(sino_sk).transpose(0, 2, 1)
    fwd_err = np.linalg.norm(y.cpu().numpy()[:, 0] - sk) / np.linalg.norm(sk)
    with torch.no_grad():
        back = op.A_adjoint(torch.from_numpy(np.ascontiguousarray(sk))[:, None].to(device)).cpu().numpy()[:, 0]
    ref = np.stack(sk_iradon()) / (np.pi / (2 * views))  # iradon scales the back-projection by π/(2·views)
    adj_err = np.linalg.norm(back - ref) / np.linalg.norm(ref)
    notes.append(f"CT: A vs radon {fwd_err:.1%} relative L2 (pixel-driven vs rotation-based, expected ~1 %); "
                 f"A^T vs iradon(filter_name=None)·2·views/π {adj_err:.1e}")


# ---- 4. fastMRI reading ------------------------------------------------------------------------------
def bench_read(args, device, cfg, rows, notes):
    import h5py
    from tests.support.fastmri_schema import write_fastmri_file

    from rsd_sci.data.fastmri import FastMRIFile

    s, c, h, w = cfg["read"]
    rng = np.random.default_rng(args.seed)
    kspace = rng.standard_normal((s, c, h, w, 2), dtype=np.float32).view(np.complex64)[..., 0]
    folder = tempfile.TemporaryDirectory(prefix="rsd-bench-")
    path = write_fastmri_file(Path(folder.name) / "file_bench.h5", kspace, recon_size=(h // 2, h // 2))
    del kspace
    mbytes = s * c * h * w * 8 / 1e6

    def ours():
        with FastMRIFile(path) as f:
            for i in range(f.num_slices):
                f.kspace(i)

    def ours_unchecked():   # what `data make` reads: it checks finiteness on the prepared sample instead
        with FastMRIFile(path) as f:
            for i in range(f.num_slices):
                f.kspace(i, check_finite=False)

    def reference():
        with h5py.File(path, "r") as f:
            data = f["kspace"]
            for i in range(data.shape[0]):
                data[i]

    with folder:
        t = interleave({"ours": ours, "unchecked": ours_unchecked, "ref": reference}, args.rounds)
    what = f"fastMRI read, {s} slices × {c} coils × {h}×{w} c64 ({mbytes:.0f} MB), per file"
    rate = lambda ts: f"{num(s / median(ts))} slices/s, {num(mbytes / median(ts))} MB/s"  # noqa: E731
    rows.append(timed("4", what, "rsd-sci FastMRIFile.kspace(i)", t["ours"], rate=rate(t["ours"]),
                      ratio=ratio(t["ref"], t["ours"])))
    rows.append(timed("4", what, "rsd-sci FastMRIFile.kspace(i, check_finite=False) (data make)", t["unchecked"],
                      rate=rate(t["unchecked"]), ratio=ratio(t["ref"], t["unchecked"]),
                      goal=goal_text(median(t["ref"]) / median(t["unchecked"]), 0.9, True, "≥ 0.9×")))
    rows.append(timed("4", what, 'h5py f["kspace"][i] [reference]', t["ref"], rate=rate(t["ref"]), ratio="1"))
    notes.append("read: the file was just written, so it is read from the page cache (warm); "
                 "FastMRIFile.kspace(i) checks every slice for NaN/Inf (np.isfinite over the slice); data make reads "
                 "with check_finite=False and checks the prepared, smaller sample")


# ---- 5. CUDA bandwidth floor -------------------------------------------------------------------------
def bench_floor(args, device, rows, notes, sense_times, sense_shape):
    b, c, n = sense_shape
    sync = make_sync(device)
    src = torch.empty(2**28, dtype=torch.float32, device=device)  # 1 GiB
    dst = torch.empty_like(src)
    t = interleave({"copy": lambda: dst.copy_(src)}, max(args.rounds, 5), {"copy": sync})
    bandwidth = 2 * src.numel() * src.element_size() / best(t["copy"])  # read + write
    del src, dst
    image, coil = b * n * n * 8, b * c * n * n * 8
    moved = image + coil + coil + coil + image  # read x, read maps, write y, read y, write x
    floor = moved / bandwidth
    what = f"SENSE A then A^H, batch {b}, {c} coils, {n}×{n}, vs memory-bandwidth floor"
    rows.append(timed("5", what, "rsd-sci MRIOperator (cuda)", sense_times,
                      rate=f"{floor / median(sense_times):.0%} of the floor's speed",
                      ratio=ratio([floor], sense_times), goal="1× = at the floor"))
    rows.append(Row("5", what, f"floor: {moved / 1e6:.0f} MB / {bandwidth / 1e9:,.0f} GB/s [reference]",
                    str(len(t["copy"])), ms(floor), ms(floor), "", "1", ""))
    notes.append(f"floor: bytes = read x + read maps + write y + read y + write x (complex64), at the bandwidth "
                 f"of a 1 GiB device-to-device copy (2 × 1 GiB / best copy time = {bandwidth / 1e9:,.0f} GB/s)")


# ---- main ------------------------------------------------------------------------------------------
CONFIGS = {
    # sense (batch, coils, N); espirit (coils, N); ct (batch, N, views); read (slices, coils, H, W)
    "full": dict(sense=(8, 15, 320), espirit=(15, 320), ct=(8, 256, 180), read=(8, 15, 640, 368)),
    "quick": dict(sense=(4, 8, 128), espirit=(8, 128), ct=(4, 128, 90), read=(4, 8, 320, 184)),
}


def operator_environment(device: torch.device) -> list[str]:
    import h5py
    import sigpy
    import skimage

    return environment(device, {"sigpy": sigpy.__version__, "scikit-image": skimage.__version__,
                                "h5py": h5py.__version__},
                       "(torch default, not changed); numpy/sigpy/skimage FFTs single-threaded")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--rounds", type=int, default=15,
                   help="timed rounds per contender (default 15; ESPIRiT at most 3 and CT at most 5, whose "
                        "rounds take seconds each)")
    p.add_argument("--quick", action="store_true", help="smaller sizes: a fast smoke run")
    p.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if args.rounds < 1:
        p.error("--rounds must be at least 1")
    if args.device == "cuda" and not torch.cuda.is_available():
        p.error("--device cuda: no CUDA device is available")
    device = torch.device(args.device)
    cfg = dict(CONFIGS["quick" if args.quick else "full"])
    cfg["espirit_rounds"] = min(3, args.rounds)  # ~10 s per full-size slice
    cfg["ct_rounds"] = max(1, min(args.rounds, 5))  # skimage needs ~0.35 s per image and round

    wall = time.perf_counter()
    print("\n".join(operator_environment(device)))
    print(f"run: {'--quick' if args.quick else 'full'}, {args.rounds} rounds (ESPIRiT {cfg['espirit_rounds']}, "
          f"CT {cfg['ct_rounds']}); times per call, best and median over rounds; ratio = reference median / "
          "rsd-sci median (best / best in brackets)\n")
    rows: list[Row] = []
    notes: list[str] = []
    loads, results = [], {}
    for name, bench in (("SENSE", bench_sense), ("ESPIRiT", bench_espirit), ("CT", bench_ct),
                        ("read", bench_read)):
        with Load() as load:
            results[name] = bench(args, device, cfg, rows, notes)
        loads.append(f"{name} {load.others()}")
    if device.type == "cuda":
        bench_floor(args, device, rows, notes, *results["SENSE"])
    notes.append("machine load (CPU time used by other processes, share of all CPUs) per section: "
                 + ", ".join(loads))
    print_table(HEADER, rows)
    print()
    for note in notes:
        print(f"- {note}")
    print(f"- total wall time {time.perf_counter() - wall:.0f} s")


if __name__ == "__main__":
    main()
