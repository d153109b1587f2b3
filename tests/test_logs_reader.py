"""Reading logs back: order across rotated files, filters, tolerance of bad
lines, following across rotation, and ``bridge logs``."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from bridge.commands.logs_cmd import logs
from bridge.logs import (
    follow_log_records,
    iter_log_records,
    log_files,
    parse_since,
    setup_logging,
    shutdown_logging,
    tail_log_records,
)
from bridge.paths import BridgePaths

NOW = datetime.now(UTC).replace(microsecond=0)


def line(minutes_ago: float, level: str, logger: str, msg: str, **extra: object) -> str:
    ts = (NOW - timedelta(minutes=minutes_ago)).isoformat(timespec="milliseconds")
    record = {"ts": ts, "level": level, "logger": logger, "msg": msg, "thread": "main", **extra}
    return json.dumps(record) + "\n"


@pytest.fixture
def log_dir(tmp_path: Path) -> Path:
    """Three files: bridge.jsonl.2 (oldest) .. bridge.jsonl (newest), with junk."""
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "bridge.jsonl.2").write_text(
        line(300, "INFO", "bridge.engine", "engine started", version="0.1.0")
        + line(290, "DEBUG", "bridge.sync.appointment", "polled", rows=0)
    )
    (folder / "bridge.jsonl.1").write_text(
        line(120, "WARNING", "bridge.cloud", "cloud slow", seconds=4.5)
        + "this is not json\n"
        + '{"ts": "not a time", "level": "INFO", "logger": "x", "msg": "bad ts"}\n'
        + "[1, 2, 3]\n"
        + line(60, "ERROR", "bridge.syncer", "Upload FAILED", entity="patient")
    )
    (folder / "bridge.jsonl").write_bytes(
        line(5, "INFO", "bridge.sync.patient", "delta sent", entity="patient", rows=3).encode()
        + b"\xff\xfe garbage\n"
        + line(1, "INFO", "bridge.engine", "heartbeat").encode()
        + b'{"ts": "2026-11-23T10:00:0'  # the writer is mid-line
    )
    return folder


def messages(entries: object) -> list[str]:
    assert isinstance(entries, list | Iterator)
    return [entry.msg for entry in entries]


def test_reads_rotated_files_oldest_first_skipping_bad_lines(log_dir: Path) -> None:
    assert messages(iter_log_records(log_dir)) == [
        "engine started", "polled", "cloud slow", "Upload FAILED", "delta sent", "heartbeat",
    ]  # fmt: skip


def test_filters(log_dir: Path) -> None:
    assert messages(iter_log_records(log_dir, level="warning")) == ["cloud slow", "Upload FAILED"]
    assert messages(iter_log_records(log_dir, text="upload failed")) == ["Upload FAILED"]
    assert messages(iter_log_records(log_dir, text="entity=patient")) == [
        "Upload FAILED", "delta sent",
    ]  # fmt: skip
    since = NOW - timedelta(minutes=90)
    assert messages(iter_log_records(log_dir, since=since)) == [
        "Upload FAILED", "delta sent", "heartbeat",
    ]  # fmt: skip
    assert messages(iter_log_records(log_dir, logger="bridge.sync")) == ["polled", "delta sent"]
    assert messages(iter_log_records(log_dir, level="INFO", logger="bridge.sync")) == ["delta sent"]


def test_tail_reads_newest_files_first(log_dir: Path) -> None:
    assert messages(tail_log_records(log_dir, 3)) == ["Upload FAILED", "delta sent", "heartbeat"]
    assert messages(tail_log_records(log_dir, 1, level="ERROR")) == ["Upload FAILED"]
    assert tail_log_records(log_dir, 0) == []
    assert len(tail_log_records(log_dir, 100)) == 6


def test_entry_fields(log_dir: Path) -> None:
    entry = tail_log_records(log_dir, 1, text="delta")[0]
    assert entry.ts.tzinfo is not None
    assert entry.extra == {"entity": "patient", "rows": 3}
    local = entry.ts.astimezone().strftime("%Y-%m-%d %H:%M:%S")
    assert entry.human() == f"{local} INFO  bridge.sync.patient  delta sent entity=patient rows=3"
    assert json.loads(entry.json())["rows"] == 3


def test_parse_since() -> None:
    now = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
    assert parse_since("10m", now) == now - timedelta(minutes=10)
    assert parse_since("2h", now) == now - timedelta(hours=2)
    assert parse_since("3d", now) == now - timedelta(days=3)
    assert parse_since("2026-11-23T09:00:00+00:00") == datetime(2026, 11, 23, 9, tzinfo=UTC)
    naive = datetime(2026, 11, 23, 9, 30)
    assert parse_since("2026-11-23 09:30") == naive.astimezone().astimezone(UTC)
    with pytest.raises(ValueError, match="not a time"):
        parse_since("yesterday")


def test_follow_across_rotation_without_loss_or_repeats(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    current = folder / "bridge.jsonl"
    current.write_text(line(3, "INFO", "bridge", "m0") + line(2, "INFO", "bridge", "m1"))
    polls = {"left": 1000}

    def stop() -> bool:
        polls["left"] -= 1
        return polls["left"] < 0

    records = follow_log_records(folder, lines=1, poll_interval=0.01, stop=stop)
    assert next(records).msg == "m1"
    with current.open("a") as handle:
        handle.write(line(1, "INFO", "bridge", "m2"))
    assert next(records).msg == "m2"
    with current.open("a") as handle:
        handle.write(line(1, "INFO", "bridge", "m3"))
    current.rename(folder / "bridge.jsonl.1")
    current.write_text(line(0, "DEBUG", "bridge", "m4") + line(0, "INFO", "bridge", "m5"))
    assert [next(records).msg for _ in range(3)] == ["m3", "m4", "m5"]
    with current.open("a") as handle:
        handle.write(line(0, "INFO", "bridge", "m6")[:30])  # half a line
    polls["left"] = 5
    assert list(records) == []  # the partial line is never shown


def test_follow_applies_filters(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    folder.mkdir()
    (folder / "bridge.jsonl").write_text(line(1, "INFO", "a", "old"))
    polls = {"left": 3}

    def stop() -> bool:
        polls["left"] -= 1
        return polls["left"] < 0

    records = follow_log_records(folder, level="ERROR", poll_interval=0.01, stop=stop)
    with (folder / "bridge.jsonl").open("a") as handle:
        handle.write(line(0, "INFO", "a", "info") + line(0, "ERROR", "a", "error"))
    assert messages(list(records)) == ["error"]


def test_round_trip_through_logging(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    root_level = logging.getLogger().level
    setup_logging(folder, "INFO", 64 * 1024, 2)
    try:
        log = logging.getLogger("bridge.engine")
        log.info("hello", extra={"rows": 2})
        try:
            1 / 0  # noqa: B018
        except ZeroDivisionError:
            log.exception("sync loop crashed")
    finally:
        shutdown_logging()
        logging.getLogger().setLevel(root_level)
    first, second = tail_log_records(folder, 2)
    assert first.human().endswith("INFO  bridge.engine  hello rows=2")
    assert second.exc is not None and second.exc["type"] == "ZeroDivisionError"
    lines = second.human().splitlines()
    assert lines[0].endswith("ERROR bridge.engine  sync loop crashed")
    assert lines[1] == "    Traceback (most recent call last):"
    assert lines[-1] == "    ZeroDivisionError: division by zero"


# --- bridge logs ---------------------------------------------------------------------


def run(args: list[str], **obj: object) -> Result:
    return CliRunner().invoke(logs, args, obj=dict(obj), catch_exceptions=False)


def test_cli_default_shows_human_lines(log_dir: Path) -> None:
    result = run(["--log-dir", str(log_dir)])
    assert result.exit_code == 0
    lines = result.stdout.splitlines()
    assert len(lines) == 6
    assert lines[-1].endswith(" INFO  bridge.engine  heartbeat")


def test_cli_filters_and_json(log_dir: Path) -> None:
    def out(*args: str) -> list[str]:
        result = run(["--log-dir", str(log_dir), *args])
        assert result.exit_code == 0, result.output
        return result.stdout.splitlines()

    assert len(out("-n", "2")) == 2
    [error] = out("--level", "ERROR")
    assert error.endswith("ERROR bridge.syncer  Upload FAILED entity=patient")
    assert len(out("--grep", "FAILED", "--level", "warning")) == 1
    assert len(out("--since", "90m")) == 3
    assert len(out("--since", "90m", "-n", "1")) == 1
    assert len(out("--logger", "bridge.engine")) == 2
    raw = [json.loads(x) for x in out("--json", "-n", "2")]
    assert [r["msg"] for r in raw] == ["delta sent", "heartbeat"]


def test_cli_bad_since_and_missing_logs(tmp_path: Path) -> None:
    bad = run(["--log-dir", str(tmp_path), "--since", "soon"])
    assert bad.exit_code == 2 and "not a time" in bad.output
    empty = run([], paths=BridgePaths(tmp_path / "c", tmp_path / "d", tmp_path / "l"))
    assert empty.exit_code == 0
    assert empty.stderr == f"no log files in {tmp_path / 'l'}\n"


def test_follow_the_real_writer_through_rotations(tmp_path: Path) -> None:
    folder = tmp_path / "logs"
    root_level = logging.getLogger().level
    setup_logging(folder, "INFO", max_bytes=4096, backup_count=5)
    try:
        log = logging.getLogger("bridge.load")
        log.info("before")
        records = follow_log_records(folder, poll_interval=0.01)
        for number in range(60):
            log.info("r%d %s", number, "x" * 300)
            assert next(records).msg == f"r{number} {'x' * 300}"
        assert len(log_files(folder)) == 6
    finally:
        shutdown_logging()
        logging.getLogger().setLevel(root_level)
