"""First-sync pages (Outbox.stage_pages) and the uplink that sends them.

Pages are stored as finished request bodies; these tests prove they decode
to exactly the staged records, keep their batch ids when re-sent, go after
live changes, count in the depth and the room check, and that a page the
real reference cloud refuses as too large is turned back into ordinary rows
and still arrives whole.
"""

from __future__ import annotations

import gzip
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bridge.cloud import CloudClient
from bridge.config import load_settings
from bridge.secrets import MemorySecretStore
from bridge.state import StateStore
from bridge.state.models import OutboxChange, OutboxPage, RowState
from bridge.sync.columns import dumps
from bridge.sync.loops import UplinkLoop
from bridge.sync.outbox import BULK, LIVE, Batch, Outbox, OutboxFullError, Page
from bridge.sync.records import Record, content_hash
from sandbox.cloud.server import ReferenceCloud
from sandbox.cloud.testing import AGENT_ID, TOKEN

pytest_plugins = ["sandbox.cloud.fixtures"]

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)


def record(key: int, **data: object) -> Record:
    body = {"id": str(key), "name": f"row {key}", **data}
    return Record("appointment", str(key), body, None, content_hash(body))


def stage_pages(store: StateStore, box: Outbox, records: list[Record], **kw: int) -> int:
    with store.write() as session:
        return box.stage_pages(session, records, **kw).staged


def test_pages_hold_exactly_the_staged_records(store: StateStore) -> None:
    box = Outbox(store, "agent-1", clock=lambda: NOW)
    records = [record(k, minutes=k % 7) for k in range(1, 2_501)]
    assert stage_pages(store, box, records, page_changes=1_000) == 2_500
    with store.read() as session:
        pages = session.query(OutboxPage).order_by(OutboxPage.id).all()
        states = {s.key: s.hash for s in session.query(RowState)}
        assert session.query(OutboxChange).count() == 0  # no row per record
    assert [p.changes for p in pages] == [1_000, 1_000, 500]
    assert [(p.first_key, p.last_key) for p in pages] == [
        ("1", "1000"),
        ("1001", "2000"),
        ("2001", "2500"),
    ]
    assert states == {r.key: r.hash for r in records}
    sent = []
    for page in pages:
        raw = gzip.decompress(page.body)
        assert page.size == len(raw)
        body = json.loads(raw)
        assert body["agent_id"] == "agent-1" and body["batch_id"] == page.batch_id
        assert body["seq"] == page.id and len(body) == 4
        sent.extend(body["changes"])
    assert [c["key"] for c in sent] == [r.key for r in records]
    assert all(c["op"] == "upsert" and c["entity"] == "appointment" for c in sent)
    assert [c["data"] for c in sent] == [dict(r.data) for r in records]
    versions = {c["version"] for c in sent}
    assert len(versions) == 1 and versions == {s for s in versions if s.isdigit()}


def test_pages_are_also_cut_by_size(store: StateStore) -> None:
    box = Outbox(store, "agent-1")
    records = [record(k, note="x" * 500) for k in range(1, 101)]
    stage_pages(store, box, records, page_changes=1_000, page_bytes=20_000)
    with store.read() as session:
        pages = session.query(OutboxPage).all()
    assert len(pages) > 2 and sum(p.changes for p in pages) == 100
    assert all(p.size <= 20_000 + 2_000 for p in pages)


def test_keys_already_sent_go_through_ordinary_staging(store: StateStore) -> None:
    """A repeated first sync: unchanged rows are dropped, changed ones get a
    newer version as ordinary bulk rows; new keys still go into pages."""
    box = Outbox(store, "agent-1")
    stage_pages(store, box, [record(1), record(2)])
    drain(box)
    with store.read() as session:
        before = {s.key: s.version for s in session.query(RowState)}
    result_records = [record(1), record(2, minutes=30), record(3)]
    with store.write() as session:
        result = box.stage_pages(session, result_records)
    assert (result.staged, result.unchanged) == (2, 1)
    with store.read() as session:
        rows = session.query(OutboxChange).all()
        pages = session.query(OutboxPage).all()
        after = {s.key: s.version for s in session.query(RowState)}
    assert [(r.key, r.lane) for r in rows] == [("2", BULK)]
    assert [(p.first_key, p.last_key) for p in pages] == [("3", "3")]
    assert after["2"] > before["2"] and after["1"] == before["1"]


def drain(box: Outbox) -> list[tuple[str, str]]:
    out = []
    while (batch := box.next_batch(max_changes=10_000, max_bytes=64 * 1024**2)) is not None:
        out.extend((c.op, c.key) for c in batch.changes)
        assert box.acknowledge(batch.batch_id) == len(batch.changes)
    return out


def test_live_changes_go_before_pages_and_pages_before_bulk_rows(store: StateStore) -> None:
    box = Outbox(store, "agent-1")
    stage_pages(store, box, [record(k) for k in range(1, 4)])
    with store.write() as session:
        box.stage(session, [record(10)], lane=BULK)
        box.stage(session, [record(20)])
    assert box.depth()[0] == 5
    first = box.next_batch()
    assert first is not None and not isinstance(first, Page)
    assert [c.key for c in first.changes] == ["20"]
    box.acknowledge(first.batch_id)
    page = box.next_batch()
    assert isinstance(page, Page) and page.count == 3
    again = box.next_batch()  # not acknowledged: the very same page, same id and bytes
    assert isinstance(again, Page) and again == page
    assert box.acknowledge(page.batch_id) == 3
    assert drain(box) == [("upsert", "10")]
    assert box.depth() == (0, 0)


def test_pages_count_towards_the_disk_cap(store: StateStore) -> None:
    box = Outbox(store, "agent-1", max_bytes=30_000)
    stage_pages(store, box, [record(k, note="y" * 200) for k in range(1, 200)])
    assert box.depth()[1] > 30_000
    with store.write() as session, pytest.raises(OutboxFullError):
        box.stage_pages(session, [record(500)])
    drain(box)
    stage_pages(store, box, [record(500)])  # room again once the cloud took them


def test_the_reader_waits_while_the_cloud_is_pages_behind(store: StateStore) -> None:
    box = Outbox(store, "agent-1")
    stage_pages(store, box, [record(k) for k in range(1, 31)], page_changes=10)
    assert box.pages_waiting() == 3
    assert box.wait_for_pages(limit=3, timeout=0.05) is False
    released = threading.Event()

    def acknowledge_one() -> None:
        page = box.next_batch()
        assert isinstance(page, Page)
        box.acknowledge(page.batch_id)
        released.set()

    timer = threading.Timer(0.2, acknowledge_one)
    timer.start()
    assert box.wait_for_pages(limit=3, timeout=10.0) is True
    assert released.is_set()
    timer.join()


def test_a_page_refused_as_too_large_still_arrives_whole(
    tmp_path: Path, store: StateStore, reference_cloud: ReferenceCloud
) -> None:
    """The real uplink against the real cloud, whose batch limit is lowered
    below the page size: the page is refused (413), turned back into rows,
    and those are batched and split until every record has landed once."""
    reference_cloud.set_limits(max_changes=64)
    config = tmp_path / "bridge.toml"
    config.write_text(
        f"""
[practice]
name = "Test"
timezone = "America/Los_Angeles"
[pms]
profile = "opendental"
connection_string = 'Driver={{SQLite3}};Database={tmp_path / "none.sqlite3"}'
[cloud]
url = "{reference_cloud.url}"
agent_id = "{AGENT_ID}"
""",
        encoding="utf-8",
    )
    settings = load_settings(config)
    box = Outbox(store, AGENT_ID)
    records = [record(k) for k in range(1, 301)]
    stage_pages(store, box, records, page_changes=300)
    wake, stop = threading.Event(), threading.Event()
    uplink = UplinkLoop(
        settings,
        store,
        MemorySecretStore({"cloud-token": TOKEN}),
        box,
        wake,
        client_factory=lambda: CloudClient(
            settings.cloud, MemorySecretStore({"cloud-token": TOKEN})
        ),
    )
    thread = threading.Thread(target=uplink, args=(stop,))
    thread.start()
    try:
        deadline = datetime.now(UTC).timestamp() + 60
        while box.depth()[0] and datetime.now(UTC).timestamp() < deadline:
            wake.set()
            stop.wait(0.05)
    finally:
        stop.set()
        wake.set()
        thread.join(30)
    assert box.depth() == (0, 0)
    mirror = reference_cloud.mirror("appointment")
    assert {k: dict(m.data or {}) for k, m in mirror.items()} == {
        r.key: dict(r.data) for r in records
    }
    log = reference_cloud.change_log(entity="appointment")
    assert sorted(e.key for e in log if e.outcome == "applied") == sorted(r.key for r in records)
    assert max(b.changes for b in reference_cloud.batches()) <= 64


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(st.dictionaries(st.text(), JSON_VALUES, max_size=8))
def test_canonical_json_is_the_text_the_cloud_hashes(data: dict[str, object]) -> None:
    """orjson where it writes the same bytes, json where it would not."""
    expected = json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert dumps(data) == expected


def test_a_newer_change_to_a_key_in_a_waiting_page_goes_after_the_page(
    store: StateStore,
) -> None:
    """Per-key order: the cloud gets the first-sync version before the edit."""
    box = Outbox(store, "agent-1")
    stage_pages(store, box, [record(k) for k in range(1, 11)])
    with store.write() as session:
        box.stage(session, [record(5, minutes=45), record(50)])  # 5 is in the page, 50 is not
        box.stage_delete(session, "appointment", ["7"])
    with store.read() as session:
        lanes = {r.key: r.lane for r in session.query(OutboxChange)}
    assert lanes == {"5": BULK, "7": BULK, "50": LIVE}
    order = [(batch.batch_id, [c.key for c in batch.changes]) for batch in iter_batches(box)]
    keys = [k for _, ks in order for k in ks]
    assert keys.index("50") < keys.index("1") < keys.index("5", keys.index("1") + 1)
    assert keys.count("5") == 2 and sorted(keys[-2:]) == ["5", "7"]


def iter_batches(box: Outbox) -> Iterator[Batch | Page]:
    while (batch := box.next_batch(max_changes=10_000, max_bytes=64 * 1024**2)) is not None:
        yield batch
        box.acknowledge(batch.batch_id)
