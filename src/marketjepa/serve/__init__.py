"""Use a finished run on new bars: ``marketjepa signal`` and the bar-by-bar ``replay``."""
