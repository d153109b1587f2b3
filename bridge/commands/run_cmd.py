"""``bridge run``: the engine in the foreground (what the service executes).

SIGINT and SIGTERM (and SIGBREAK on Windows) stop it gracefully: loops end,
the run is marked stopped, the writer lock is released.
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

import click

from bridge.commands.context import cli_config_path, cli_paths, cli_secret_store
from bridge.config import load_settings
from bridge.engine import Engine
from bridge.errors import BridgeError
from bridge.logs import setup_logging
from bridge.pms.profile import load_profile
from bridge.state import open_state


@click.command()
@click.option(
    "--seconds", type=float, default=None, help="Stop after this many seconds (demos, tests)."
)
@click.pass_context
def run(ctx: click.Context, seconds: float | None) -> None:
    """Run the engine until stopped (Ctrl+C or a service stop)."""
    paths = cli_paths(ctx).ensure()
    try:
        settings = load_settings(cli_config_path(ctx))
        profile = load_profile(settings.pms.profile)
        setup_logging(
            paths.log_dir,
            level=settings.logging.level,
            max_bytes=settings.logging.max_bytes,
            backup_count=settings.logging.backup_count,
            console=True,
        )
        store = open_state(paths.state_db)
    except BridgeError as exc:
        raise click.ClickException(f"{exc.message}\nfix: {exc.fix}") from exc

    stop = threading.Event()

    def _stop(signum: int, _frame: FrameType | None) -> None:
        stop.set()

    for name in ("SIGINT", "SIGTERM", "SIGBREAK"):
        if hasattr(signal, name):
            signal.signal(getattr(signal, name), _stop)
    if seconds is not None:
        timer = threading.Timer(seconds, stop.set)
        timer.daemon = True
        timer.start()
    engine = Engine(settings, store, cli_secret_store(ctx), profile)
    try:
        engine.run(stop)
    except BridgeError as exc:
        raise click.ClickException(f"{exc.message}\nfix: {exc.fix}") from exc
    finally:
        store.close()
