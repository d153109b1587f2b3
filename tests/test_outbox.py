"""The durable outbox: de-duplication, per-key versions, deterministic batches."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from bridge.state import StateStore, open_state
from bridge.sync.outbox import Outbox, OutboxFullError
from bridge.sync.records import Record, content_hash


def rec(key: str, **data: object) -> Record:
    return Record("appointment", key, dict(data), None, content_hash(dict(data)))  # type: ignore[arg-type]


class Clock:
    def __init__(self) -> None:
        self.now = datetime(2026, 11, 23, 18, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now


def test_unchanged_rows_are_not_staged_again(store: StateStore) -> None:
    box = Outbox(store, "agent-1")
    with store.write() as s:
        assert box.stage(s, [rec("1", status="scheduled"), rec("2", status="complete")]).staged == 2
    with store.write() as s:
        result = box.stage(s, [rec("1", status="scheduled"), rec("2", status="broken")])
    assert (result.staged, result.unchanged) == (1, 1)


def test_newer_unsent_change_replaces_the_older_and_versions_grow(store: StateStore) -> None:
    clock = Clock()
    box = Outbox(store, "agent-1", clock=clock)
    with store.write() as s:
        box.stage(s, [rec("1", status="scheduled")])
    clock.now -= timedelta(hours=1)  # the clock steps back: versions must still grow
    with store.write() as s:
        box.stage(s, [rec("1", status="broken")])
    batch = box.next_batch()
    assert batch is not None and len(batch.changes) == 1
    assert batch.changes[0].data == {"status": "broken"}
    first_version = batch.changes[0].version
    box.acknowledge(batch.batch_id)
    with store.write() as s:
        box.stage(s, [rec("1", status="complete")])
    again = box.next_batch()
    assert again is not None and again.changes[0].version > first_version
    assert len(again.changes[0].version) == len(first_version)


def test_a_rebuilt_batch_keeps_its_id_and_changes(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    store = open_state(path)
    box = Outbox(store, "agent-1")
    with store.write() as s:
        box.stage(s, [rec(str(k), n=k) for k in range(10)])
    sent = box.next_batch(max_changes=4)
    store.close()
    # the engine dies before the acknowledgement; a new process rebuilds it
    store = open_state(path)
    box = Outbox(store, "agent-1")
    rebuilt = box.next_batch(max_changes=100)  # limits changed: the batch is not
    assert rebuilt == sent
    assert box.acknowledge(rebuilt.batch_id) == 4
    following = box.next_batch(max_changes=4)
    assert following is not None and following.batch_id != rebuilt.batch_id
    assert [c.key for c in following.changes] == ["4", "5", "6", "7"]
    assert box.depth()[0] == 6
    store.close()


def test_split_is_deterministic_and_ordered(store: StateStore) -> None:
    box = Outbox(store, "agent-1")
    with store.write() as s:
        box.stage(s, [rec(str(k), n=k) for k in range(5)])
    batch = box.next_batch()
    assert batch is not None
    left, right = box.split(batch)
    assert [c.key for c in left.changes] == ["0", "1"]
    assert [c.key for c in right.changes] == ["2", "3", "4"]
    assert box.next_batch() == left
    box.acknowledge(left.batch_id)
    assert box.next_batch() == right
    single = box.split(right)[0]
    assert len(single.changes) == 1
    with pytest.raises(ValueError, match="cannot be split"):
        box.split(single)


def test_deletes_are_staged_once(store: StateStore) -> None:
    box = Outbox(store, "agent-1")
    with store.write() as s:
        box.stage(s, [rec("1", n=1)])
        assert box.stage_delete(s, "appointment", ["1"]) == 1
        assert box.stage_delete(s, "appointment", ["1"]) == 0
    batch = box.next_batch()
    assert batch is not None
    assert [(c.op, c.data) for c in batch.changes] == [("delete", None)]


def test_a_full_outbox_refuses_to_stage_and_writes_nothing(store: StateStore) -> None:
    box = Outbox(store, "agent-1", max_bytes=500)
    with store.write() as s:
        box.stage(s, [rec(str(k), text="x" * 100) for k in range(4)])
    before = box.depth()
    with pytest.raises(OutboxFullError, match="cap 500"), store.write() as s:
        box.stage(s, [rec("new", text="y")])
    assert box.depth() == before
