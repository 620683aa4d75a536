"""Every OCI and Docker media type kubenb reads or writes, and the groups it sorts them into.

Written once here (tests/test_oci.py checks that no other module of kubenb spells one), so the
registry client, the registry folder and the store agree on what an index, an image manifest,
an image config and a layer are.
"""

from __future__ import annotations

__all__ = [
    "DOCKER_CONFIG",
    "DOCKER_MANIFEST",
    "DOCKER_MANIFEST_LIST",
    "IMAGE_CONFIG_TYPES",
    "IMAGE_MANIFEST_TYPES",
    "INDEX_TYPES",
    "MANIFEST_ACCEPT",
    "MANIFEST_TYPES",
    "OCI_CONFIG",
    "OCI_INDEX",
    "OCI_LAYER",
    "OCI_LAYER_GZIP",
    "OCI_MANIFEST",
    "SCHEMA1_TYPES",
]

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
#: An uncompressed layer: its blob is the tar itself, so its digest is its diff_id.
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
#: Signed pre-2017 manifests: their digest is not the hash of the bytes served, so none is kept.
SCHEMA1_TYPES = frozenset({
    "application/vnd.docker.distribution.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.v1+prettyjws",
})

#: One manifest per platform.
INDEX_TYPES = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
#: A config and layers.
IMAGE_MANIFEST_TYPES = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
#: Every manifest kubenb takes, indexes first (the order of the Accept header).
MANIFEST_TYPES = (OCI_INDEX, OCI_MANIFEST, DOCKER_MANIFEST_LIST, DOCKER_MANIFEST)
#: Without the OCI types in Accept, the distribution registry answers 404 for OCI manifests.
MANIFEST_ACCEPT = ", ".join(MANIFEST_TYPES)
#: Configs that describe a container image (and so declare a platform); charts and other
#: artifacts carry configs of their own types.
IMAGE_CONFIG_TYPES = frozenset({OCI_CONFIG, DOCKER_CONFIG})

