"""The reference cloud: a real HTTP(S) server on loopback implementing the
Cloud API v1 (docs/cloud-api.yaml), persisting to SQLite, with switchable
faults. For the bridge's tests, benchmarks and demo; never shipped.

Modules, from the wire inwards:

* ``server`` - :class:`ReferenceCloud`: start/stop, URL, TLS material, and
  (inherited from ``app.CloudApp``) the in-process admin API.
* ``handler`` - the threaded HTTP/1.1 server and request handler, faults on
  the wire; ``wire`` - body framing (Content-Length, chunked), gzip, errors.
* ``api`` - the /v1 routes; ``admin_api`` - the /admin routes.
* ``validation`` - request checks naming the field, the version order.
* ``store`` (changes, mirror, log, heartbeats), ``inbox`` (long-poll,
  cursors, results), ``files`` (streamed uploads), ``checksums`` (range
  checksums for reconciliation), ``db`` (SQLite, WAL).
* ``faults`` - fault rules; ``tls`` - the test CA and certificate.
* ``admin_client`` - :class:`AdminClient`, the admin API from another process.
* ``spec`` - checks httpx traffic against the OpenAPI file.
* ``testing`` - test helpers, ``fixtures`` - pytest fixtures; ``cli`` - ``sandbox cloud``.
"""

from sandbox.cloud.admin_client import AdminClient
from sandbox.cloud.models import CloudAdmin, Fault, Limits
from sandbox.cloud.server import ReferenceCloud

__all__ = ["AdminClient", "CloudAdmin", "Fault", "Limits", "ReferenceCloud"]
