"""Models: patch embedding, transformer encoder, predictor, SIGReg, LeJEPA."""
