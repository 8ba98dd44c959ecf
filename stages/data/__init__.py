"""Datasets: the synthetic demo generator and importers for real datasets."""
