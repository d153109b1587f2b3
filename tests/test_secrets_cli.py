"""``bridge secret set | delete | check``, with an injected store and with
the real keyring code path on a file backend under tmp_path (never the
user's own keyring)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import keyring.core
import pytest
from click.testing import CliRunner, Result
from keyrings.alt.file import PlaintextKeyring
from test_config import VALID, write

from bridge.commands.secret_cmd import secret
from bridge.secrets import KeyringSecretStore, MemorySecretStore


def run(args: list[str], store: object, stdin: str | None = None) -> Result:
    obj = {"secret_store": store} if store is not None else {}
    return CliRunner().invoke(secret, args, obj=obj, input=stdin, catch_exceptions=False)


@pytest.fixture
def file_keyring(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[PlaintextKeyring]:
    """keyring's global backend replaced by a file under tmp_path."""
    backend = PlaintextKeyring()
    backend.file_path = str(tmp_path / "keyring.cfg")
    monkeypatch.setattr(keyring.core, "_keyring_backend", backend)
    yield backend


def test_set_from_stdin_check_and_delete() -> None:
    store = MemorySecretStore()
    result = run(["set", "pms-password", "--from-stdin"], store, "db pass 42\n")
    assert result.exit_code == 0
    assert result.output == "stored secret 'pms-password' in memory\n"
    assert store.get("pms-password").reveal() == "db pass 42"

    checked = run(["check", "pms-password"], store)
    assert checked.exit_code == 0
    assert checked.output == "secret 'pms-password' is stored\n"
    assert "db pass 42" not in checked.output

    assert run(["delete", "pms-password"], store).output == "deleted secret 'pms-password'\n"
    missing = run(["check", "pms-password"], store)
    assert missing.exit_code == 1
    assert "not stored" in missing.output and "bridge secret set pms-password" in missing.output
    assert run(["delete", "pms-password"], store).output == "secret 'pms-password' was not stored\n"


def test_set_prompts_hidden_and_confirms() -> None:
    store = MemorySecretStore()
    result = run(["set", "cloud-token"], store, "tok-998877\ntok-998877\n")
    assert result.exit_code == 0
    assert "tok-998877" not in result.output
    assert store.get("cloud-token").reveal() == "tok-998877"


def test_set_refuses_empty_values_and_bad_names() -> None:
    store = MemorySecretStore()
    assert run(["set", "x1", "--from-stdin"], store, "\n").exit_code == 1
    bad = run(["set", "not a name", "--from-stdin"], store, "v")
    assert bad.exit_code == 2 and "secret name" in bad.output


def test_check_without_name_checks_the_configured_secrets(tmp_path: Path) -> None:
    path = write(tmp_path, VALID)
    store = MemorySecretStore({"cloud-token": "tok-5566778899"})
    result = run(["check", "--config", str(path)], store)
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        "pms.password_secret: secret 'pms-password' is not stored — "
        "Store it with 'bridge secret set pms-password'.",
        "cloud.token_secret: secret 'cloud-token' is stored",
    ]
    assert "tok-5566778899" not in result.output


def test_keyring_store_on_a_file_backend(file_keyring: PlaintextKeyring) -> None:
    result = run(["set", "cloud-token", "--from-stdin"], None, "tok-from-file-keyring")
    assert result.exit_code == 0, result.output
    assert "PlaintextKeyring" in result.output
    assert KeyringSecretStore().get("cloud-token").reveal() == "tok-from-file-keyring"
    assert Path(file_keyring.file_path).exists()
    assert run(["check", "cloud-token"], None).exit_code == 0
    assert run(["delete", "cloud-token"], None).exit_code == 0
    assert run(["check", "cloud-token"], None).exit_code == 1
