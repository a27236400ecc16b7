"""PocketGAN: distill, quantize, export and verify GAN image generators for phones.

Example: pocketgan inspect vintage --size 256
"""

__version__ = "0.1.0"
