"""``sandbox odapi``: serve the Open Dental API Service stand-in until Ctrl+C (or SIGTERM).

Prints the base URL and the accepted key pairs (the demo and tests store
them in the bridge's keyring). ``--ready-file`` writes ``{url, api_url,
pid}`` as JSON once the socket listens, which is how a parent process
(:class:`sandbox.odapi.testing.OdApiProcess`) knows where to connect.
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

from sandbox.odapi.server import OdApiServer
from sandbox.practice.target import PracticeError

DEFAULT_PORT = 30223  # the API Service's documented port


def _keys(pairs: tuple[str, ...]) -> list[tuple[str, str]]:
    keys: list[tuple[str, str]] = []
    for pair in pairs:
        developer, sep, customer = pair.partition("/")
        if not sep or not developer or not customer or "/" in customer or " " in pair:
            raise click.BadParameter(
                f"{pair!r}: expected DEVELOPER_KEY/CUSTOMER_KEY", param_hint="--key"
            )
        keys.append((developer, customer))
    return keys or [(secrets.token_urlsafe(12), secrets.token_urlsafe(12))]


@click.command("odapi")
@click.option(
    "--db",
    "db",
    default="var/demo/opendental.sqlite3",
    show_default=True,
    help="The practice database: an SQLite file or mariadb://user[:password]@host[:port]/db.",
)
@click.option("--host", default="127.0.0.1", show_default=True, help="A loopback address.")
@click.option(
    "--port",
    type=click.IntRange(0, 65535),
    default=DEFAULT_PORT,
    show_default=True,
    help="0: any free port.",
)
@click.option(
    "--key",
    "key_pairs",
    multiple=True,
    metavar="DEVELOPER_KEY/CUSTOMER_KEY",
    help="A key pair the stand-in accepts (repeatable)  [default: one random pair]",
)
@click.option(
    "--ready-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write connection details here as JSON once serving.",
)
@click.option("-v", "--verbose", is_flag=True, help="Log every request (never bodies).")
def odapi(
    db: str,
    host: str,
    port: int,
    key_pairs: tuple[str, ...],
    ready_file: Path | None,
    verbose: bool,
) -> None:
    """Serve a stand-in of Open Dental's API Service over the sample practice."""
    logging.basicConfig(level=logging.DEBUG if verbose else logging.INFO, format="%(message)s")
    keys = _keys(key_pairs)
    try:
        server = OdApiServer(db, keys=keys, host=host, port=port)
    except (ValueError, PracticeError) as exc:
        raise click.BadParameter(str(exc)) from None
    except (OSError, RuntimeError) as exc:
        raise click.ClickException(f"cannot open the practice database: {exc}") from None
    except Exception as exc:  # pyodbc.Error: a driver or login problem
        raise click.ClickException(
            f"cannot open the practice database ({type(exc).__name__}): {exc}"
        ) from None
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
        click.echo(f"Open Dental API stand-in: {server.api_url}")
        for developer, customer in keys:
            click.echo(f"accepted keys:             {developer}/{customer}")
        click.echo("Ctrl+C stops it.")
        if ready_file is not None:
            _write_ready(ready_file, server)
        while not stop.wait(0.5):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        server.stop()
        click.echo("Open Dental API stand-in stopped")


def _write_ready(path: Path, server: OdApiServer) -> None:
    details = {"url": server.url, "api_url": server.api_url, "pid": os.getpid()}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(details), encoding="utf-8")
    os.replace(tmp, path)
