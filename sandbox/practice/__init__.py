"""The sample practice: an Open Dental-shaped database with synthetic data.

``python -m sandbox practice`` (or :func:`build_practice`) builds a practice
with Open Dental's real table names, column names and types -- taken from
the vendored ``opendental-subset.sql`` -- into an SQLite file (the embedded
default) or a MariaDB database (MyISAM, ``utf8mb3_general_ci``, as Open
Dental has it). The data is deterministic: the same ``seed``, ``size``,
``today`` and ``clinics`` give the same rows, whatever the machine.

Contracts other code relies on:

* **A consistent diary.** Provider hours are ``schedule`` rows with
  ``SchedType=1`` linked to operatories through ``scheduleop``; blockouts are
  ``SchedType=2`` rows; holidays are ``SchedType=0``/``Status=2`` rows with no
  ``scheduleop`` rows and no appointments that day. Every Scheduled (1) or
  Complete (2) appointment lies wholly inside a schedule block of its
  scheduling provider (``ProvHyg`` for ``IsHygiene=1``, else ``ProvNum``)
  linked to its ``Op``, overlaps no blockout of that operatory and no other
  Scheduled/Complete appointment in that operatory (length =
  ``5 * len(Pattern)`` minutes), and a patient has at most one a day. The
  slot engine and the property tests build on this (details: ``diary``).
* **Time.** All datetimes are naive local times of :data:`TIMEZONE`, as Open
  Dental stores them. On each day the clocks change there is a weekend
  emergency clinic with appointments through the skipped/repeated hour.
  Every change stamp (``DateTStamp``, ``SecDateTEdit``) and entry stamp is
  an explicit, deterministic value before ``today`` 00:00, so anything
  edited after the build (MariaDB's ``ON UPDATE``, SQLite's triggers) stands
  out as newer.
* **Awkward data** real practices have: non-ASCII and apostrophe names,
  hyphenated surnames, NULL and '' contact fields, phones in mixed formats
  (fictional 555-01xx numbers), ``0001-01-01`` birthdates, twins, namesakes,
  and on MariaDB only, legacy ``0000-00-00`` dates (``payment.PayDate``,
  ``paysplit.ProcDate``, ``commlog.CommDateTime``).
* **No real people.** Names are drawn from pools, emails are at
  example.com/example.org, phones are in the fictional range.
"""

from sandbox.practice.build import BuildReport, build_practice
from sandbox.practice.dates import TIMEZONE
from sandbox.practice.target import PracticeError, TargetExistsError

__all__ = ["TIMEZONE", "BuildReport", "PracticeError", "TargetExistsError", "build_practice"]
