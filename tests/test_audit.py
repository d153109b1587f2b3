"""The hash-chained audit trail: appending, the personal-data guard, every
kind of tampering found by ``verify``, and the ``bridge audit`` commands.

Tampering is done the way an intruder would: with a separate sqlite3
connection to the state file, behind the bridge's back.
"""

from __future__ import annotations

import itertools
import json
import sqlite3
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from sqlalchemy import select

from bridge import audit
from bridge.audit import GENESIS_HASH, HEAD_KEY, AuditDataError, entry_hash
from bridge.cli import cli
from bridge.paths import default_paths
from bridge.state import StateStore, open_state
from bridge.state.models import AuditEntry, MetaValue

T0 = datetime(2026, 11, 23, 9, 0, 0, 123456, tzinfo=UTC)
KINDS = (
    "decision.patient_matched",
    "pms.hold_written",
    "pms.appointment_confirmed",
    "decision.conflict",
    "pms.hold_released",
    "exception.opened",
)


def add_entries(store: StateStore, n: int, start: int = 0) -> list[AuditEntry]:
    entries = []
    for i in range(start, start + n):
        with store.write() as session:
            entry = audit.append(
                session,
                KINDS[i % len(KINDS)],
                actor="bridge",
                subject=f"inbox:item-{i}",
                data={
                    "appointment": str(800 + i),
                    "start": (T0 + timedelta(days=i)).isoformat(),
                    "conflicts": [str(i), str(i + 1)],
                    "minutes": 30,
                    "resumed": False,
                },
                recorded_at=T0 + timedelta(minutes=i),
            )
            session.expunge(entry)
        entries.append(entry)
    return entries


@pytest.fixture
def raw(store: StateStore) -> Iterator[sqlite3.Connection]:
    """The intruder's own connection to the state file."""
    conn = sqlite3.connect(store.path, isolation_level=None)
    yield conn
    conn.close()


def found(store: StateStore) -> list[tuple[int, str]]:
    return [(p.seq, p.kind) for p in audit.verify(store).problems]


def row(raw: sqlite3.Connection, seq: int) -> dict[str, object]:
    cursor = raw.execute("SELECT * FROM audit_entry WHERE seq = ?", (seq,))
    names = [d[0] for d in cursor.description]
    return dict(zip(names, cursor.fetchone(), strict=True))


def forge(values: dict[str, object], seq: int, prev_hash: str) -> dict[str, object]:
    """An entry as a forger who knows the algorithm would compute it."""
    recorded = datetime.fromisoformat(str(values["recorded_at"])).replace(tzinfo=UTC)
    data = json.loads(str(values["data"]))
    digest = entry_hash(
        prev_hash,
        seq=seq,
        recorded_at=recorded,
        kind=str(values["kind"]),
        actor=str(values["actor"]),
        subject=str(values["subject"]),
        data=data,
    )
    return {**values, "seq": seq, "prev_hash": prev_hash, "hash": digest}


def insert(raw: sqlite3.Connection, values: dict[str, object]) -> None:
    cols = ", ".join(values)
    marks = ", ".join("?" for _ in values)
    raw.execute(f"INSERT INTO audit_entry ({cols}) VALUES ({marks})", tuple(values.values()))


# -- appending ----------------------------------------------------------------------


def test_entries_chain_from_genesis_and_the_anchor_names_the_head(store: StateStore) -> None:
    entries = add_entries(store, 4)
    assert [e.seq for e in entries] == [1, 2, 3, 4]
    assert entries[0].prev_hash == GENESIS_HASH
    for before, after in itertools.pairwise(entries):
        assert after.prev_hash == before.hash
    with store.read() as session:
        stored = list(session.scalars(select(AuditEntry).order_by(AuditEntry.seq)))
        anchor = session.get(MetaValue, HEAD_KEY)
        assert anchor is not None and anchor.value == f"4:{entries[-1].hash}"
        for entry in stored:
            assert entry.recorded_at == T0 + timedelta(minutes=entry.seq - 1)  # microseconds kept
            assert entry.hash == entry_hash(
                entry.prev_hash,
                seq=entry.seq,
                recorded_at=entry.recorded_at,
                kind=entry.kind,
                actor=entry.actor,
                subject=entry.subject,
                data=json.loads(entry.data),
            )
    report = audit.verify(store)
    assert report.ok and report.entries == 4 and report.last_seq == 4
    assert report.head == (4, entries[-1].hash)


def test_an_empty_trail_verifies(store: StateStore) -> None:
    report = audit.verify(store)
    assert report.ok and report.entries == 0 and report.head is None


def test_entries_commit_with_the_callers_transaction_or_not_at_all(store: StateStore) -> None:
    add_entries(store, 2)
    with pytest.raises(RuntimeError), store.write() as session:
        audit.append(session, "pms.hold_written", actor="bridge", subject="inbox:x", data={})
        raise RuntimeError("the booking stage failed to record")
    with store.write() as session:  # two entries in one transaction chain in call order
        first = audit.append(
            session,
            "exception.opened",
            actor="bridge",
            subject="inbox:y",
            data={"exception": 7, "reason": "slot_taken"},
        )
        second = audit.append(
            session,
            "decision.conflict",
            actor="bridge",
            subject="inbox:y",
            data={"alternatives": 3},
        )
        assert (first.seq, second.seq, second.prev_hash) == (3, 4, first.hash)
    assert audit.verify(store).ok
    assert [e.seq for e in audit.recent(store)] == [1, 2, 3, 4]


def test_append_after_the_tail_was_cut_keeps_the_cut_visible(
    store: StateStore, raw: sqlite3.Connection
) -> None:
    add_entries(store, 5)
    raw.execute("DELETE FROM audit_entry WHERE seq >= 4")
    add_entries(store, 1, start=5)  # chains from the anchor (seq 5), not from seq 3
    assert found(store) == [(4, "removed")]
    assert "seq 4-5 missing" in str(audit.verify(store).problems[0])


def test_verify_beside_a_busy_writer_sees_one_consistent_snapshot(store: StateStore) -> None:
    """The engine appends from another thread while the CLI verifies: no
    pass may take a fresh entry for an insertion or a half-seen one for a
    removal."""
    add_entries(store, 50)
    done = threading.Event()

    def writer() -> None:
        try:
            add_entries(store, 80, start=50)
        finally:
            done.set()

    thread = threading.Thread(target=writer)
    thread.start()
    reports = []
    while not done.is_set():
        reports.append(audit.verify(store))
    thread.join()
    reports.append(audit.verify(store))
    assert len(reports) > 3
    assert [r.problems for r in reports if not r.ok] == []
    assert reports[-1].entries == 130


# -- the personal-data guard ----------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "rule"),
    [
        ({"first_name": "x"}, "looks like personal data (name)"),
        ({"Surname": "x"}, "looks like personal data (surname)"),
        ({"patientName": "x"}, "looks like personal data (name)"),
        ({"lastname": "x"}, "looks like personal data (name)"),
        ({"dateOfBirth": "x"}, "looks like personal data (birth)"),
        ({"dob": "x"}, "looks like personal data (dob)"),
        ({"HmPhone": "x"}, "looks like personal data (phone)"),
        ({"email": "x"}, "looks like personal data (email)"),
        ({"notes": "x"}, "looks like personal data (notes)"),
        ({"request": {"appointment_type": "3"}}, "looks like personal data (request)"),
        ({"patient": {"zip": "97201"}}, "'patient.zip' looks like personal data (zip)"),
        ({"reason": "Siân O'Brien"}, "contains spaces"),
        ({"who": "sian.obrien@example.com"}, "contains '@'"),
        ({"contact": "+15035550101"}, "looks like a phone number"),
        ({"on": "1985-11-11"}, "bare date"),
        ({"items": [1, {"phone_number": "5"}]}, "'items[1].phone_number' looks like personal"),
        ({"x": b"bytes"}, "is a bytes"),
        ({"x": float("nan")}, "finite"),
    ],
)
def test_personal_data_is_refused_and_the_message_never_repeats_it(
    store: StateStore, data: dict[str, object], rule: str
) -> None:
    add_entries(store, 1)
    with pytest.raises(AuditDataError) as caught, store.write() as session:
        audit.append(session, "decision.rejected", actor="bridge", subject="inbox:1", data=data)
    message = str(caught.value)
    assert rule in message
    for secret in ("Siân", "example.com", "5035550101", "1985-11-11", "97201"):
        assert secret not in message
    assert [e.seq for e in audit.recent(store)] == [1]  # nothing of that transaction stayed


def test_ids_codes_and_slot_times_are_accepted(store: StateStore) -> None:
    with store.write() as session:
        entry = audit.append(
            session,
            "pms.hold_written",
            actor="frontdesk:Dana at reception",
            subject="inbox:0b6f2c1e-7d4a-4f8e-9c41-2d1a9b8e6f00",
            data={
                "appointment": "812",
                "patient": "12",
                "start": "2026-12-01T10:00:00-08:00",
                "operatory": "3",
                "minutes": 40,
                "conflicts": ["4", "5"],
                "resumed": False,
                "exception": None,
                "reason": "slot_taken",
            },
        )
    assert json.loads(entry.data)["start"] == "2026-12-01T10:00:00-08:00"
    assert audit.verify(store).ok


@pytest.mark.parametrize(
    ("kind", "subject"),
    [("Pms Hold", "inbox:1"), ("pms.hold_written", "patient:Siân O'Brien"), ("", "inbox:1")],
)
def test_bad_kind_or_subject_is_refused(store: StateStore, kind: str, subject: str) -> None:
    with pytest.raises(AuditDataError), store.write() as session:
        audit.append(session, kind, actor="bridge", subject=subject, data={})


# -- tampering --------------------------------------------------------------------------


def test_edited_data_is_found(store: StateStore, raw: sqlite3.Connection) -> None:
    add_entries(store, 5)
    raw.execute("""UPDATE audit_entry SET data = '{"appointment":"999"}' WHERE seq = 3""")
    assert found(store) == [(3, "edited")]


def test_data_rewritten_in_another_json_form_is_found(
    store: StateStore, raw: sqlite3.Connection
) -> None:
    add_entries(store, 3)
    text = str(row(raw, 2)["data"])
    raw.execute("UPDATE audit_entry SET data = ? WHERE seq = 2", (json.dumps(json.loads(text)),))
    report = audit.verify(store)
    assert [(p.seq, p.kind) for p in report.problems] == [(2, "edited")]
    assert "rewritten" in report.problems[0].message


def test_edited_kind_is_found(store: StateStore, raw: sqlite3.Connection) -> None:
    add_entries(store, 5)
    raw.execute("UPDATE audit_entry SET kind = 'decision.declined' WHERE seq = 2")
    assert found(store) == [(2, "edited")]


def test_edited_time_or_actor_is_found(store: StateStore, raw: sqlite3.Connection) -> None:
    add_entries(store, 5)
    raw.execute("UPDATE audit_entry SET actor = 'frontdesk:someone' WHERE seq = 1")
    raw.execute("UPDATE audit_entry SET recorded_at = '2026-11-23 08:00:00.000000' WHERE seq = 4")
    assert found(store) == [(1, "edited"), (4, "edited")]


def test_a_removed_middle_entry_is_found(store: StateStore, raw: sqlite3.Connection) -> None:
    add_entries(store, 6)
    raw.execute("DELETE FROM audit_entry WHERE seq IN (3, 4)")
    report = audit.verify(store)
    assert [(p.seq, p.kind) for p in report.problems] == [(3, "removed")]
    assert "seq 3-4 missing" in report.problems[0].message


def test_removed_newest_entries_are_found_through_the_anchor(
    store: StateStore, raw: sqlite3.Connection
) -> None:
    add_entries(store, 5)
    raw.execute("DELETE FROM audit_entry WHERE seq = 5")
    report = audit.verify(store)
    assert [(p.seq, p.kind) for p in report.problems] == [(5, "removed")]
    assert "head anchor names seq 5" in report.problems[0].message


def test_removed_tail_with_a_rewritten_anchor_is_found_through_sqlites_counter(
    store: StateStore, raw: sqlite3.Connection
) -> None:
    add_entries(store, 5)
    head = row(raw, 3)
    raw.execute("DELETE FROM audit_entry WHERE seq > 3")
    raw.execute("UPDATE meta SET value = ? WHERE key = ?", (f"3:{head['hash']}", HEAD_KEY))
    report = audit.verify(store)
    assert [(p.seq, p.kind) for p in report.problems] == [(4, "removed")]
    assert "up to seq 5 existed" in report.problems[0].message


def test_a_forged_entry_appended_after_the_head_is_found(
    store: StateStore, raw: sqlite3.Connection
) -> None:
    add_entries(store, 4)
    last = row(raw, 4)
    insert(raw, forge({**last, "data": '{"appointment":"666"}'}, 5, str(last["hash"])))
    report = audit.verify(store)
    assert [(p.seq, p.kind) for p in report.problems] == [(5, "inserted")]


def test_a_forged_entry_inserted_in_the_middle_is_found(
    store: StateStore, raw: sqlite3.Connection
) -> None:
    """The forger makes room by renumbering 3..5 to 4..6, writes a well-hashed
    entry at 3 linked to 2, and moves the head anchor to the new last entry."""
    add_entries(store, 5)
    two = row(raw, 2)
    raw.execute("UPDATE audit_entry SET seq = seq + 100 WHERE seq >= 3")
    raw.execute("UPDATE audit_entry SET seq = seq - 99 WHERE seq >= 100")
    insert(raw, forge({**two, "data": '{"appointment":"666"}'}, 3, str(two["hash"])))
    last = row(raw, 6)
    raw.execute("UPDATE meta SET value = ? WHERE key = ?", (f"6:{last['hash']}", HEAD_KEY))
    report = audit.verify(store)
    assert [(p.seq, p.kind) for p in report.problems] == [(3, "inserted"), (4, "reordered")]
    assert "written as seq 3-5 are stored as seq 4-6" in report.problems[1].message


def test_a_forged_first_entry_is_found(store: StateStore, raw: sqlite3.Connection) -> None:
    add_entries(store, 3)
    one = row(raw, 1)
    raw.execute("UPDATE audit_entry SET seq = seq + 100")
    raw.execute("UPDATE audit_entry SET seq = seq - 99")
    insert(raw, forge({**one, "data": '{"appointment":"666"}'}, 1, GENESIS_HASH))
    last = row(raw, 4)
    raw.execute("UPDATE meta SET value = ? WHERE key = ?", (f"4:{last['hash']}", HEAD_KEY))
    report = audit.verify(store)
    assert [(p.seq, p.kind) for p in report.problems] == [(1, "inserted"), (2, "reordered")]
    assert "links past it to the start" in report.problems[0].message


def test_two_swapped_entries_are_found(store: StateStore, raw: sqlite3.Connection) -> None:
    add_entries(store, 5)
    raw.execute("UPDATE audit_entry SET seq = 100 WHERE seq = 2")
    raw.execute("UPDATE audit_entry SET seq = 2 WHERE seq = 3")
    raw.execute("UPDATE audit_entry SET seq = 3 WHERE seq = 100")
    report = audit.verify(store)
    assert [(p.seq, p.kind) for p in report.problems] == [(2, "reordered"), (3, "reordered")]
    assert report.problems[0].message == "written as seq 3, now stored as seq 2"


def test_a_rehashed_entry_breaks_the_link_to_the_next(
    store: StateStore, raw: sqlite3.Connection
) -> None:
    """Entry 3 edited and its hash recomputed; entry 4 still links to the old hash."""
    add_entries(store, 5)
    three = row(raw, 3)
    forged = forge({**three, "data": '{"appointment":"666"}'}, 3, str(three["prev_hash"]))
    raw.execute(
        "UPDATE audit_entry SET data = ?, hash = ? WHERE seq = 3", (forged["data"], forged["hash"])
    )
    report = audit.verify(store)
    assert [(p.seq, p.kind) for p in report.problems] == [(4, "broken_link")]
    assert "seq 3 was changed" in report.problems[0].message


def test_a_removed_entry_hidden_by_renumbering_is_found(
    store: StateStore, raw: sqlite3.Connection
) -> None:
    add_entries(store, 5)
    raw.execute("DELETE FROM audit_entry WHERE seq = 2")
    raw.execute("UPDATE audit_entry SET seq = seq - 1 WHERE seq > 2")
    assert ("removed", 2) in [(p.kind, p.seq) for p in audit.verify(store).problems]
    assert (2, "reordered") in found(store)


def test_a_missing_or_malformed_anchor_is_reported(
    store: StateStore, raw: sqlite3.Connection
) -> None:
    add_entries(store, 3)
    raw.execute("UPDATE meta SET value = 'garbage' WHERE key = ?", (HEAD_KEY,))
    assert found(store) == [(3, "anchor")]
    raw.execute("DELETE FROM meta WHERE key = ?", (HEAD_KEY,))
    report = audit.verify(store)
    assert [(p.seq, p.kind) for p in report.problems] == [(3, "anchor")]
    assert "missing" in report.problems[0].message


def test_a_long_trail_built_independently_verifies_quickly(
    store: StateStore, raw: sqlite3.Connection
) -> None:
    """10,000 entries chained by this test from the documented algorithm (not
    by append): verify accepts them quickly (about 0.45 s on an idle machine;
    the bound leaves room for a loaded CI machine) and still finds one edit."""
    prev, rows = GENESIS_HASH, []
    for seq in range(1, 10_001):
        when = T0 + timedelta(seconds=seq)
        data = {"appointment": str(seq), "start": when.isoformat()}
        digest = entry_hash(
            prev,
            seq=seq,
            recorded_at=when,
            kind="pms.hold_written",
            actor="bridge",
            subject=f"inbox:{seq}",
            data=data,
        )
        rows.append(
            (
                seq,
                when.replace(tzinfo=None).isoformat(sep=" "),
                "pms.hold_written",
                "bridge",
                f"inbox:{seq}",
                audit.canonical_json(data),
                prev,
                digest,
            )
        )
        prev = digest
    raw.execute("BEGIN")
    raw.executemany("INSERT INTO audit_entry VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
    raw.execute("INSERT INTO meta (key, value) VALUES (?, ?)", (HEAD_KEY, f"10000:{prev}"))
    raw.execute("COMMIT")
    started = time.perf_counter()
    report = audit.verify(store)
    elapsed = time.perf_counter() - started
    assert report.ok and report.entries == 10_000, report.problems[:3]
    assert elapsed < 5, f"verify took {elapsed:.1f} s"
    raw.execute("""UPDATE audit_entry SET data = '{"appointment":"1"}' WHERE seq = 2345""")
    assert found(store) == [(2345, "edited")]


# -- the commands -------------------------------------------------------------------------


@pytest.fixture
def home_store(bridge_home: Path) -> Iterator[StateStore]:
    s = open_state(default_paths().state_db)
    yield s
    s.close()


def run_cli(*args: str) -> Result:
    return CliRunner().invoke(cli, ["audit", *args], catch_exceptions=False)


def test_cli_verify_passes_then_lists_each_problem(home_store: StateStore) -> None:
    add_entries(home_store, 4)
    result = run_cli("verify")
    assert result.exit_code == 0, result.output
    assert "audit trail ok: 4 entries, seq 1-4" in result.output
    with sqlite3.connect(home_store.path, isolation_level=None) as raw:
        raw.execute("UPDATE audit_entry SET kind = 'decision.declined' WHERE seq = 2")
        raw.execute("DELETE FROM audit_entry WHERE seq = 4")
    result = run_cli("verify")
    assert result.exit_code == 1
    assert "FAILED verification: 2 problem(s) in 3 entries" in result.output
    assert "seq 2: edited:" in result.output
    assert "seq 4: removed:" in result.output
    report = json.loads(run_cli("verify", "--json").output)
    assert report["ok"] is False
    assert [(p["seq"], p["kind"]) for p in report["problems"]] == [(2, "edited"), (4, "removed")]


def test_cli_verify_of_an_empty_trail(bridge_home: Path) -> None:
    result = run_cli("verify")
    assert result.exit_code == 0 and "no entries yet" in result.output


def test_cli_verify_says_when_the_state_cannot_be_read(bridge_home: Path) -> None:
    state = default_paths().state_db
    state.parent.mkdir(parents=True)
    state.write_bytes(b"this is not a database" * 100)
    result = CliRunner().invoke(cli, ["audit", "verify"])
    assert result.exit_code == 2
    assert "error:" in result.output


def test_cli_list_shows_the_newest_entries_oldest_first(home_store: StateStore) -> None:
    add_entries(home_store, 8)
    result = run_cli("list", "--limit", "3")
    assert result.exit_code == 0
    lines = result.output.splitlines()
    assert lines[0].split()[:2] == ["seq", "recorded"]
    assert [int(line.split()[0]) for line in lines[1:]] == [6, 7, 8]
    pms = run_cli("list", "--kind", "pms.", "--json").output.splitlines()
    kinds = [json.loads(line)["kind"] for line in pms]
    assert kinds and all(k.startswith("pms.") for k in kinds)
    assert len(kinds) == sum(1 for i in range(8) if KINDS[i % len(KINDS)].startswith("pms."))
    one = run_cli("list", "--kind", "decision.conflict", "--json").output.splitlines()
    assert [json.loads(line)["seq"] for line in one] == [4]
    none = run_cli("list", "--kind", "nothing.here")
    assert "no audit entries of kind nothing.here" in none.output
