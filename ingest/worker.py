"""Kept for the ingest's imports: the helper lives in :mod:`hazwatch.worker`, where
every stage that keeps an SQLite connection (spool, SQLite sink, uplink queue) can
reach it."""

from __future__ import annotations

from hazwatch.worker import run_serialized

__all__ = ["run_serialized"]
