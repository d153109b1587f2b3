"""The uplink: the Cloud API v1 client (outbound HTTPS only).

* :mod:`bridge.cloud.protocol` - the wire models (frozen dataclasses).
* :mod:`bridge.cloud.client` - :class:`CloudClient`, one call per operation,
  errors translated into :class:`~bridge.errors.CloudError` subclasses.
* :mod:`bridge.cloud.retry` - :func:`send_with_retry` (Retry-After, jitter).
* :mod:`bridge.cloud.split` - :func:`post_changes_splitting` (413 -> halves).
* :mod:`bridge.cloud.tls` - the verifying SSL context and the key pin.
"""

from bridge.cloud.client import CloudClient
from bridge.cloud.retry import send_with_retry
from bridge.cloud.split import post_changes_splitting

__all__ = ["CloudClient", "post_changes_splitting", "send_with_retry"]
