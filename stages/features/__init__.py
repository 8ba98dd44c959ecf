"""Stage 1: motion backbones, snippet fine-tuning and per-frame feature extraction."""
