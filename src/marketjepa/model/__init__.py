"""Models: patch embedding, transformer encoder, predictor, SIGReg, LeJEPA, and the
collapse measures and verdict (collapse) that training and evaluation share."""
