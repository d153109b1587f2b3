"""Packaged PMS profiles (one TOML file per PMS)."""
