"""Head model files: each module registers its heads with `@register_head` on import, and the
head registry imports every module here (no hand-kept list)."""
