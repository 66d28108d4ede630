"""Our PNG writer for 8-bit RGB and RGBA: chunks written here, rows filtered in numpy, deflate by a library.

Two writers (PNG_WRITER, worker/config.py):

- compact: the Paeth filter on every row, then zlib-ng's run-length strategy (Z_RLE). On the worker's
  cut-outs Paeth is the filter that the per-row "least sum of absolute residuals" heuristic (Pillow's and
  libpng's) picks for over 99 % of rows, and the one that the compressed size picks for every strip we
  tried, so the choice is not computed. The residuals are mostly 0 and +-1: Huffman coding with runs
  of zeros (Z_RLE) writes them in fewer bytes than a fast LZ77 search (zlib level 1-4, libdeflate 1-6,
  ISA-L), whose short matches in residual noise cost more than the literals they replace.
- fast: the Up filter (one subtraction) and ISA-L's level 1, for throughput-first deployments.

The rows are cut into strips, one per thread; each strip is filtered and compressed on its own thread
(numpy, zlib-ng and ISA-L release the GIL) as raw deflate ending in a sync flush (an empty stored
block, byte-aligned, not final), the last strip ending in the final block. Raw deflate streams so
ended join into one stream; a zlib header in front and the Adler-32 of all the filtered bytes
(combined from the strips') after it make the one zlib stream that PNG's IDAT holds. A strip's first
row is filtered against the last row of the strip above, so the file decodes to exactly the input.
On a GPU the filter runs there (PNG_FILTER_ON_DEVICE, imaging/output.py's `filter_rows`): the output crosses to the host
as its filtered rows (`FilteredRows`, one byte more per row than its pixels) and the host only deflates
them, which halves the compact writer's CPU time. BENCHMARKS.md ("Our PNG writer") has the measurements
behind these choices.
"""
from __future__ import annotations

import struct
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
from isal import isal_zlib
from zlib_ng import zlib_ng

if TYPE_CHECKING:  # torch is imported after the worker's settings (worker/config.py's OPENMP_DEFAULTS)
    import torch

SIGNATURE = b"\x89PNG\r\n\x1a\n"
COLOUR_TYPES = {3: 2, 4: 6}  # channels -> PNG colour type (truecolour, truecolour with alpha)
FILTER_UP, FILTER_PAETH = 2, 4
ZLIB_HEADER = b"\x78\x01"  # deflate, 32 KiB window, "fastest" level hint; (0x78 << 8 | 0x01) % 31 == 0
CHUNK_ROWS = 4  # Paeth works on this many rows at a time: its int16 temporaries stay in the CPU's cache
MIN_STRIP_BYTES = 1 << 20  # a strip holds at least this: a smaller one costs more in hand-off than it saves
FILTERED_CHUNK_BYTES = 1 << 18  # FilteredRows are compressed this much at a time: it stays in the CPU's cache
ADLER_BASE = 65521

_pools: dict[int, ThreadPoolExecutor] = {}
# CPU seconds the strip pool spent on PNGs written by each calling thread: time.thread_time() on the
# caller does not see it, and the worker's stage accounting must (offloaded_cpu_seconds).
_offloaded = threading.local()


@dataclass(frozen=True)
class PngSettings:
    """How PNGs are written (the worker's: PNG_WRITER, PNG_THREADS, PNG_COMPRESS_LEVEL in worker/config.py)."""

    writer: str = "compact"  # this module's writer for 8-bit RGB / RGBA: compact or fast
    threads: int = 2  # strips of one PNG compressed at once, each on its own thread
    compress_level: int = 1  # Pillow's zlib level, for grey PNGs and APNG animations (imaging/encode.py)
    filter_on_device: bool = False  # RGB/RGBA rows filtered where the pixels are (filter_rows), not on the host


@dataclass(frozen=True)
class FilteredRows:
    """An 8-bit RGB or RGBA image as PNG's filtered rows: (H, 1 + W*C) uint8, each row its filter-type
    byte, then its residuals. Made where the pixels are (imaging/output.py's `filter_rows`, on the
    device), written by `write_filtered_png`."""

    rows: np.ndarray | torch.Tensor
    channels: int

    @property
    def shape(self) -> tuple[int, int, int]:
        """The image's (H, W, C), as its pixels' array has it."""
        height, length = self.rows.shape
        return height, (length - 1) // self.channels, self.channels


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(data, zlib.crc32(kind)))


def adler32_combine(first: int, second: int, second_length: int) -> int:
    """The Adler-32 of A + B from adler32(A), adler32(B) and len(B) (zlib's adler32_combine)."""
    remainder = second_length % ADLER_BASE
    sum1 = (first & 0xFFFF) + (second & 0xFFFF) - 1
    sum2 = remainder * (first & 0xFFFF) + (first >> 16) + (second >> 16) - remainder
    return (sum2 % ADLER_BASE) << 16 | (sum1 % ADLER_BASE)


def paeth_rows(rows: np.ndarray, above: np.ndarray, bpp: int, out: np.ndarray) -> None:
    """PNG's Paeth residuals of (k, n) uint8 `rows` into `out`; `above` is the row over the first one.

    Only the columns from the first non-zero byte of the rows (and the row above) to one pixel past
    the last are computed: outside them a byte and its neighbours are 0, so is the prediction, and so
    is the residual. On a cut-out that skips the zeroed background left and right of the subject.
    """
    k, n = rows.shape
    used = rows.any(axis=0)
    used |= above.astype(bool)
    if not used.any():
        out[:] = 0
        return
    first, end = int(used.argmax()), min(n, n - int(used[::-1].argmax()) + bpp)
    out[:, :first] = 0
    out[:, end:] = 0
    rows, out = rows[:, first:end], out[:, first:end]
    wide = np.zeros((k + 1, end - first + bpp), np.int16)  # bpp zero bytes on the left: PNG's "outside"
    wide[0, bpp:] = above[first:end]
    wide[1:, bpp:] = rows
    left, up, up_left = wide[1:, :-bpp], wide[:-1, bpp:], wide[:-1, :-bpp]
    to_left = left - up_left  # p - up, where p = left + up - up_left
    to_up = up - up_left  # p - left
    dist_up_left = np.abs(to_left + to_up)  # |p - up_left|
    dist_left = np.abs(to_up, out=to_up)  # |p - left|
    dist_up = np.abs(to_left, out=to_left)  # |p - up|
    pick_left = (dist_left <= dist_up) & (dist_left <= dist_up_left)
    prediction = np.where(pick_left, left, np.where(dist_up <= dist_up_left, up, up_left))
    np.subtract(rows, prediction, out=out, casting="unsafe")


def up_rows(rows: np.ndarray, above: np.ndarray, bpp: int, out: np.ndarray) -> None:
    """PNG's Up residuals of (k, n) uint8 `rows` into `out`."""
    np.subtract(rows[0], above, out=out[0])
    np.subtract(rows[1:], rows[:-1], out=out[1:])


def _rle_compressor():
    return zlib_ng.compressobj(1, zlib_ng.DEFLATED, -15, 9, zlib_ng.Z_RLE)


def _isal_compressor():
    return isal_zlib.compressobj(1, isal_zlib.DEFLATED, -15)


# writer -> (filter type, filter function, raw-deflate compressor factory, its module's flush constants)
_WRITERS: dict[str, tuple[int, Callable, Callable, object]] = {
    "compact": (FILTER_PAETH, paeth_rows, _rle_compressor, zlib_ng),
    "fast": (FILTER_UP, up_rows, _isal_compressor, isal_zlib),
}
WRITERS = tuple(_WRITERS)


def filter_type(writer: str) -> int:
    """The PNG filter `writer` applies to every row: FILTER_PAETH (compact) or FILTER_UP (fast)."""
    return _WRITERS[writer][0]


def offloaded_cpu_seconds() -> float:
    """CPU time that strip threads have spent on the PNGs the calling thread wrote, all told."""
    return getattr(_offloaded, "seconds", 0.0)


def _filtered_chunks(rows: np.ndarray, above: np.ndarray | None, bpp: int, writer: str) -> Iterator[memoryview]:
    """A strip's filtered bytes, a few rows at a time (one buffer, reused: use each before the next);
    rows that are filtered already (`above` None: FilteredRows') as they are."""
    if above is None:
        step = max(1, FILTERED_CHUNK_BYTES // rows.shape[1])
        for start in range(0, len(rows), step):
            yield memoryview(rows[start:start + step]).cast("B")
        return
    kind, apply_filter = _WRITERS[writer][:2]
    filtered = np.empty((min(CHUNK_ROWS, len(rows)), rows.shape[1] + 1), np.uint8)
    filtered[:, 0] = kind
    for start in range(0, len(rows), CHUNK_ROWS):
        chunk = rows[start:start + CHUNK_ROWS]
        out = filtered[:len(chunk)]
        apply_filter(chunk, above if start == 0 else rows[start - 1], bpp, out[:, 1:])
        yield memoryview(out).cast("B")


def _strip(rows: np.ndarray, above: np.ndarray | None, bpp: int, writer: str,
           last: bool) -> tuple[bytes, int, int]:
    """One strip's raw deflate (sync-flushed, or final when `last`), and the Adler-32 and length of its
    filtered bytes."""
    compressor, module = _WRITERS[writer][2:]
    stream = compressor()
    parts = []
    adler, length = 1, 0
    for data in _filtered_chunks(rows, above, bpp, writer):
        adler = zlib_ng.adler32(data, adler)
        length += data.nbytes
        parts.append(stream.compress(data))
    parts.append(stream.flush(module.Z_FINISH if last else module.Z_SYNC_FLUSH))
    return b"".join(parts), adler, length


def _cpu_timed(fn, *args):
    """fn(*args) and the CPU seconds this thread spent on it."""
    start = time.thread_time()
    return fn(*args), time.thread_time() - start


def _pool(threads: int) -> ThreadPoolExecutor:
    if threads not in _pools:
        _pools[threads] = ThreadPoolExecutor(threads, thread_name_prefix="png")
    return _pools[threads]


def image_data(rows: np.ndarray, bpp: int, writer: str, strips: int, filtered: bool = False) -> bytes:
    """The zlib stream of PNG image data: (H, W*bpp) uint8 rows filtered (or, `filtered`, FilteredRows'
    (H, 1 + W*bpp) rows as they are) and compressed in `strips` strips of rows (at most one a row), each
    on its own thread when there are several."""
    height = rows.shape[0]
    strips = max(1, min(strips, height))
    bounds = np.linspace(0, height, strips + 1).round().astype(int)
    zero_row = np.zeros(rows.shape[1], np.uint8)
    jobs = [(rows[a:b], None if filtered else rows[a - 1] if a else zero_row, bpp, writer, b == height)
            for a, b in zip(bounds[:-1], bounds[1:])]
    if strips > 1:
        timed = list(_pool(strips).map(lambda job: _cpu_timed(_strip, *job), jobs))
        _offloaded.seconds = offloaded_cpu_seconds() + sum(cpu for _, cpu in timed)
        results = [result for result, _ in timed]
    else:
        results = [_strip(*jobs[0])]
    adler = results[0][1]
    for _, strip_adler, length in results[1:]:
        adler = adler32_combine(adler, strip_adler, length)
    return ZLIB_HEADER + b"".join(data for data, _, _ in results) + struct.pack(">I", adler)


def _check_writer(writer: str) -> None:
    if writer not in _WRITERS:
        raise ValueError(f"unknown PNG writer {writer!r}; allowed: {', '.join(WRITERS)}")


def _png_file(height: int, width: int, channels: int, data: bytes) -> bytes:
    header = struct.pack(">IIBBBBB", width, height, 8, COLOUR_TYPES[channels], 0, 0, 0)
    return SIGNATURE + _chunk(b"IHDR", header) + _chunk(b"IDAT", data) + _chunk(b"IEND", b"")


def write_png(pixels: np.ndarray, writer: str = PngSettings.writer, strips: int = PngSettings.threads,
              min_strip_bytes: int = MIN_STRIP_BYTES) -> bytes:
    """HxWx3 (RGB) or HxWx4 (RGBA) uint8 to PNG bytes; `strips` strips compressed on as many threads,
    fewer where a strip would hold under `min_strip_bytes`."""
    if pixels.dtype != np.uint8 or pixels.ndim != 3 or pixels.shape[2] not in COLOUR_TYPES or not pixels.size:
        raise ValueError(f"write_png takes non-empty HxWx3 or HxWx4 uint8, not {pixels.dtype} {pixels.shape}")
    _check_writer(writer)
    height, width, channels = pixels.shape
    rows = np.ascontiguousarray(pixels).reshape(height, width * channels)
    data = image_data(rows, channels, writer, min(strips, rows.nbytes // min_strip_bytes) or 1)
    return _png_file(height, width, channels, data)


def write_filtered_png(image: FilteredRows, writer: str = PngSettings.writer, strips: int = PngSettings.threads,
                       min_strip_bytes: int = MIN_STRIP_BYTES) -> bytes:
    """FilteredRows (host memory) to PNG bytes: write_png's file, the filtering done already."""
    rows = image.rows
    if not isinstance(rows, np.ndarray) or rows.dtype != np.uint8 or rows.ndim != 2 or not rows.size \
            or image.channels not in COLOUR_TYPES or (rows.shape[1] - 1) % image.channels:
        raise ValueError(f"write_filtered_png takes host FilteredRows of RGB or RGBA, not {image.shape}")
    _check_writer(writer)
    rows = np.ascontiguousarray(rows)
    height, width, channels = image.shape
    data = image_data(rows, channels, writer, min(strips, rows.nbytes // min_strip_bytes) or 1, filtered=True)
    return _png_file(height, width, channels, data)
