"""Support bundles hold no personal data and no secrets.

Canaries are planted where a bundle's contents come from: personal data in
the PMS (patients the engine reads at DEBUG and sends to the cloud), the
cloud token in the keyring, personal data, credentials and the token in the
logs' source (a rotated log file as an older or buggy writer could have
left it, with a line that is not a log record at all), and personal data in
the configuration file's comments. Bundles made by the running engine
(control channel) and by ``bridge bundle`` with the engine stopped (a fresh
process that knows no secret until it reads the keyring), and one from a
configuration that does not load (a password in the connection string), are
unpacked and searched byte for byte. Positive controls prove the search can
see: a neutral marker in the planted log file and the practice name from
the configuration must be there.
"""

from __future__ import annotations

import json
import secrets
import sqlite3
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import pytest
from test_control_engine import AGENT, EngineProcess, make_world, wait_for

from sandbox.cloud.server import ReferenceCloud
from sandbox.practice import BuildReport

pytestmark = pytest.mark.timeout(300)


def canary(label: str) -> str:
    return f"Cnry{label}{secrets.token_hex(4)}"


def digits(n: int) -> str:
    return "".join(str(secrets.randbelow(10)) for _ in range(n))


def unpack(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as bundle:
        return {name: bundle.read(name) for name in bundle.namelist()}


def leaks(parts: dict[str, bytes], planted: dict[str, str]) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for name, data in parts.items():
        hits = [label for label, value in planted.items() if value.encode() in data]
        if hits:
            found[name] = hits
    return found


def test_bundles_hold_no_personal_data_or_secrets(tmp_path: Path, practice: BuildReport) -> None:
    token = f"CnryToken{secrets.token_hex(12)}"
    person = {
        "first name": canary("First"),
        "last name": canary("Last"),
        "preferred name": canary("Pref"),
        "email": f"cnry.{secrets.token_hex(4)}@example.org",
        "home phone": f"555-{digits(3)}-{digits(4)}",
        "mobile phone": f"(206) {digits(3)}-{digits(4)}",
        "street": canary("Street"),
    }
    with ReferenceCloud(tmp_path / "cloud" / "cloud.sqlite3", tokens={AGENT: token}) as cloud:
        world = make_world(tmp_path, practice, cloud, level="DEBUG", token=token)
        with sqlite3.connect(world.db) as pms:
            pms.execute(
                "UPDATE patient SET FName = ?, LName = ?, Preferred = ?, Email = ?, HmPhone = ?,"
                " WirelessPhone = ?, Address = ? WHERE PatNum IN (5, 6)",
                (
                    person["first name"], person["last name"], person["preferred name"],
                    person["email"], person["home phone"], person["mobile phone"],
                    person["street"],
                ),
            )  # fmt: skip
        comment = canary("Comment")
        config = world.paths.config_file
        config.write_text(
            f"# office manager {comment}, call {person['home phone']}\n" + config.read_text()
        )
        log_text = {
            "ssn": f"{100 + secrets.randbelow(500)}-{10 + secrets.randbelow(89)}-{digits(4)}",
            "password": canary("Pwd"),
            "name in a field": canary("Field"),
            "note": canary("Note"),
            "garbage": canary("Garbage"),
        }
        keep = canary("KEEP")
        _plant_log_source(world.paths.log_dir, person, log_text, token, keep)
        planted = {**person, **log_text, "comment": comment, "token": token}

        engine = EngineProcess(world).start()
        try:

            def patients_read_twice() -> bool:
                row = cloud.mirror("patient", agent_id=AGENT).get("5")
                return row is not None and (row.data or {}).get("home_phone") == "555-0142"

            wait_for(lambda: "5" in cloud.mirror("patient", agent_id=AGENT), 120, "patient 5 sent")
            with sqlite3.connect(world.db) as pms:  # the delta path reads them again
                pms.execute("UPDATE patient SET HmPhone = '555-0142' WHERE PatNum IN (5, 6)")
            wait_for(patients_read_twice, 60, "the edited canary patient sent")
            with world.client() as client:
                by_engine = client.support_bundle()
        finally:
            assert engine.stop() == 0
        mirrored = cloud.mirror("patient", agent_id=AGENT)["6"].data or {}

        by_cli = world.cli("bundle")
        assert by_cli.returncode == 0, by_cli.stderr
        assert "made by this command" in by_cli.stdout
        cli_path = Path(by_cli.stdout.split("support bundle: ")[1].splitlines()[0])

        password = canary("ConnPwd")
        config.write_text(
            config.read_text().replace(
                "connection_string = '", f"connection_string = 'PWD={password};"
            )
            + f'token = "{token}"  # {comment}\n'
        )
        broken = world.cli("bundle")
        assert broken.returncode == 0, broken.stderr
        broken_path = Path(broken.stdout.split("support bundle: ")[1].splitlines()[0])
        planted["connection-string password"] = password

    # The engine really read the canary patients and sent them (the cloud may have them).
    assert mirrored.get("first_name") == person["first name"]
    for path in (by_engine, cli_path, broken_path):
        parts = unpack(path)
        assert not leaks(parts, planted), f"{path.name} leaks: {leaks(parts, planted)}"
        logs = b"".join(data for name, data in parts.items() if name.startswith("logs/"))
        assert keep.encode() in logs, "positive control: the planted log file is in the bundle"
        assert b"[redacted]" in logs
        assert b"Test Dental" in parts["config.toml"], "positive control: the settings are there"
        manifest = json.loads(parts["manifest.json"])
        assert any("not log records" in remark for remark in manifest["remarks"])
    broken_config = unpack(broken_path)["config.toml"].decode()
    assert "did not load" in broken_config and "PWD=" in broken_config
    assert "#" not in broken_config.split("\n", 1)[1], "comments are dropped"
    assert '"made_by": "engine"' in unpack(by_engine)["manifest.json"].decode()


def _plant_log_source(
    log_dir: Path, person: dict[str, str], text: dict[str, str], token: str, keep: str
) -> None:
    """A rotated log file as an older or buggy writer might have left it."""
    ts = datetime.now(UTC).isoformat(timespec="milliseconds")

    def record(msg: str, **extra: object) -> str:
        body = {"ts": ts, "level": "INFO", "logger": "bridge.legacy", "msg": msg, **extra}
        return json.dumps(body) + "\n"

    log_dir.mkdir(parents=True, exist_ok=True)
    (log_dir / "bridge.jsonl.7").write_text(
        record(
            f"reminder to {person['email']} at {person['home phone']} or "
            f"{person['mobile phone']}, ssn {text['ssn']}, with Bearer {token}",
            patient_name=f"{person['first name']} {person['last name']}",
            first_name=person["first name"],
            address=person["street"],
            note=text["note"],
            details={"email": person["email"], "HmPhone": person["home phone"]},
            who=[{"preferred": person["preferred name"], "lname": text["name in a field"]}],
        )
        + record(f"connect failed: Driver=x;PWD={text['password']};Server=db")
        + record(
            "upload failed",
            exc={
                "type": "CloudError",
                "message": f"401 for token {token}",
                "traceback": f"Traceback ...\nAuthorization: Bearer {token}\n",
            },
        )
        + record(f"marker {keep} stays")
        + f"not a record: {person['last name']} {text['garbage']} {token}\n",
        encoding="utf-8",
    )
