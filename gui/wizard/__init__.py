"""The setup wizard: from nothing to a running bridge.

Pages, in order: the practice, the PMS database (with a connection test), the
cloud (with a connection test), export folders, save and check (secrets to
the OS keyring, the configuration file, ``bridge doctor``), start syncing.
The logic lives in :mod:`.setup` (no Qt); the pages only ask and show.
"""
