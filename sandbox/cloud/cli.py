"""``sandbox cloud``: run the reference cloud until Ctrl+C (or SIGTERM).

Prints the URL, the CA file (with TLS), the admin URL and the agent tokens.
``--ready-file`` writes ``{url, ca_path, spki_sha256, pid}`` as JSON once the
socket listens, which is how a parent process (demo, benchmarks, tests;
see :class:`sandbox.cloud.testing.CloudProcess`) knows where to connect.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import signal
import threading
from pathlib import Path
from types import FrameType

import click

from sandbox.cloud.models import Limits
from sandbox.cloud.server import ReferenceCloud


def _tokens(pairs: tuple[str, ...]) -> dict[str, str]:
    tokens: dict[str, str] = {}
    for pair in pairs:
        agent_id, sep, token = pair.partition("=")
        if not sep or not agent_id or not token:
            raise click.BadParameter(f"{pair!r}: expected AGENT_ID=TOKEN", param_hint="--token")
        tokens[agent_id] = token
    return tokens or {"agent-1": secrets.token_urlsafe(24)}


@click.command("cloud")
@click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False, path_type=Path),
    default=Path("var/cloud/cloud.sqlite3"),
    show_default=True,
    help="SQLite file of the cloud's state (created if missing; kept across runs).",
)
@click.option(
    "--files",
    "files_dir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Folder for uploaded files  [default: files/ beside --db]",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="A loopback address.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=8443,
    show_default=True,
    help="0: any free port.",
)
@click.option("--tls/--no-tls", default=True, show_default=True, help="HTTPS with a test CA.")
@click.option(
    "--token",
    "token_pairs",
    multiple=True,
    metavar="AGENT_ID=TOKEN",
    help="An agent and its bearer token (repeatable)  [default: agent-1 with a random token]",
)
@click.option(
    "--max-changes", type=click.IntRange(1), default=None, help="Changes per batch (413 above)."
)
@click.option("--max-body-bytes", type=click.IntRange(1), default=None, help="JSON body size cap.")
@click.option("--seed", type=int, default=None, help="Seed for probabilistic faults.")
@click.option(
    "--ready-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write connection details here as JSON once serving.",
)
@click.option("-v", "--verbose", is_flag=True, help="Log every request.")
def cloud(
    db_path: Path,
    files_dir: Path | None,
    host: str,
    port: int,
    tls: bool,
    token_pairs: tuple[str, ...],
    max_changes: int | None,
    max_body_bytes: int | None,
    seed: int | None,
    ready_file: Path | None,
    verbose: bool,
) -> None:
    """Serve the reference cloud (Cloud API v1 and /admin) on loopback."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s")
    tokens = _tokens(token_pairs)
    defaults = Limits()
    limits = Limits(
        max_body_bytes=max_body_bytes or defaults.max_body_bytes,
        max_changes=max_changes or defaults.max_changes,
    )
    try:
        server = ReferenceCloud(
            db_path,
            files_dir,
            host=host,
            port=port,
            tokens=tokens,
            tls=tls,
            limits=limits,
            seed=seed,
        )
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--host") from None
    try:
        server.start()
    except OSError as exc:
        server.stop()
        raise click.ClickException(
            f"cannot listen on {host}:{port} ({exc}); try --port 0"
        ) from None
    stop = threading.Event()

    def _on_signal(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    try:
        click.echo(f"reference cloud: {server.url}")
        click.echo(f"admin API:       {server.url}/admin/")
        if server.ca_path is not None:
            click.echo(f"CA file:         {server.ca_path}")
            click.echo(f"server pin:      sha256/{server.spki_sha256}")
        for agent_id, token in tokens.items():
            click.echo(f"agent token:     {agent_id}={token}")
        click.echo("Ctrl+C stops it.")
        if ready_file is not None:
            _write_ready(ready_file, server)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        click.echo("reference cloud stopped")


def _write_ready(path: Path, server: ReferenceCloud) -> None:
    details = {
        "url": server.url,
        "ca_path": str(server.ca_path) if server.ca_path else None,
        "spki_sha256": server.spki_sha256,
        "pid": os.getpid(),
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(details), encoding="utf-8")
    os.replace(tmp, path)
