"""``python -m sandbox.odapi``: the same command as ``python -m sandbox odapi``."""

from sandbox.odapi.cli import odapi

if __name__ == "__main__":
    odapi(prog_name="python -m sandbox.odapi")
