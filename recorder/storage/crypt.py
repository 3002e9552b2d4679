"""Encryption at rest (storage.encryption): each recording under its own data key, by Tink's
streaming AEAD (AES256_GCM_HKDF_1MB), the data key wrapped by a master key.

Nothing here is a construction of ours. A data key is a Tink keyset of one AES256_GCM_HKDF_1MB
key; the file is Tink's streaming ciphertext (a header with a random salt and nonce prefix, then
1 MiB segments each sealed by AES-256-GCM under a key HKDF derives from the salt, the last one
marked; truncation, reordering and any flipped bit fail). The wrapped data key is Tink's
encrypted keyset (`proto_keyset_format.serialize_encrypted`) under the master key used as an
AES-256-GCM AEAD. Both carry the recording's identity as associated data ("<call_id>/<name>"),
so a file or a wrapped key moved onto another recording does not decrypt.

The master key is 32 random bytes in base64 (`verbatim keys new` makes one), read from a file or
an environment variable: never in the configuration, the database or a log. Each wrapped key is
stored with the id of the master key that wrapped it (table recording_keys, migration 0010):
rotation (`verbatim keys rotate`) unwraps with the old master and wraps again with the new, and
the audio is never re-encrypted.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import os
import secrets
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, BinaryIO, Final, Protocol

import tink
from tink import aead, secret_key_access, streaming_aead
from tink.proto import aes_gcm_pb2, tink_pb2

from recorder.config.model import EncryptionConfig, MasterKeySource

aead.register()
streaming_aead.register()

MASTER_KEY_BYTES: Final = 32
_AES_GCM_URL: Final = "type.googleapis.com/google.crypto.tink.AesGcmKey"
_CHUNK: Final = 1 << 16


class Writable(Protocol):
    def write(self, data: bytes, /) -> Any: ...


class CryptError(Exception):
    """A master key that cannot be read or is not the one a data key was wrapped with, or a
    ciphertext that does not decrypt; the message says which and for what, never a key."""


def subject(call_id: str, name: str) -> bytes:
    """The associated data binding a ciphertext and its wrapped key to one recording."""
    return f"{call_id}/{name}".encode()


def new_master_key() -> str:
    """A new master key, as its file or environment variable holds it."""
    return base64.b64encode(secrets.token_bytes(MASTER_KEY_BYTES)).decode()


@dataclass(frozen=True, repr=False)
class MasterKey:
    key_id: str
    aead: aead.Aead

    def __repr__(self) -> str:
        return f"MasterKey({self.key_id!r})"


def _master_aead(raw: bytes) -> aead.Aead:
    """Tink's AES-256-GCM AEAD over the given key bytes (a one-key keyset, RAW output)."""
    key = aes_gcm_pb2.AesGcmKey(version=0, key_value=raw)
    keyset = tink_pb2.Keyset(primary_key_id=1, key=[tink_pb2.Keyset.Key(
        key_data=tink_pb2.KeyData(type_url=_AES_GCM_URL, value=key.SerializeToString(),
                                  key_material_type=tink_pb2.KeyData.SYMMETRIC),
        status=tink_pb2.ENABLED, key_id=1, output_prefix_type=tink_pb2.RAW)])  # fmt: skip
    handle = tink.proto_keyset_format.parse(keyset.SerializeToString(), secret_key_access.TOKEN)
    return handle.primitive(aead.Aead)


def load_master(source: MasterKeySource, env: Mapping[str, str] | None = None) -> MasterKey:
    """Read a master key; CryptError naming where it was looked for and what is wrong."""
    where = f"master key {source.key_id!r} ({source.describe()})"
    if source.file is not None:
        try:
            text = source.file.read_text(encoding="ascii")
        except (OSError, UnicodeDecodeError) as exc:
            reason = exc.strerror if isinstance(exc, OSError) else "not base64 text"
            raise CryptError(f"{where}: cannot read: {reason or exc}") from None
    else:
        text = (os.environ if env is None else env).get(source.env or "", "")
        if not text:
            raise CryptError(f"{where}: the variable is not set")
    try:
        raw = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise CryptError(f"{where}: not base64 (make one with `verbatim keys new`)") from None
    if len(raw) != MASTER_KEY_BYTES:
        raise CryptError(f"{where}: {len(raw)} bytes, a master key is {MASTER_KEY_BYTES} "
                         "(make one with `verbatim keys new`)")  # fmt: skip
    return MasterKey(source.key_id, _master_aead(raw))


@dataclass(frozen=True)
class WrappedKey:
    """A recording's data key as stored: Tink's encrypted keyset, and its master key's id."""

    key_id: str
    wrapped: bytes


@dataclass(frozen=True, repr=False)
class DataKey:
    """One recording's key: encrypts and decrypts its file."""

    primitive: streaming_aead.StreamingAead
    subject: bytes

    def encrypt(self, src: BinaryIO, dst: Writable) -> tuple[str, int]:
        """Encrypt all of `src` into `dst` (left open); the plaintext's SHA-256 and size."""
        h, size = hashlib.sha256(), 0
        with self.encrypting(dst) as out:
            while chunk := src.read(_CHUNK):
                h.update(chunk)
                size += len(chunk)
                out.write(chunk)
        return h.hexdigest(), size

    def encrypting(self, dst: Writable) -> _Sealed:
        """A stream whose writes are encrypted into `dst` (left open), complete when closed:
        for plaintext that arrives in pieces (ARI's stream), never kept whole."""
        sink = _Unclosed(dst)
        return _Sealed(self.primitive.new_encrypting_stream(sink, self.subject), sink)

    def decrypting(self, src: BinaryIO) -> _Checked:
        """The plaintext of the ciphertext `src`, read as it is decrypted: a segment that
        does not authenticate raises CryptError when it is reached."""
        return _Checked(self.primitive.new_decrypting_stream(src, self.subject))

    def plain_digest(self, src: BinaryIO) -> tuple[str, int]:
        """The SHA-256 and size of the plaintext of `src`. Blocking."""
        h, size = hashlib.sha256(), 0
        for chunk in self.plain_range(src, 0, None):
            h.update(chunk)
            size += len(chunk)
        return h.hexdigest(), size

    def plain_range(self, src: BinaryIO, start: int, stop: int | None) -> Iterator[bytes]:
        """Plaintext bytes [start, stop) of `src`: decrypted from the beginning, the bytes
        before `start` dropped (recordings are a few MB). Blocking."""
        plain = self.decrypting(src)
        pos = 0
        while stop is None or pos < stop:
            want = _CHUNK if stop is None else min(_CHUNK, stop - pos)
            chunk = plain.read(want)
            if not chunk:
                break
            end = pos + len(chunk)
            if end > start:
                yield chunk[max(start - pos, 0):]
            pos = end


class _Unclosed:
    """`dst` for Tink's encrypting stream, which closes its destination when it is closed."""

    def __init__(self, dst: Writable) -> None:
        self._dst = dst
        self.failed: OSError | None = None  # what `dst` raised, which Tink wraps

    def write(self, data: bytes) -> int:
        try:
            self._dst.write(data)
        except OSError as exc:
            self.failed = exc
            raise
        return len(data)

    def flush(self) -> None:
        pass

    def close(self) -> None:
        pass

    @property
    def closed(self) -> bool:
        return False

    def writable(self) -> bool:
        return True


class _Sealed:
    """Tink's encrypting stream, but a write its destination refused (a full disk) is raised
    as that OSError, not as the TinkError Tink makes of it: filing tells a full archive from
    a fault by it."""

    def __init__(self, stream: Any, sink: _Unclosed) -> None:
        self._stream = stream
        self._sink = sink

    def write(self, data: bytes) -> int:
        try:
            return int(self._stream.write(data))
        except tink.TinkError:
            self._refused()
            raise

    def close(self) -> None:
        try:
            self._stream.close()
        except tink.TinkError:
            self._refused()
            raise

    def __enter__(self) -> _Sealed:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _refused(self) -> None:
        if self._sink.failed is not None:
            raise self._sink.failed from None


class _Checked:
    """A decrypting stream whose failures are CryptError (Tink raises TinkError)."""

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream

    def read(self, n: int = -1) -> bytes:
        try:
            return self._stream.read(n)
        except tink.TinkError:
            raise CryptError("the ciphertext does not decrypt: altered, truncated, or not "
                             "this recording's") from None  # fmt: skip


class Keyring:
    """The master keys this process has: `current` wraps new data keys, every one unwraps."""

    def __init__(self, current: MasterKey, previous: Sequence[MasterKey] = ()) -> None:
        self.current = current
        self._masters = {m.key_id: m for m in (*previous, current)}

    @property
    def key_ids(self) -> list[str]:
        return sorted(self._masters)

    def new_data_key(self, call_id: str, name: str) -> tuple[DataKey, WrappedKey]:
        handle = tink.new_keyset_handle(
            streaming_aead.streaming_aead_key_templates.AES256_GCM_HKDF_1MB)
        about = subject(call_id, name)
        wrapped = tink.proto_keyset_format.serialize_encrypted(handle, self.current.aead, about)
        return DataKey(handle.primitive(streaming_aead.StreamingAead), about), \
            WrappedKey(self.current.key_id, wrapped)  # fmt: skip

    def data_key(self, wrapped: WrappedKey, call_id: str, name: str) -> DataKey:
        about = subject(call_id, name)
        handle = self._unwrap(wrapped, about, f"{call_id}/{name}")
        return DataKey(handle.primitive(streaming_aead.StreamingAead), about)

    def rewrap(self, wrapped: WrappedKey, call_id: str, name: str) -> WrappedKey:
        """The same data key, wrapped by the current master key."""
        about = subject(call_id, name)
        handle = self._unwrap(wrapped, about, f"{call_id}/{name}")
        return WrappedKey(self.current.key_id, tink.proto_keyset_format.serialize_encrypted(
            handle, self.current.aead, about))  # fmt: skip

    def _unwrap(self, wrapped: WrappedKey, about: bytes, what: str) -> tink.KeysetHandle:
        master = self._masters.get(wrapped.key_id)
        if master is None:
            raise CryptError(f"the data key of {what} is wrapped by master key "
                             f"{wrapped.key_id!r}, which is not configured (have: "
                             f"{', '.join(self.key_ids)})")  # fmt: skip
        try:
            return tink.proto_keyset_format.parse_encrypted(wrapped.wrapped, master.aead, about)
        except tink.TinkError:
            raise CryptError(f"master key {wrapped.key_id!r} does not unwrap the data key of "
                             f"{what}: the configured key is not the one that wrapped it, or "
                             "the stored key was altered") from None  # fmt: skip


def keyring_for(config: EncryptionConfig | None,
                env: Mapping[str, str] | None = None) -> Keyring | None:  # fmt: skip
    """The configured master keys, read now (CryptError if one cannot be); None: no encryption."""
    if config is None:
        return None
    return Keyring(load_master(config.current, env),
                   [load_master(p, env) for p in config.previous])  # fmt: skip
