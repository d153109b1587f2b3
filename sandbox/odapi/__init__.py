"""A stand-in of Open Dental's API Service, for the bridge's diary writer.

Open Dental allows third parties to write its database only through its
API; on the practice network that is the API Service
(``http://<server>:30223/api/v1/``). This package serves the calls the
bridge's :class:`~bridge.pms.writers.opendental_api.OpenDentalApiWriter`
makes, with the documented field names, value formats, defaults and status
codes, writing the sample practice (:mod:`sandbox.practice`) in SQLite or
MariaDB: ``python -m sandbox odapi --db var/demo/opendental.sqlite3``.

* :mod:`.server` -- :class:`OdApiServer`: routes, keys, faults.
* :mod:`.patients`, :mod:`.appointments`, :mod:`.reference` -- the calls.
* :mod:`.fields` -- Open Dental's JSON conventions; :mod:`.database` -- the
  practice behind it; :mod:`.faults` -- injected failures.
* :mod:`.testing` -- :class:`OdApiProcess`, the stand-in in a subprocess.

Where the documentation is silent the stand-in makes a choice and says so
in the module that makes it. It never computes Open Dental's
``SecurityHash`` (a closed-source salted hash): rows it writes keep it
empty, like every row of the sample practice.
"""

from sandbox.odapi.faults import Fault, FaultPlan
from sandbox.odapi.server import OdApiServer

__all__ = ["Fault", "FaultPlan", "OdApiServer"]
