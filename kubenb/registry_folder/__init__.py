"""The registry folder: images written in the layout a stock registry serves (layer 4 of docs/architecture.md)."""

from __future__ import annotations

from kubenb.oci.manifests import Descriptor, References, parse_references
from kubenb.registry_folder.folder import RegistryFolder, validate_repository
from kubenb.registry_folder.save import BlobSink, SavedImage, SaveResult, save_images, saved_problems

__all__ = [
    "BlobSink",
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
