"""Code every stage may use: manifests, labels, store layout, seeding, user-facing errors."""
