"""Files the attachment tests send and look for."""

import struct
import zlib
from pathlib import Path


def png(seed: int = 0) -> bytes:
    """A valid 1x1 PNG; its one pixel's colour (hence its bytes) differs with `seed`."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data)
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)
    pixel = zlib.compress(bytes([0, seed % 256, seed // 256 % 256, 7]))
    signature = b"\x89PNG\r\n\x1a\n"
    return signature + chunk(b"IHDR", header) + chunk(b"IDAT", pixel) + chunk(b"IEND", b"")


def stored_files(root: Path) -> list[Path]:
    """Every file under `root` (none when it was never made)."""
    return [path for path in root.rglob("*") if path.is_file()] if root.exists() else []
