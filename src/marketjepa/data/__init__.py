"""Data layer: synthetic market, ingest, calendar, features, labels, splits, windows."""
