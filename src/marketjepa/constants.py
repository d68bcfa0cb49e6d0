"""Identifiers shared by every stage: split ids, label classes, minutes per year.

Split ids are stored in the prepared dataset's ``split`` column, class ids in its
``label`` column; change them here and nowhere else.
"""

from __future__ import annotations

TRAIN, VAL, TEST, EMBARGO = 0, 1, 2, -1
SPLIT_NAMES = {TRAIN: "train", VAL: "val", TEST: "test"}

HOLD, BUY_CALL, BUY_PUT, NO_LABEL = 0, 1, 2, -1
CLASS_NAMES = ("HOLD", "BUY_CALL", "BUY_PUT")
N_CLASSES = len(CLASS_NAMES)

# Option time to expiry runs on the calendar clock (weekends and nights decay too) ...
CALENDAR_MINUTES_PER_YEAR = 365.0 * 24.0 * 60.0
# ... while volatility of 1-minute bars annualizes over trading minutes.
TRADING_MINUTES_PER_YEAR = 252.0 * 390.0
