"""``bridge status``, ``sync``, ``pause``, ``resume`` and ``bundle``: through the
control channel when an engine runs, from the local state when none does."""

from __future__ import annotations

import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result
from test_control_engine import AGENT, TOKEN, EngineProcess, World, make_world

from bridge.cli import cli
from bridge.control.pause import read_pause
from bridge.paths import BridgePaths
from bridge.secrets import MemorySecretStore
from bridge.state import open_state
from sandbox.cloud.server import ReferenceCloud
from sandbox.practice import BuildReport

pytestmark = pytest.mark.timeout(240)


def run(paths: BridgePaths, *args: str) -> Result:
    """The CLI in this process, on ``paths``, with the cloud token in memory."""
    return CliRunner().invoke(
        cli,
        list(args),
        obj={"paths": paths, "secret_store": MemorySecretStore({"cloud-token": TOKEN})},
        catch_exceptions=False,
    )


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, practice: BuildReport) -> Iterator[World]:
    root = tmp_path_factory.mktemp("control-cli")
    with ReferenceCloud(root / "cloud" / "cloud.sqlite3", tokens={AGENT: TOKEN}) as cloud:
        yield make_world(root, practice, cloud)


# -- no engine running ---------------------------------------------------------------------


def test_without_an_engine_status_reads_the_local_state_and_says_so(world: World) -> None:
    result = run(world.paths, "status")
    assert result.exit_code == 3
    assert "never started" in result.output
    last = result.output.rstrip().splitlines()[-1]
    assert last == "(read from the local state: the engine does not answer)"


def test_without_an_engine_sync_explains_how_to_start_it(world: World) -> None:
    result = run(world.paths, "sync", "patient")
    assert result.exit_code == 1
    assert "the engine is not running" in result.output and "bridge run" in result.output


def test_without_an_engine_pause_and_resume_set_the_flag_in_the_state(world: World) -> None:
    paused = run(world.paths, "pause", "--by", "it desk")
    assert paused.exit_code == 0 and "will start paused" in paused.output
    status = run(world.paths, "status")
    assert "paused   since" in status.output and "by it desk" in status.output
    resumed = run(world.paths, "resume")
    assert resumed.exit_code == 0 and "will start normally" in resumed.output
    store = open_state(world.state_db)
    try:
        assert not read_pause(store).paused
    finally:
        store.close()


def test_pause_refuses_when_an_engine_holds_the_state_but_does_not_answer(world: World) -> None:
    holder = open_state(world.state_db)
    holder.acquire_writer_lock()  # as a hung engine would
    try:
        result = run(world.paths, "pause")
    finally:
        holder.close()
    assert result.exit_code == 1
    assert "an engine holds the local state but does not answer" in result.output


def test_without_an_engine_bundle_is_made_by_the_command(world: World, tmp_path: Path) -> None:
    result = run(world.paths, "bundle", "--output", str(tmp_path / "out"))
    assert result.exit_code == 0, result.output
    assert "made by this command (the engine is not running)" in result.output
    (copied,) = (tmp_path / "out").glob("bridge-support-*.zip")
    assert f"support bundle: {copied}" in result.output
    with zipfile.ZipFile(copied) as bundle:
        manifest = bundle.read("manifest.json").decode()
        doctor = bundle.read("doctor.txt").decode()
    assert '"made_by": "cli"' in manifest
    assert "pms-connect" in doctor and "profile" in doctor


# -- with the engine running ---------------------------------------------------------------


@pytest.fixture(scope="module")
def engine(world: World) -> Iterator[EngineProcess]:
    process = EngineProcess(world).start()
    try:
        yield process
    finally:
        assert process.stop() == 0


def test_status_comes_from_the_running_engine(world: World, engine: EngineProcess) -> None:
    result = run(world.paths, "status")
    assert result.exit_code == 0
    assert f"engine   running (pid {engine.pid}" in result.output
    assert result.output.rstrip().endswith("through its control channel)")
    as_json = run(world.paths, "status", "--json")
    assert as_json.exit_code == 0 and f'"pid": {engine.pid}' in as_json.output


def test_sync_now_and_wait_until_finished(world: World, engine: EngineProcess) -> None:
    result = run(world.paths, "sync", "appointment_type", "--wait", "--timeout", "150")
    assert result.exit_code == 0, result.output
    assert "sync of appointment_type requested" in result.output
    assert result.output.rstrip().endswith("sync finished")
    keys = run(world.paths, "sync", "patient", "--key", "5", "--key", "6")
    assert keys.exit_code == 0 and "sync of 2 record(s) of patient requested" in keys.output


def test_sync_refuses_what_the_profile_does_not_have(world: World, engine: EngineProcess) -> None:
    unknown = run(world.paths, "sync", "patient", "invoices")
    assert unknown.exit_code == 1
    assert "entities[1] is not an entity of this practice's PMS profile" in unknown.output
    keys = run(world.paths, "sync", "--key", "5")
    assert keys.exit_code == 1 and "keys needs exactly one entity" in keys.output


def test_pause_and_resume_through_the_engine(world: World, engine: EngineProcess) -> None:
    paused = run(world.paths, "pause", "--by", "front desk")
    assert paused.exit_code == 0, paused.output
    assert paused.output.startswith("the bridge is paused: no PMS reads")
    status = run(world.paths, "status")
    assert "paused   since" in status.output and "by front desk" in status.output
    assert "through its control channel" in status.output
    synced = run(world.paths, "sync")
    assert "the bridge is paused: it runs when resumed" in synced.output
    resumed = run(world.paths, "resume")
    assert resumed.exit_code == 0 and resumed.output.startswith("the bridge is running")
    assert "paused   since" not in run(world.paths, "status").output


def test_bundle_through_the_engine(world: World, engine: EngineProcess, tmp_path: Path) -> None:
    result = run(world.paths, "bundle", "--output", str(tmp_path))
    assert result.exit_code == 0, result.output
    assert "made by the running engine" in result.output
    (copied,) = tmp_path.glob("bridge-support-*.zip")
    assert (world.paths.data_dir / "support" / copied.name).is_file()
    with zipfile.ZipFile(copied) as bundle:
        assert '"made_by": "engine"' in bundle.read("manifest.json").decode()
