"""The image cache: images written into a registry folder a stock registry serves (layer 4 of docs/architecture.md)."""

from __future__ import annotations

from kubenb.registry_folder.folder import Descriptor, References, RegistryFolder, parse_references, validate_repository
from kubenb.registry_folder.save import SavedImage, SaveResult, save_images, saved_problems

__all__ = [
    "Descriptor",
    "References",
    "RegistryFolder",
    "SaveResult",
    "SavedImage",
    "parse_references",
    "save_images",
    "saved_problems",
    "validate_repository",
]
