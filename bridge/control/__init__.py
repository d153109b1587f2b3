"""The local control channel: how the CLI and the panel drive a running engine.

The engine (``bridge run``, later the Windows service) serves the channel;
``bridge status``/``sync``/``pause``/``resume``/``bundle``/``exceptions`` and
the Qt panel are its clients. Nothing here is reachable from the network: a
Unix socket in an owner-only folder on POSIX, a named pipe on Windows, and
every connection proves it holds the engine's key.

Modules, client side first:

* :mod:`.client` -- :class:`~bridge.control.client.ControlClient`, the only
  thing the panel and the CLI use (its docstring is the contract);
* :mod:`.errors` -- the client's exception tree;
* :mod:`.results`, :mod:`.events` -- the typed values that cross the channel;
* :mod:`.endpoint` -- where the socket (or pipe) and the key live;
* :mod:`.protocol` -- framing, size limits, the key handshake;
* engine side: :mod:`.host` (what the engine owns), :mod:`.server`
  (connections), :mod:`.service` (the operations), :mod:`.pause`,
  :mod:`.syncs` (merged "sync now" requests), :mod:`.watcher` (events from
  state), :mod:`.logview` (the live log view).

This package's ``__init__`` imports nothing, so :mod:`bridge.status` can use
:mod:`.pause` without pulling in the server or the client.
"""
