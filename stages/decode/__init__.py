"""Stage 0: decode videos with PyAV into compressed frame stores, sampled by timestamp."""
