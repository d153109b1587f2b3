"""Reading the PMS: canonical records, change detection, first sync, outbox."""
