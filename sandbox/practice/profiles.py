"""Build sizes: how many people, providers and chairs each size has.

``demo`` is a small single-location office that builds in seconds. ``large``
is a stress-test database (a big group practice in one Open Dental database)
with at least 100k patients, 1M appointments and 3M procedures; its provider
and chair counts are what it takes to fit that many appointments into two
years of a consistent, non-overlapping diary.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class SizeProfile:
    name: str
    patients: int
    dentists: int
    hygienists: int
    two_column_share: float  # share of dentists who work two operatories
    part_time_share: float  # share of providers working 2-3 days a week
    insurance_plans: int
    vacation_days: int  # days off per provider per year, besides holidays
    chunk_rows: int  # rows per loader chunk


SIZES: dict[str, SizeProfile] = {
    "demo": SizeProfile(
        name="demo",
        patients=900,
        dentists=2,
        hygienists=2,
        two_column_share=0.0,
        part_time_share=1.0,
        insurance_plans=14,
        vacation_days=10,
        chunk_rows=5_000,
    ),
    "large": SizeProfile(
        name="large",
        patients=125_000,
        dentists=112,
        hygienists=162,
        two_column_share=1.0,
        part_time_share=0.1,
        insurance_plans=600,
        vacation_days=10,
        chunk_rows=100_000,
    ),
}
