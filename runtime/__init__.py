"""Torch-free reference runtime for exported artifacts."""
