"""The CLI's sub-commands, one module each; :mod:`bridge.cli` assembles them.

Shared context (``click.Context.obj``, a dict): ``paths`` (BridgePaths),
``config_path`` (Path) and optionally ``secret_store`` (tests inject a
MemorySecretStore; otherwise the OS keyring is used).
"""
