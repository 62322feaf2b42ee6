"""The installed console script itself, in a subprocess (kept to a few: each pays the imports)."""

import subprocess
import sys
import time


def rsd_sci(*args):
    return subprocess.run([sys.executable, "-c", "from cli.app import main; main()", *args],
                          capture_output=True, text=True, timeout=120)


def test_help_is_fast_and_imports_nothing_heavy():
    start = time.perf_counter()
    r = rsd_sci("--help")
    elapsed = time.perf_counter() - start
    assert r.returncode == 0 and "data" in r.stdout and "info" in r.stdout
    assert elapsed < 3.0  # generous for a loaded 2-core machine; typically ~0.3 s
    probe = subprocess.run([sys.executable, "-c", "import sys, cli.app; print(sorted(m for m in "
                            "('torch', 'h5py', 'sigpy', 'monai', 'numpy') if m in sys.modules))"],
                           capture_output=True, text=True, timeout=60)
    assert probe.stdout.strip() == "[]"


def test_bad_input_is_one_line_exit_2_and_debug_shows_the_traceback(tmp_path):
    bad = tmp_path / "x.h5"
    bad.write_text("not hdf5")
    r = rsd_sci("info", str(bad))
    assert r.returncode == 2
    assert r.stderr.strip().count("\n") == 0 and "x.h5" in r.stderr and "Traceback" not in r.stderr
    r = rsd_sci("--debug", "info", str(bad))
    assert r.returncode != 0 and "Traceback" in r.stderr
