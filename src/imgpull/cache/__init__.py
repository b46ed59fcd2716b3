"""The blob cache: verified blobs by digest (``store.py``) and the downloads on their way
into it (``partial.py``)."""

from imgpull.cache.partial import PartialBlob
from imgpull.cache.store import SMALL_BLOB, BlobStore, CacheEntry, StoredBlob

__all__ = ["SMALL_BLOB", "BlobStore", "CacheEntry", "PartialBlob", "StoredBlob"]
