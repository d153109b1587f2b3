"""Export folders, piece by piece: kinds, patterns, event batching, holders,
verified reading, after-upload actions and the [[folders]] settings."""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
import threading
import time
import tomllib
import types
from pathlib import Path

import pytest

import bridge.files
from bridge.config import load_settings
from bridge.config.load import validate_settings
from bridge.config.render import render_default_config, render_settings
from bridge.files.after import apply_after, free_name
from bridge.files.holders import find_holders
from bridge.files.kinds import cloud_kind, detect_format
from bridge.files.patterns import FileFilter
from bridge.files.reading import (
    PIECE,
    Cancelled,
    FileChangedError,
    cloud_name,
    hash_file,
    signature,
    verified_pieces,
)
from bridge.files.watcher import EventBatcher

ISA = (
    b"ISA*00*          *00*          *ZZ*SUBMITTERID    *ZZ*RECEIVERID     "
    b"*261123*1200*^*00501*000000001*0*P*:~"
)


def x12(code: bytes, *, sep: bytes = b"*", term: bytes = b"~", newline: bytes = b"") -> bytes:
    isa = ISA.replace(b"*", sep).replace(b"~", term)
    body = [b"GS*HP*SENDER*RECEIVER*20261123*1200*1*X*005010X221A1", b"ST*" + code + b"*0001"]
    body += [b"BPR*I*100*C*ACH", b"SE*3*0001", b"GE*1*1", b"IEA*1*000000001"]
    segments = [s.replace(b"*", sep) for s in body]
    return isa + newline + (term + newline).join(segments) + term


# -- kinds -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("content", "fmt"),
    [
        (x12(b"835"), "x12-835"),
        (x12(b"835", newline=b"\r\n"), "x12-835"),
        (x12(b"835", sep=b"|", term=b"\n"), "x12-835"),
        (b"\xef\xbb\xbf\r\n" + x12(b"837"), "x12-837"),
        (x12(b"999"), "x12"),
        (ISA, "x12"),  # the first ST is beyond what was read
        (b"ISA*00*short", "unknown"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n1 0 obj", "pdf"),
        (b"\n\n%PDF-1.4", "pdf"),
        (b"PatNum,LName,Amount\n1,Smith,10.00\n2,Jones,5.50\n", "csv"),
        (b"a;b;c\r\n1;2;3\r\n", "csv"),
        (b"a\tb\n1\t2\n", "csv"),
        ("Réf;Montant\n1;2\n".encode("cp1252"), "csv"),
        (b"a,b\n1,2,3\n", "unknown"),  # ragged
        (b"just one line of text\n", "unknown"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "unknown"),
        (b"", "unknown"),
    ],
)
def test_formats_are_told_from_the_first_bytes(content: bytes, fmt: str) -> None:
    assert detect_format(content) == fmt


def test_a_csv_cut_at_the_sniff_limit_is_still_csv() -> None:
    row = "12345,Some Payer,100.00\n"
    head = ("id,payer,amount\n" + row * 5000).encode()[: 64 * 1024]
    assert detect_format(head) == "csv"


def test_cloud_kinds_follow_the_content_then_the_folder() -> None:
    assert cloud_kind("x12-835", "report") == "era835"  # content cannot be mistaken
    assert cloud_kind("x12-837", "auto") == "claim"
    assert cloud_kind("pdf", "statement") == "statement"
    assert cloud_kind("pdf", "auto") == "report"
    assert cloud_kind("csv", "auto") == "report"
    assert cloud_kind("x12", "auto") == "other"
    assert cloud_kind("unknown", "auto") == "other"
    assert cloud_kind("unknown", "era835") == "era835"


# -- patterns --------------------------------------------------------------------------


def test_include_exclude_recursion_and_ignored_folders(tmp_path: Path) -> None:
    root = tmp_path / "exports"
    flat = FileFilter(root, ["*.835", "*.CSV"], ["~*", "*.tmp"], recursive=False)
    assert flat.wants("ERA_0001.835")
    assert flat.wants("report.csv")  # case-insensitive
    assert not flat.wants("report.pdf")
    assert not flat.wants("~lock.835")
    assert not flat.wants("sub/ERA.835")  # not recursive
    deep = FileFilter(
        root,
        ["*"],
        [".*", "*.tmp"],
        recursive=True,
        ignored=[root / "uploaded", tmp_path / "elsewhere"],
    )
    assert deep.wants("2026/11/ERA.835")
    assert not deep.wants("uploaded/ERA.835")  # the archive is never picked up
    assert not deep.wants("uploaded/2026/ERA.835")
    assert deep.wants("uploaded-not/ERA.835")
    assert not deep.wants(".hidden/ERA.835")
    assert not deep.wants("2026/x.TMP")
    assert deep.enters("2026") and not deep.enters("uploaded") and not deep.enters(".git")
    assert deep.ignored == ("uploaded",)
    by_path = FileFilter(root, ["claims/*.837"], [], recursive=True)
    assert by_path.wants("claims/b1.837") and not by_path.wants("other/b1.837")


# -- event batching ----------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_events_are_released_when_quiet_or_after_the_cap() -> None:
    clock = Clock()
    wake = threading.Event()
    batcher = EventBatcher(wake, quiet=1.0, max_delay=5.0, clock=clock)
    batcher.add("/x/a")
    assert wake.is_set()
    assert batcher.take() == ([], False)
    assert batcher.next_due() == 1001.0
    clock.now += 1.0
    assert batcher.take() == (["/x/a"], False)
    # a path that keeps changing is released after max_delay, not starved
    for _ in range(12):
        batcher.add("/x/busy")
        clock.now += 0.5
        paths, _ = batcher.take()
        if paths:
            break
    assert paths == ["/x/busy"]
    assert clock.now - 1001.0 == pytest.approx(5.0)
    assert batcher.next_due() is None


def test_too_many_pending_events_ask_for_a_rescan_instead() -> None:
    clock = Clock()
    batcher = EventBatcher(threading.Event(), max_paths=100, clock=clock)
    for i in range(150):
        batcher.add(f"/x/{i}")
    assert batcher.pending() == 0
    assert batcher.next_due() == clock.now
    assert batcher.take() == ([], True)
    assert batcher.take() == ([], False)


# -- holders -----------------------------------------------------------------------------


def test_writers_and_locks_are_found_readers_are_not(tmp_path: Path) -> None:
    written, locked, read = tmp_path / "w.835", tmp_path / "l.835", tmp_path / "r.835"
    for path in (written, locked, read):
        path.write_bytes(b"x")
    with read.open("rb"), written.open("ab"), locked.open("rb") as lock_handle:
        fcntl.flock(lock_handle, fcntl.LOCK_EX)
        found = find_holders([written, locked, read, tmp_path / "missing"])
    assert set(found) == {written, locked}
    assert found[written][0].how == "open for writing"
    assert found[written][0].pid == os.getpid()
    assert found[locked][0].how == "locked"
    assert find_holders([written, locked, read]) == {}


def test_another_process_holding_a_file_is_named(tmp_path: Path) -> None:
    path = tmp_path / "growing.csv"
    path.write_bytes(b"a,b\n")
    ready = tmp_path / "ready"
    code = (
        "import sys, time, pathlib\n"
        "f = open(sys.argv[1], 'ab')\n"
        "pathlib.Path(sys.argv[2]).touch()\n"
        "time.sleep(30)\n"
    )
    writer = subprocess.Popen([sys.executable, "-c", code, str(path), str(ready)])
    try:
        deadline = time.monotonic() + 10
        while not ready.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        [holder] = find_holders([path])[path]
        assert holder.pid == writer.pid
        assert holder.program.startswith("python")
        assert f"open for writing by {holder.program} (pid {writer.pid})" == holder.describe()
    finally:
        writer.kill()
        writer.wait()
    assert find_holders([path]) == {}


# -- reading -------------------------------------------------------------------------------


def test_hashing_a_file_that_changes_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(b"a,b\n1,2\n")
    sig = signature(path.stat())
    hashed = hash_file(path, sig)
    assert hashed.sha256 == hashlib.sha256(b"a,b\n1,2\n").hexdigest()
    assert (hashed.size, hashed.format) == (8, "csv")
    with path.open("ab") as out:
        out.write(b"3,4\n")
    with pytest.raises(FileChangedError) as changed:
        hash_file(path, sig)
    assert changed.value.reason_code == "changed_while_reading"
    path.unlink()
    with pytest.raises(FileChangedError) as vanished:
        hash_file(path, sig)
    assert vanished.value.reason_code == "vanished"


def _pieces_with_change(path: Path, change: bytes | None, at_piece: int) -> list[bytes]:
    """Stream ``path``; after piece ``at_piece`` overwrite its end (not read yet)."""
    hashed = hash_file(path, signature(path.stat()))
    pieces = verified_pieces(path, hashed)
    received = []
    for number, piece in enumerate(pieces):
        received.append(piece)
        if number == at_piece and change is not None:
            with path.open("r+b") as out:
                out.seek(-len(change), os.SEEK_END)
                out.write(change)
            os.utime(path, ns=(hashed.mtime_ns, hashed.mtime_ns))  # hide it from mtime
    return received


def test_the_last_piece_is_held_back_until_the_whole_file_is_verified(tmp_path: Path) -> None:
    path = tmp_path / "big.835"
    data = os.urandom(3 * PIECE + 17)
    path.write_bytes(data)
    assert b"".join(_pieces_with_change(path, None, 0)) == data
    # changed in place behind the reader's back (same size and mtime): never complete
    with pytest.raises(FileChangedError):
        _pieces_with_change(path, b"XXXX", 0)
    # grew after hashing: the body would be a truncated copy, so it is refused
    hashed = hash_file(path, signature(path.stat()))
    with path.open("ab") as out:
        out.write(b"more")
    sent = []
    with pytest.raises(FileChangedError):
        sent.extend(verified_pieces(path, hashed))
    assert sum(map(len, sent)) < hashed.size


def test_reading_stops_when_cancelled(tmp_path: Path) -> None:
    path = tmp_path / "big.dat"
    path.write_bytes(b"\0" * (3 * PIECE))
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        hash_file(path, signature(path.stat()), cancel)


@pytest.mark.parametrize(
    ("name", "sent"),
    [
        ("ERA 2026-11.835", "ERA 2026-11.835"),
        ("a\\b.csv", "a_b.csv"),
        ("bad\nname.pdf", "bad_name.pdf"),
        ("\udcff\udcfe.csv", "__.csv"),
        ("x" * 300 + ".835", "x" * 251 + ".835"),
        ("   ", "_"),
    ],
)
def test_names_are_made_acceptable_to_the_cloud(name: str, sent: str) -> None:
    assert cloud_name(name) == sent


# -- after upload -------------------------------------------------------------------------


def test_move_keeps_subfolders_and_never_overwrites(tmp_path: Path) -> None:
    root, archive = tmp_path / "era", tmp_path / "archive"
    (root / "2026").mkdir(parents=True)
    (archive / "2026").mkdir(parents=True)
    (archive / "2026" / "a.835").write_bytes(b"older")
    (archive / "2026" / "a (2).835").write_bytes(b"older too")
    path = root / "2026" / "a.835"
    path.write_bytes(b"new")
    done, target = apply_after("move", path, signature(path.stat()), archive, "2026/a.835")
    assert (done, target) == ("moved", archive / "2026" / "a (3).835")
    assert target.read_bytes() == b"new" and not path.exists()
    assert (archive / "2026" / "a.835").read_bytes() == b"older"
    assert free_name(archive / "new.835") == archive / "new.835"


def test_delete_and_leave_act_only_on_the_uploaded_content(tmp_path: Path) -> None:
    path = tmp_path / "a.csv"
    path.write_bytes(b"a,b\n")
    uploaded = signature(path.stat())
    assert apply_after("leave", path, uploaded, None, "a.csv") == ("kept", None)
    path.write_bytes(b"a,b\n1,2\n")  # rewritten since the upload: new content
    with pytest.raises(FileChangedError):
        apply_after("delete", path, uploaded, None, "a.csv")
    assert path.exists()
    assert apply_after("delete", path, signature(path.stat()), None, "a.csv") == ("deleted", None)
    assert not path.exists()


# -- settings ------------------------------------------------------------------------------

BASE = """
[practice]
name = "Test Dental"
timezone = "America/Chicago"
[pms]
profile = "opendental"
dsn = "OpenDental"
[cloud]
url = "https://cloud.example.com"
agent_id = "agent-1"
"""


def problems(folders: str) -> list[str]:
    _, found = validate_settings(tomllib.loads(BASE + folders))
    return [p.line() for p in found]


def test_folders_are_validated_naming_the_table_and_key(tmp_path: Path) -> None:
    era, arch = tmp_path / "era", tmp_path / "arch"
    ok = f'[[folders]]\nlabel = "ERA"\npath = "{era}"\nafter = "move"\narchive_to = "{arch}"\n'
    assert problems(ok) == []
    assert problems('[[folders]]\nlabel = "ERA"\npath = "relative/era"\n') == [
        "error: folders[1].path: must be an absolute path, e.g. 'C:\\OpenDental\\Exports' "
        "(got 'relative/era')"
    ]
    [moved] = problems(f'[[folders]]\nlabel = "A"\npath = "{era}"\nafter = "move"\n')
    assert moved.startswith('error: folders[1].archive_to: is required when after = "move"')
    [stray] = problems(f'[[folders]]\nlabel = "A"\npath = "{era}"\narchive_to = "{arch}"\n')
    assert 'is set but after = "leave"' in stray
    [inside] = problems(
        f'[[folders]]\nlabel = "A"\npath = "{era}"\nafter = "move"\narchive_to = "{tmp_path}"\n'
    )
    assert "must not be the watched folder or a folder containing it" in inside
    [typo] = problems(f'[[folders]]\nlabel = "A"\npath = "{era}"\nafter = "remove"\n')
    assert typo.startswith("error: folders[1].after: must be one of 'leave', 'move' or 'delete'")
    [twice] = problems(
        f'[[folders]]\nlabel = "ERA"\npath = "{era}"\n[[folders]]\nlabel = "era"\npath = "{arch}"\n'
    )
    assert twice.startswith("error: folders: two [[folders]] tables have the label 'era'")
    second = problems(
        f'[[folders]]\nlabel = "A"\npath = "{era}"\n'
        f'[[folders]]\nlabel = "a/b"\npath = "{arch}"\nsettle_seconds = 0\nlable = "x"\n'
    )
    assert [line.split(":")[1].strip() for line in second] == [
        "folders[2].label",
        "folders[2].settle_seconds",
        "folders[2].lable",
    ]
    assert "did you mean 'folders.label'" in second[2]


def test_delete_happens_only_when_configured(tmp_path: Path) -> None:
    settings, _ = validate_settings(
        tomllib.loads(BASE + f'[[folders]]\nlabel = "ERA"\npath = "{tmp_path}"\n')
    )
    assert settings is not None
    [folder] = settings.folders
    assert (folder.after, folder.archive_to, folder.kind, folder.recursive) == (
        "leave",
        None,
        "auto",
        False,
    )
    assert "*.tmp" in folder.exclude and folder.include == ("*",)


def test_template_and_show_handle_folders(tmp_path: Path) -> None:
    template = render_default_config()
    assert "# [[folders]]" in template and "\n[[folders]]" not in template
    era = tmp_path / "era"
    filled = render_default_config(
        {
            "practice.name": "Riverside Dental",
            "practice.timezone": "America/Chicago",
            "pms.profile": "opendental",
            "pms.dsn": "OpenDental",
            "cloud.url": "https://cloud.example.com",
            "cloud.agent_id": "agent-0001",
        },
        folders=[{"label": "ERA", "path": era, "include": ["*.835"], "settle_seconds": 2.5}],
    )
    path = tmp_path / "bridge.toml"
    path.write_text(filled, encoding="utf-8")
    settings = load_settings(path)
    [folder] = settings.folders
    assert (folder.label, folder.path, folder.include, folder.settle_seconds) == (
        "ERA",
        era,
        ("*.835",),
        2.5,
    )
    shown = render_settings(settings)
    assert '[[folders]]\nlabel = "ERA"' in shown
    assert 'after = "leave"  # default' in shown
    with pytest.raises(KeyError, match=r"folders\.labl"):
        render_default_config(folders=[{"labl": "x"}])


def test_the_public_names_are_exactly_the_intended_ones() -> None:
    public = {
        name
        for name, value in vars(bridge.files).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and name != "annotations"
    }
    assert (
        public
        == set(bridge.files.__all__)
        == {
            "STATES",
            "EventBatcher",
            "FileView",
            "FolderLoop",
            "FolderMissingError",
            "FolderWorker",
            "WatchdogWatcher",
            "Watcher",
            "cloud_kind",
            "detect_format",
            "folder_counts",
            "folder_loops",
            "recent_files",
            "sweep",
        }
    )
