"""The one interface every backend implements, so a third backend is one new file."""

import abc
import hashlib
import json


class Backend(abc.ABC):
    """Turns photos into binary foreground masks at the photos' own resolution."""

    #: Key of this backend in the metrics table (`source_backend`).
    name: str

    @abc.abstractmethod
    def provenance(self):
        """JSON-ready dict of everything that changes this backend's output (versions, digests, settings)."""

    @abc.abstractmethod
    def predict(self, images):
        """Masks for a batch of (H, W, 3) uint8 RGB arrays: a list of (H, W) bool arrays, same order."""

    def fingerprint(self):
        """Digest of the provenance: equal fingerprints promise equal masks for equal pixels."""
        return hashlib.sha256(json.dumps(self.provenance(), sort_keys=True).encode()).hexdigest()
