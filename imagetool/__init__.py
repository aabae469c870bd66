"""imagetool: write and read GPT + FAT bootable images, flash USB sticks, boot images in QEMU."""
from .errors import ImageError

__all__ = ["ImageError"]
