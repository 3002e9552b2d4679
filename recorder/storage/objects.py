"""An S3-compatible bucket (AWS, SeaweedFS, MinIO, Ceph RGW) as a RecordingStore.

The client is aiobotocore: botocore's own request signing, retries and error model (what AWS
maintains for every S3 feature, checksums included) on aiohttp, which the daemon already runs
on, so no thread per request. (The minio SDK is synchronous: every call would need a thread.)

A key is "s3://<bucket>/<office>/<the archive's relative path>": the office (asterisk_id) first,
so several offices share one bucket without colliding, and a store built for one office owns and
lists only its own objects. A store with office "" owns the whole bucket (playback reads any
office's recordings).

An upload sends the SHA-256 the recording was filed with (x-amz-checksum-sha256): the store
refuses bytes that do not match it, and HEAD reports the one it stored, which `confirm` checks
before the local copy may go. A store that keeps no checksum is read back and hashed instead.

A recording above the multipart threshold goes up in parts (S3's multipart upload), each with
its own SHA-256 the store checks; the whole object's stored checksum is then a composite of the
parts', so `confirm` reads it back and hashes it. A part at a time is in memory. A crash leaves
an unfinished multipart upload in the store (invisible, but holding space): the uploader aborts
its office's unfinished ones when it starts (`abort_unfinished`).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import hashlib
import os
import tempfile
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Final

from aiobotocore.session import get_session
from botocore.config import Config as BotoConfig
from botocore.exceptions import BotoCoreError, ClientError

from recorder.config.model import S3Config
from recorder.storage.store import Digest

SCHEME: Final = "s3://"
_CHUNK = 1 << 20
_DELETE_BATCH = 1000  # DeleteObjects' limit
_MISSING = frozenset({"404", "NoSuchKey", "NotFound"})
_MB = 1 << 20


class StoreError(Exception):
    """The object store refused or failed a request (down, denied, a checksum mismatch)."""


def _missing(exc: ClientError) -> bool:
    return str(exc.response.get("Error", {}).get("Code")) in _MISSING


def checksum(sha256_hex: str) -> str:
    """The x-amz-checksum-sha256 form of a hex SHA-256 (base64 of the digest)."""
    return base64.b64encode(bytes.fromhex(sha256_hex)).decode()


class RangeNotSatisfiable(Exception):
    """An HTTP Range outside the object."""


@dataclass(frozen=True)
class ObjectPart:
    """An object, or the part of it an HTTP Range asked for, as GetObject returned it; its
    body is open until read to the end or closed."""

    status: int  # 200 (all of it) or 206
    length: int  # bytes in the body
    content_range: str | None
    body: Any

    async def chunks(self) -> AsyncIterator[bytes]:
        async with self.body as stream:
            while chunk := await stream.read(_CHUNK):
                yield chunk

    def close(self) -> None:
        self.body.close()


@dataclass(frozen=True)
class Multipart:
    """When an upload goes in parts, and how large they are (storage.s3's)."""

    threshold: int = 64 * _MB  # bytes: a file larger than this goes in parts
    part: int = 8 * _MB

    @classmethod
    def of(cls, config: S3Config) -> Multipart:
        return cls(config.multipart_threshold_mb * _MB, config.part_size_mb * _MB)


class S3Store:
    def __init__(
        self, client: Any, bucket: str, office: str = "", multipart: Multipart = Multipart()
    ) -> None:
        if "/" in office or ".." in office:
            raise ValueError(f"unsafe office for an object key: {office!r}")
        self.client = client
        self.bucket = bucket
        self.multipart = multipart
        self._bucket_prefix = f"{SCHEME}{bucket}/"
        self._office = f"{office}/" if office else ""
        self.prefix = self._bucket_prefix + self._office

    def owns(self, key: str) -> bool:
        return key.startswith(self.prefix) and ".." not in key

    def key_for(self, relative: str) -> str:
        """The key of a recording at `relative` in the local archive."""
        if relative.startswith("/") or ".." in relative:
            raise ValueError(f"not a relative archive path: {relative!r}")
        return self.prefix + relative

    def day_key(self, when: datetime) -> str:
        return self.prefix + f"{when.astimezone(UTC):%Y/%m/%d}"

    def _name(self, key: str) -> str:
        if not self.owns(key):
            raise ValueError(f"{key} is not in the bucket {self.prefix}")
        return key[len(self._bucket_prefix):]

    async def put(self, key: str, path: Path, sha256: str) -> None:
        """Upload a local file as `key`; the store checks its bytes against `sha256` (in one
        PUT) or each part's against the part's (multipart)."""
        size = (await asyncio.to_thread(path.stat)).st_size
        try:
            if size > self.multipart.threshold:
                await self._put_parts(self._name(key), path)
                return
            body = await asyncio.to_thread(path.read_bytes)  # recordings are a few MB: one PUT
            await self.client.put_object(Bucket=self.bucket, Key=self._name(key), Body=body,
                                         ChecksumSHA256=checksum(sha256))  # fmt: skip
        except ClientError as exc:
            raise StoreError(f"upload of {key} refused: {exc}") from exc

    async def _put_parts(self, name: str, path: Path) -> None:
        where = {"Bucket": self.bucket, "Key": name}
        created = await self.client.create_multipart_upload(**where, ChecksumAlgorithm="SHA256")
        where["UploadId"] = created["UploadId"]
        parts: list[dict[str, Any]] = []
        try:
            with path.open("rb") as f:
                while body := await asyncio.to_thread(f.read, self.multipart.part):
                    part = {"PartNumber": len(parts) + 1,
                            "ChecksumSHA256": checksum(hashlib.sha256(body).hexdigest())}
                    answer = await self.client.upload_part(**where, **part, Body=body)
                    parts.append({**part, "ETag": answer["ETag"]})
            await self.client.complete_multipart_upload(**where,
                                                        MultipartUpload={"Parts": parts})
        except Exception:
            # Best effort: with the store away this fails too, and the next start aborts it.
            with contextlib.suppress(Exception):
                await self.client.abort_multipart_upload(**where)
            raise

    async def abort_unfinished(self) -> list[str]:
        """Abort the multipart uploads left unfinished under this store's prefix (a crash
        mid-upload leaves one); the keys they were for."""
        aborted = []
        pages = self.client.get_paginator("list_multipart_uploads").paginate(
            Bucket=self.bucket, Prefix=self._office)  # fmt: skip
        try:
            async for page in pages:
                for upload in page.get("Uploads", ()):
                    await self.client.abort_multipart_upload(
                        Bucket=self.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
                    aborted.append(self._bucket_prefix + upload["Key"])
        except ClientError as exc:
            raise StoreError(f"cannot list or abort unfinished uploads: {exc}") from exc
        return aborted

    async def confirm(self, key: str, sha256: str, size: int) -> bool:
        """Whether the store holds exactly these bytes under `key`."""
        try:
            head = await self.client.head_object(Bucket=self.bucket, Key=self._name(key),
                                                 ChecksumMode="ENABLED")  # fmt: skip
        except ClientError as exc:
            if _missing(exc):
                return False
            raise StoreError(f"cannot check {key}: {exc}") from exc
        if head.get("ContentLength") != size:
            return False
        stored = head.get("ChecksumSHA256")
        if stored and "-" not in stored:  # "-N": a multipart composite, not the object's hash
            return bool(stored == checksum(sha256))
        digest = await self.digest(key)
        return digest is not None and digest.sha256 == sha256

    async def delete_many(self, keys: Sequence[str]) -> list[bool]:
        # DeleteObjects reports a missing key as deleted too: HEAD says whether it was there.
        found = []
        for key in keys:
            try:
                await self.client.head_object(Bucket=self.bucket, Key=self._name(key))
                found.append(True)
            except ClientError as exc:
                if not _missing(exc):
                    raise StoreError(f"cannot check {key}: {exc}") from exc
                found.append(False)
        names = [self._name(k) for k, there in zip(keys, found, strict=True) if there]
        for i in range(0, len(names), _DELETE_BATCH):
            batch = [{"Key": n} for n in names[i:i + _DELETE_BATCH]]
            answer = await self.client.delete_objects(
                Bucket=self.bucket, Delete={"Objects": batch, "Quiet": True})  # fmt: skip
            if answer.get("Errors"):
                raise StoreError(f"delete refused: {answer['Errors'][:3]}")
        return found

    async def tidy(self, keys: Sequence[str]) -> None:
        return None  # a bucket has no folders to remove

    async def get(self, key: str, range_header: str | None = None) -> ObjectPart:
        """The object, or the part an HTTP Range header asks for (the store interprets it);
        FileNotFoundError when there is no such key."""
        extra = {"Range": range_header} if range_header else {}
        try:
            answer = await self.client.get_object(Bucket=self.bucket, Key=self._name(key),
                                                  **extra)  # fmt: skip
        except ClientError as exc:
            if _missing(exc):
                raise FileNotFoundError(key) from exc
            if exc.response.get("Error", {}).get("Code") == "InvalidRange":
                raise RangeNotSatisfiable(range_header) from exc
            raise StoreError(f"cannot read {key}: {exc}") from exc
        except BotoCoreError as exc:  # no answer: the store is down or unreachable
            raise StoreError(f"cannot read {key}: {exc}") from exc
        content_range = answer.get("ContentRange")
        return ObjectPart(206 if content_range else 200, int(answer["ContentLength"]),
                          content_range, answer["Body"])  # fmt: skip

    async def read(self, key: str) -> AsyncIterator[bytes]:
        part = await self.get(key)
        async for chunk in part.chunks():
            yield chunk

    async def copy_to(self, key: str, target: Path, sha256: str) -> bool:
        """Download `key` to `target` (mode 0640, through a temporary file beside it) if its
        bytes hash to `sha256`; False (and no file) when they do not or it is missing."""
        fd, tmp = await asyncio.to_thread(tempfile.mkstemp, dir=target.parent, prefix=".tmp-")
        h = hashlib.sha256()
        try:
            with os.fdopen(fd, "wb") as out:
                async for chunk in self.read(key):
                    h.update(chunk)
                    await asyncio.to_thread(out.write, chunk)
            if h.hexdigest() != sha256:
                return False
            await asyncio.to_thread(os.chmod, tmp, 0o640)
            await asyncio.to_thread(os.replace, tmp, target)
            return True
        except FileNotFoundError:
            return False
        finally:
            with contextlib.suppress(FileNotFoundError):
                await asyncio.to_thread(os.unlink, tmp)

    async def digest(self, key: str) -> Digest | None:
        h, size = hashlib.sha256(), 0
        try:
            async for chunk in self.read(key):
                h.update(chunk)
                size += len(chunk)
        except FileNotFoundError:
            return None
        return Digest(h.hexdigest(), size)

    async def keys(self, since: str | None = None) -> AsyncIterator[str]:
        # S3 lists in UTF-8 byte order, which is code-point order. No StartAfter: SeaweedFS
        # takes a folder-like StartAfter ("<office>/2026/03") as skipping that whole folder.
        pages = self.client.get_paginator("list_objects_v2").paginate(
            Bucket=self.bucket, Prefix=self._office)  # fmt: skip
        async for page in pages:
            for item in page.get("Contents", ()):
                key = self._bucket_prefix + item["Key"]
                if since is None or key >= since:
                    yield key


@contextlib.asynccontextmanager
async def s3_store(config: S3Config, office: str = "") -> AsyncIterator[S3Store]:
    """A store on the configured bucket, its client open while the context is."""
    boto = BotoConfig(
        connect_timeout=5, read_timeout=30,
        retries={"max_attempts": 2, "mode": "standard"},  # the uploader retries on its own
        # Path-style for self-hosted stores (SeaweedFS, MinIO need it); AWS picks its own.
        s3={"addressing_style": "path" if config.endpoint else "auto"},
        # The SHA-256 is sent explicitly; no CRC32 added to every request (not all stores
        # accept botocore's default trailing checksums).
        request_checksum_calculation="when_required",
        response_checksum_validation="when_required",
    )  # fmt: skip
    keys = {}
    if config.access_key.reveal():
        keys = {"aws_access_key_id": config.access_key.reveal(),
                "aws_secret_access_key": config.secret_key.reveal()}  # fmt: skip
    session = get_session()
    async with session.create_client("s3", endpoint_url=config.endpoint,
                                     region_name=config.region, config=boto,
                                     **keys) as client:  # fmt: skip
        yield S3Store(client, config.bucket, office, Multipart.of(config))
