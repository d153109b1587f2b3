"""A 2 GiB export file uploads with bounded memory, on both sides.

The uploader is the real ``bridge files scan`` in a subprocess; its peak
resident set (``ru_maxrss`` from ``wait4``) is compared with the same
command uploading a 1 KiB file. The reference cloud runs in its own process
too, and its peak (``VmHWM``) is read before it stops. The 2 GiB file is
sparse (created in an instant); the cloud's stored copy is real bytes on
disk, deleted at the end with the source.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from conftest import bridge_env, store_cloud_token

from bridge.files import recent_files
from bridge.state import open_state
from sandbox.cloud.testing import AGENT_ID, TOKEN, CloudProcess

GIB = 1024**3
MIB = 1024**2


def _config(home: Path, exports: Path, cloud_url: str) -> None:
    (home / "config").mkdir(parents=True)
    (home / "config" / "bridge.toml").write_text(
        f"""[practice]
name = "Test Dental"
timezone = "America/Chicago"
[pms]
profile = "opendental"
connection_string = 'Driver={{SQLite3}};Database={home / "od.sqlite3"}'
[cloud]
url = "{cloud_url}"
agent_id = "{AGENT_ID}"
timeout_seconds = 120
[[folders]]
label = "Claims"
path = "{exports}"
settle_seconds = 0.2
""",
        encoding="utf-8",
    )


def _scan(env: dict[str, str]) -> tuple[int, int, float]:
    """``bridge files scan`` in a subprocess: exit status, peak RSS (bytes), seconds.

    The peak is the process's own ``VmHWM``, sampled until it exits. (Not
    ``ru_maxrss`` from ``wait4``: Linux hands an exec'd child the high-water
    mark of the process it was forked from, so under pytest-xdist a worker
    that ran big tests before would be counted as the uploader's memory.)
    """
    started = time.monotonic()
    process = subprocess.Popen(
        [sys.executable, "-m", "bridge", "files", "scan", "--timeout", "600"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    peak = 0
    stderr = process.stderr
    assert stderr is not None
    errors: list[bytes] = []
    reader = threading.Thread(target=lambda: errors.append(stderr.read()))
    reader.start()
    while process.poll() is None:
        with contextlib.suppress(OSError, AssertionError):  # exiting: the last reading stands
            peak = max(peak, _peak_rss(process.pid))
        time.sleep(0.05)
    reader.join(10)
    stderr.close()
    assert process.returncode == 0, b"".join(errors).decode(errors="replace")
    assert peak > 0, "no memory reading of the uploader"
    return process.returncode, peak, time.monotonic() - started


def _peak_rss(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmHWM")


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as source:
        while piece := source.read(8 * MIB):
            digest.update(piece)
    return digest.hexdigest()


@pytest.mark.slow
@pytest.mark.timeout(900)
def test_a_2_gib_file_uploads_with_flat_memory(tmp_path: Path) -> None:
    home, exports = tmp_path / "home", tmp_path / "exports"
    exports.mkdir()
    cloud = CloudProcess(tmp_path / "cloud").start()
    big = exports / "claims-2026.837"
    try:
        _config(home, exports, cloud.url)
        env = bridge_env(home)
        store_cloud_token(env, TOKEN)

        (exports / "small.837").write_bytes(b"ISA*" + b"x" * 1020)
        _, small_rss, _ = _scan(env)

        with big.open("wb") as out:  # sparse: 2 GiB of zeros but for both ends
            out.write(b"ISA*00*big claim batch~")
            out.truncate(2 * GIB)
            out.seek(2 * GIB - 4)
            out.write(b"END~")
        _, big_rss, took = _scan(env)
        cloud_rss = _peak_rss(cloud.pid)

        store = open_state(home / "data" / "state.sqlite3")
        try:
            view = next(v for v in recent_files(store) if v.path == big.name)
        finally:
            store.close()
        with cloud.admin() as admin:
            stored = {f.sha256: f for f in admin.files()}
        assert view.state == "uploaded" and view.size == 2 * GIB
        assert stored[view.sha256].size == 2 * GIB
        assert view.sha256 == _sha256(big)  # the cloud holds exactly the local file
        print(
            f"\n2 GiB upload: {took:.1f} s ({2 * GIB / MIB / took:.0f} MiB/s, hashing twice); "
            f"uploader peak RSS {big_rss / MIB:.1f} MiB (1 KiB file: {small_rss / MIB:.1f} MiB); "
            f"reference cloud peak RSS {cloud_rss / MIB:.1f} MiB"
        )
        assert big_rss - small_rss < 32 * MIB
        assert big_rss < 256 * MIB
        assert cloud_rss < 256 * MIB
    finally:
        cloud.stop()
        big.unlink(missing_ok=True)
        shutil.rmtree(tmp_path / "cloud" / "files", ignore_errors=True)
