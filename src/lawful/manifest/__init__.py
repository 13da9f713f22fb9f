"""The manifest: the one source of truth every other part of lawful reads."""

from lawful.manifest.errors import ManifestError, Problem
from lawful.manifest.load import (
    Located,
    find_manifest,
    load_located,
    load_manifest,
    load_manifest_text,
)
from lawful.manifest.model import Manifest

__all__ = [
    "Located",
    "Manifest",
    "ManifestError",
    "Problem",
    "find_manifest",
    "load_located",
    "load_manifest",
    "load_manifest_text",
]
