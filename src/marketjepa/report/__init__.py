"""Seed-format report (markdown + self-contained HTML) with computed verdicts."""
