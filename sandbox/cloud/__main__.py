"""``python -m sandbox.cloud``: the same command as ``python -m sandbox cloud``."""

from sandbox.cloud.cli import cloud

if __name__ == "__main__":
    cloud(prog_name="python -m sandbox.cloud")
