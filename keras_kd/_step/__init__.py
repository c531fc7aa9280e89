"""The Distiller's step and its parts (internal: no public API here)."""
