"""Data paths: the one batch format, the teacher cache, the replay cache, augmentation."""
