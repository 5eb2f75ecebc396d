"""Pure domain: models, validation, schedule math, states; no I/O and no clock reads."""
