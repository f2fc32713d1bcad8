"""CLI command groups. Each module exposes `register(app)`; keep module top-levels import-light."""
