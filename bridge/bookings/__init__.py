"""Bookings: the write path from a cloud booking item to the practice's diary.

The pipeline (:mod:`bridge.bookings.pipeline`) runs validate -> match or
create the patient -> re-check the slot live -> write a tentative hold ->
read back and verify -> confirm, or undo and report a conflict with
alternatives. Its parts: request validation (:mod:`.requests`), policy
(:mod:`.policy`), patient matching (:mod:`.matching`, :mod:`.normalize`),
the slot engine (:mod:`.slots` over the live :mod:`.diary`), and the
front-desk exceptions queue (:mod:`.exceptions`). Writes go through a
:class:`bridge.pms.writers.DiaryWriter`; every write and decision is
appended to the audit trail (:mod:`bridge.audit`).
"""
