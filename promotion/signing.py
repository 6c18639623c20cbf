"""Ed25519 signatures over a report's manifest: a go that names who cleared it, checkable at deploy time.

The manifest lists the sha256 of every file the gate wrote, so one signature over its bytes covers the
decision, the report and the checkpoint digest they record. The signature travels beside it as
`manifest.sig`, a small JSON document: the algorithm, the signing key's id (sha256 of its raw public bytes, to
tell keys apart in a message) and the signature. Keys are PEM files as `openssl genpkey -algorithm ed25519`
writes them; a private key is read, never printed or copied, and its file must be a regular file.
"""

import base64
import hashlib
import json

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from eval.errors import GateInputError
from eval.inputs.safe_paths import read_bytes

SIGNATURE_FILE = "manifest.sig"
FORMAT = "pottery-gate-signature/v1"
ALGORITHM = "ed25519"


def _key_id(public_key):
    raw = public_key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()


def load_private_key(path):
    """The Ed25519 private key in the PEM file at `path` (unencrypted PKCS#8). Raises GateInputError."""
    try:
        key = serialization.load_pem_private_key(read_bytes(path), password=None)
    except (ValueError, TypeError, OSError) as err:
        raise GateInputError(path, f"is not an unencrypted PEM private key ({type(err).__name__})") from None
    if not isinstance(key, ed25519.Ed25519PrivateKey):
        raise GateInputError(path, "is not an Ed25519 key (make one with `openssl genpkey -algorithm ed25519`)")
    return key


def load_public_key(path):
    """The Ed25519 public key in the PEM file at `path`. Raises GateInputError."""
    try:
        key = serialization.load_pem_public_key(read_bytes(path))
    except (ValueError, TypeError, OSError) as err:
        raise GateInputError(path, f"is not a PEM public key ({type(err).__name__})") from None
    if not isinstance(key, ed25519.Ed25519PublicKey):
        raise GateInputError(path, "is not an Ed25519 public key")
    return key


def sign(manifest, private_key):
    """manifest.sig's bytes for the manifest's bytes."""
    document = {"format": FORMAT, "algorithm": ALGORITHM, "key_id": _key_id(private_key.public_key()),
                "signature": base64.b64encode(private_key.sign(manifest)).decode("ascii")}
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode()


def signature_problem(manifest, signature, public_key):
    """Why `signature` (manifest.sig's bytes) does not prove `manifest` was signed by `public_key`, or None."""
    try:
        document = json.loads(signature)
        raw = base64.b64decode(document["signature"], validate=True)
        if document["format"] != FORMAT or document["algorithm"] != ALGORITHM:
            return f"{SIGNATURE_FILE} is not a {FORMAT} {ALGORITHM} signature"
    except (ValueError, KeyError, TypeError):
        return f"{SIGNATURE_FILE} is not a signature document"
    try:
        public_key.verify(raw, manifest)
    except InvalidSignature:
        if document.get("key_id") != _key_id(public_key):
            return (f"{SIGNATURE_FILE} was made with another key (key id {str(document.get('key_id'))[:16]}…, "
                    f"expected {_key_id(public_key)[:16]}…)")
        return f"{SIGNATURE_FILE} does not match manifest.json: the manifest changed after it was signed"
    return None
