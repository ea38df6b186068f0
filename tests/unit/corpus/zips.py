"""Zip archives written field by field, for what zipfile cannot or will not write.

zipfile writes only well-formed archives with the methods it supports; the corpus needs any
compression method id, lying sizes, hand-set flags, zip64 records where none are needed, extra
fields and end records that disagree with the directory. Layout: PKWARE APPNOTE.TXT 4.3.
"""

from __future__ import annotations

import io
import struct
import zlib
from dataclasses import dataclass, field
from typing import Any

LOCAL = struct.Struct("<4s2B4HL2L2H")
DIRECTORY = struct.Struct("<4s4B4HL2L5H2L")
END = struct.Struct("<4s4H2LH")
ZIP64_END = struct.Struct("<4sQ2H2L4Q")
ZIP64_LOCATOR = struct.Struct("<4sLQL")
REGULAR_FILE = 0o100644 << 16
UNIX = 3


def deflate(content: bytes, level: int = 9) -> bytes:
    """A raw deflate stream, as zip stores it (no zlib header or trailer)."""
    compressor = zlib.compressobj(level, zlib.DEFLATED, -zlib.MAX_WBITS)
    return compressor.compress(content) + compressor.flush()


@dataclass
class Entry:
    """One entry; every header field can be set to a lie. `data` is stored as given."""

    name: str | bytes
    data: bytes = b""
    method: int = 0
    size: int | None = None  # declared uncompressed size; len(data) by default
    crc: int | None = None  # CRC-32 of the uncompressed content; of `data` by default
    compressed_size: int | None = None  # declared; len(data) by default
    flags: int | None = None  # UTF-8 flag for non-ASCII str names by default
    create_system: int = UNIX
    external_attr: int = REGULAR_FILE
    extra: bytes = b""  # central directory extra fields
    local_extra: bytes = b""
    local_name: bytes | None = None  # what the local header says; the directory's name by default
    local_method: int | None = None
    header_offset: int | None = None  # where the directory says the local header is

    @property
    def raw_name(self) -> bytes:
        return self.name.encode("utf-8") if isinstance(self.name, str) else self.name

    @property
    def flag_bits(self) -> int:
        if self.flags is not None:
            return self.flags
        return 0x800 if isinstance(self.name, str) and not self.name.isascii() else 0


def stored(name: str | bytes, content: bytes | str = b"", **overrides: Any) -> Entry:
    """A stored entry with true sizes and CRC, unless `overrides` (Entry fields) say otherwise."""
    data = content.encode() if isinstance(content, str) else content
    return Entry(name, data, **{"method": 0, "crc": zlib.crc32(data), "size": len(data), **overrides})


def deflated(name: str | bytes, content: bytes | str = b"", **overrides: Any) -> Entry:
    """A deflated entry with true sizes and CRC, unless `overrides` (Entry fields) say otherwise."""
    data = content.encode() if isinstance(content, str) else content
    fields = {"method": 8, "crc": zlib.crc32(data), "size": len(data), **overrides}
    return Entry(name, deflate(data), **fields)


@dataclass
class Layout:
    """Overrides for the end records; None means the true figure."""

    entries: int | None = None
    directory_size: int | None = None
    directory_offset: int | None = None
    comment: bytes = b""
    disk: int = 0
    zip64: bool = False  # write zip64 end records (also written when the count needs them)
    prefix: bytes = b""  # bytes before the first local header (offsets not adjusted)
    trailing: bytes = b""  # bytes after the end record
    directory_padding: bytes = b""  # bytes after the directory records, counted in its size
    local_headers: dict[int, bytes] = field(default_factory=dict)  # index -> replacement bytes


def craft_zip(entries: list[Entry], layout: Layout | None = None) -> bytes:
    layout = layout or Layout()
    out = io.BytesIO()
    out.write(layout.prefix)
    offsets: list[int] = []
    for index, entry in enumerate(entries):
        offsets.append(out.tell() - len(layout.prefix))
        if index in layout.local_headers:
            out.write(layout.local_headers[index])
            continue
        local_name = entry.local_name if entry.local_name is not None else entry.raw_name
        out.write(
            LOCAL.pack(
                b"PK\x03\x04",
                20,
                0,
                entry.flag_bits,
                entry.local_method if entry.local_method is not None else entry.method,
                0,
                0x21,
                _crc(entry),
                min(_compressed_size(entry), 0xFFFFFFFF),
                min(_size(entry), 0xFFFFFFFF),
                len(local_name),
                len(entry.local_extra),
            )
        )
        out.write(local_name + entry.local_extra + entry.data)
    directory_offset = out.tell() - len(layout.prefix)
    for entry, offset in zip(entries, offsets, strict=True):
        header_offset = entry.header_offset if entry.header_offset is not None else offset
        out.write(
            DIRECTORY.pack(
                b"PK\x01\x02",
                20,
                entry.create_system,
                20,
                0,
                entry.flag_bits,
                entry.method,
                0,
                0x21,
                _crc(entry),
                min(_compressed_size(entry), 0xFFFFFFFF),
                min(_size(entry), 0xFFFFFFFF),
                len(entry.raw_name),
                len(entry.extra),
                0,
                0,
                0,
                entry.external_attr,
                min(header_offset, 0xFFFFFFFF),
            )
        )
        out.write(entry.raw_name + entry.extra)
    out.write(layout.directory_padding)
    directory_size = out.tell() - len(layout.prefix) - directory_offset
    count = len(entries) if layout.entries is None else layout.entries
    size = directory_size if layout.directory_size is None else layout.directory_size
    where = directory_offset if layout.directory_offset is None else layout.directory_offset
    if layout.zip64 or count > 0xFFFF:  # as zipfile does: the classic record counts 16 bits
        record_offset = out.tell() - len(layout.prefix)
        out.write(ZIP64_END.pack(b"PK\x06\x06", 44, 45, 45, layout.disk, 0, count, count, size, where))
        out.write(ZIP64_LOCATOR.pack(b"PK\x06\x07", 0, record_offset, 1))
        count16, size32, where32 = 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF
    else:
        count16, size32, where32 = min(count, 0xFFFF), size, where
    out.write(END.pack(b"PK\x05\x06", layout.disk, 0, count16, count16, size32, where32, len(layout.comment)))
    out.write(layout.comment + layout.trailing)
    return out.getvalue()


def zip64_extra(*values: int) -> bytes:
    """The zip64 extra field with the given 8-byte values (sizes, offset), in the order given."""
    body = b"".join(struct.pack("<Q", value) for value in values)
    return struct.pack("<HH", 0x0001, len(body)) + body


def unicode_path_extra(name: str, header_name: bytes) -> bytes:
    """Info-ZIP's Unicode Path field: unzip extracts under `name` instead of the header's."""
    body = bytes([1]) + struct.pack("<L", zlib.crc32(header_name)) + name.encode("utf-8")
    return struct.pack("<HH", 0x7075, len(body)) + body


def _crc(entry: Entry) -> int:
    return entry.crc if entry.crc is not None else zlib.crc32(entry.data)


def _size(entry: Entry) -> int:
    return entry.size if entry.size is not None else len(entry.data)


def _compressed_size(entry: Entry) -> int:
    return entry.compressed_size if entry.compressed_size is not None else len(entry.data)


class CountingReader(io.BytesIO):
    """A BytesIO counting what read() returns: what the S3 ranged reader would fetch.

    inspect_zip reads only through read(); readinto() and friends are not counted.
    """

    def __init__(self, data: bytes) -> None:
        super().__init__(data)
        self.bytes_read = 0
        self.reads = 0

    def read(self, size: int | None = -1, /) -> bytes:
        chunk = super().read(size)
        self.bytes_read += len(chunk)
        self.reads += 1
        return chunk
