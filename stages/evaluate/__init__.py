"""Metrics (both combination conventions), reports and segmentation plots."""
