"""Read the pixels of a PNG image, such as a headless browser's screenshot, without an imaging library.

Enough of the format for what Chromium writes: 8-bit RGB or RGBA, not interlaced, with any of the five row filters.
"""

from __future__ import annotations

import collections
import struct
import zlib
from pathlib import Path

SIGNATURE = b"\x89PNG\r\n\x1a\n"
CHANNELS = {2: 3, 6: 4}  # colour type -> bytes per pixel at 8 bits


def size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == SIGNATURE, f"{path} is not a PNG image"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def colours(path: Path) -> collections.Counter[tuple[int, int, int]]:
    """How many pixels of each RGB colour the image has."""
    data = path.read_bytes()
    assert data[:8] == SIGNATURE, f"{path} is not a PNG image"
    offset, compressed, header = 8, b"", b""
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            compressed += body
        offset += 12 + length
    width, height, depth, colour_type, _compression, _filter, interlace = struct.unpack(">IIBBBBB", header)
    assert (depth, interlace) == (8, 0) and colour_type in CHANNELS, "only 8-bit RGB(A), not interlaced"
    step = CHANNELS[colour_type]
    stride = width * step
    raw = zlib.decompress(compressed)
    counts: collections.Counter[tuple[int, int, int]] = collections.Counter()
    previous = bytearray(stride)
    for row in range(height):
        start = row * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1 : start + 1 + stride])
        _unfilter(kind, line, previous, step)
        counts.update(zip(line[0::step], line[1::step], line[2::step], strict=True))
        previous = line
    return counts


def _unfilter(kind: int, line: bytearray, previous: bytearray, step: int) -> None:
    if kind == 0:
        return
    if kind == 2:
        line[:] = bytes((a + b) & 0xFF for a, b in zip(line, previous, strict=True))
        return
    for index in range(len(line)):
        left = line[index - step] if index >= step else 0
        up = previous[index]
        if kind == 1:
            line[index] = (line[index] + left) & 0xFF
        elif kind == 3:
            line[index] = (line[index] + (left + up) // 2) & 0xFF
        elif kind == 4:
            corner = previous[index - step] if index >= step else 0
            estimate = left + up - corner
            distances = (abs(estimate - left), abs(estimate - up), abs(estimate - corner))
            best = (left, up, corner)[distances.index(min(distances))]
            line[index] = (line[index] + best) & 0xFF
        else:
            raise ValueError(f"unknown PNG row filter {kind}")
