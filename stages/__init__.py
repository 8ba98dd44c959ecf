"""motionseg: motion backbones -> Zarr feature stores -> long-temporal segmentation heads."""

__version__ = "0.1.0"
