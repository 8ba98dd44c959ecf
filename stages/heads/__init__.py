"""Stage 2: long-temporal segmentation heads trained on feature stores."""
