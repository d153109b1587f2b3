"""pytest fixtures for the reference cloud.

Load them in a test module with ``pytest_plugins = ["sandbox.cloud.fixtures"]``
(helpers such as :func:`~sandbox.cloud.testing.batch` come from
:mod:`sandbox.cloud.testing`):

* ``cloud_spec`` (session): a :class:`~sandbox.cloud.spec.SpecChecker`.
* ``reference_cloud``: a started :class:`~sandbox.cloud.server.ReferenceCloud`
  (plain HTTP, agent ``agent-1`` with token ``test-token``) in ``tmp_path``,
  stopped after the test.
* ``cloud_client``: an :class:`httpx.Client` for it with the token, whose
  every ``/v1`` exchange is checked against docs/cloud-api.yaml.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from sandbox.cloud.server import ReferenceCloud
from sandbox.cloud.spec import SpecChecker
from sandbox.cloud.testing import AGENT_ID, TOKEN, client_for


@pytest.fixture(scope="session")
def cloud_spec() -> SpecChecker:
    return SpecChecker()


@pytest.fixture
def reference_cloud(tmp_path: Path) -> Iterator[ReferenceCloud]:
    with ReferenceCloud(tmp_path / "cloud" / "cloud.sqlite3", tokens={AGENT_ID: TOKEN}) as cloud:
        yield cloud


@pytest.fixture
def cloud_client(
    reference_cloud: ReferenceCloud, cloud_spec: SpecChecker
) -> Iterator[httpx.Client]:
    with client_for(reference_cloud.url, checker=cloud_spec, timeout=30) as client:
        yield client
