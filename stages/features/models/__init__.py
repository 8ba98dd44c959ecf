"""Backbone model files: each module registers its entries with `@register_backbone` on import,
and the backbone registry imports every module here (no hand-kept list)."""
