"""Where attachments' bytes live: a local directory (ATTACHMENT_DIR), or any S3-compatible
store (ATTACHMENT_S3_URL, s3://bucket/prefix, through boto3 and its standard settings).

Objects are named by ISP and SHA-256 only, never by a file's name, so nothing a client sends
can choose where bytes are written.
"""

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from typing import BinaryIO
from urllib.parse import urlsplit

from flask import current_app

CHUNK = 64 * 1024
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


def object_name(isp_id: int, sha256: str) -> str:
    """The one name the bytes of `sha256` have in an ISP's part of the store."""
    if not _SHA256.match(sha256):
        raise ValueError("not a SHA-256 in hex")
    return f"{int(isp_id)}/{sha256[:2]}/{sha256}"


class LocalStore:
    """Files under one directory, written to a temporary file there and renamed into place,
    so a reader never meets half an object."""

    def __init__(self, root: str):
        self.root = os.path.abspath(root)

    def _path(self, name: str) -> str:
        path = os.path.abspath(os.path.join(self.root, name))
        if os.path.commonpath([path, self.root]) != self.root:
            raise ValueError("outside the store")
        return path

    def put(self, name: str, source: BinaryIO) -> None:
        path = self._path(name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        fd, temporary = tempfile.mkstemp(dir=os.path.dirname(path), prefix=".upload-")
        try:
            with os.fdopen(fd, "wb") as target:
                while chunk := source.read(CHUNK):
                    target.write(chunk)
            os.replace(temporary, path)
        except BaseException:
            os.unlink(temporary)
            raise

    def exists(self, name: str) -> bool:
        return os.path.exists(self._path(name))

    def read(self, name: str) -> Iterator[bytes] | None:
        """The object's bytes in chunks (opened now, so a missing one is None here rather
        than an error halfway through an answer)."""
        try:
            source = open(self._path(name), "rb")  # noqa: SIM115 (closed by _chunks)
        except FileNotFoundError:
            return None
        return _chunks(source)

    def delete(self, name: str) -> None:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self._path(name))


class S3Store:
    """Objects in one bucket under a prefix. boto3 reads its own settings from the
    environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
    AWS_DEFAULT_REGION); uploads go in parts, so a file is never held in memory whole."""

    def __init__(self, url: str):
        parts = urlsplit(url)
        if parts.scheme != "s3" or not parts.netloc:
            raise ValueError("ATTACHMENT_S3_URL must be s3://bucket[/prefix]")
        import boto3  # only where S3 is used

        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        self.client = boto3.client("s3")

    def _key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def put(self, name: str, source: BinaryIO) -> None:
        self.client.upload_fileobj(source, self.bucket, self._key(name))

    def exists(self, name: str) -> bool:
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=self.bucket, Key=self._key(name))
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return False
            raise
        return True

    def read(self, name: str) -> Iterator[bytes] | None:
        from botocore.exceptions import ClientError

        try:
            body = self.client.get_object(Bucket=self.bucket, Key=self._key(name))["Body"]
        except ClientError as err:
            if err.response.get("Error", {}).get("Code") in ("404", "NoSuchKey", "NotFound"):
                return None
            raise
        return _chunks(body)

    def delete(self, name: str) -> None:
        self.client.delete_object(Bucket=self.bucket, Key=self._key(name))


def _chunks(source) -> Iterator[bytes]:
    try:
        while chunk := source.read(CHUNK):
            yield chunk
    finally:
        source.close()


def init_app(app) -> None:
    url = app.config.get("ATTACHMENT_S3_URL")
    if url:
        app.extensions["attachment_store"] = S3Store(url)
    else:
        root = app.config.get("ATTACHMENT_DIR") or os.path.join(app.instance_path, "attachments")
        app.extensions["attachment_store"] = LocalStore(root)


def store() -> LocalStore | S3Store:
    return current_app.extensions["attachment_store"]
