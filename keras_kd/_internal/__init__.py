"""Internals: private Keras names, backends, checks, files, messages."""
