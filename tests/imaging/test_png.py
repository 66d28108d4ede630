"""Our PNG writer: exact round trips through Pillow, the zlib stream and CRCs checked independently."""
from __future__ import annotations

import io
import struct
import threading
import zlib

import numpy as np
import pytest
import torch
from PIL import Image

from imaging.output import filter_rows, to_host
from imaging.png import (
    WRITERS,
    FilteredRows,
    adler32_combine,
    offloaded_cpu_seconds,
    write_filtered_png,
    write_png,
)
from tests.conftest import png_chunks

RNG = np.random.default_rng(7)


def _random(height: int, width: int, channels: int) -> np.ndarray:
    return RNG.integers(0, 256, (height, width, channels), dtype=np.uint8)


def _gradient(height: int, width: int, channels: int) -> np.ndarray:
    yy, xx = np.mgrid[:height, :width]
    planes = [(xx * 7 + yy * 3) % 256, (xx * yy) % 256, (255 - xx) % 256, np.clip(yy * 40 - 100, 0, 255)]
    return np.dstack(planes[:channels]).astype(np.uint8)


def _cutout(height: int, width: int, channels: int) -> np.ndarray:
    """Noise inside a disc, zero outside (the zeroed background of a cut-out), so rows have zero spans."""
    pixels = _random(height, width, channels)
    yy, xx = np.mgrid[:height, :width]
    pixels[np.hypot(yy - height / 2, xx - width / 3) > min(height, width) / 3] = 0
    return pixels


def _flat(height: int, width: int, channels: int) -> np.ndarray:
    return np.full((height, width, channels), 173, np.uint8)


IMAGES = {"random": _random, "gradient": _gradient, "cutout": _cutout, "flat": _flat}
SHAPES = [(1, 1), (1, 37), (41, 1), (2, 2), (17, 23), (64, 129)]


def _paeth_reference(rows: np.ndarray, bpp: int) -> np.ndarray:
    """The PNG specification's Paeth filter, pixel by pixel in Python ints."""
    height, width = rows.shape
    out = np.zeros_like(rows)
    for y in range(height):
        for x in range(width):
            a = int(rows[y, x - bpp]) if x >= bpp else 0
            b = int(rows[y - 1, x]) if y else 0
            c = int(rows[y - 1, x - bpp]) if y and x >= bpp else 0
            p = a + b - c
            pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            predictor = a if pa <= pb and pa <= pc else b if pb <= pc else c
            out[y, x] = (int(rows[y, x]) - predictor) % 256
    return out


def _up_reference(rows: np.ndarray) -> np.ndarray:
    above = np.vstack([np.zeros_like(rows[:1]), rows[:-1]]).astype(int)
    return ((rows.astype(int) - above) % 256).astype(np.uint8)


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("channels", [3, 4])
@pytest.mark.parametrize("strips", [1, 2, 3, 7])
@pytest.mark.parametrize("image", list(IMAGES))
def test_round_trip_is_exact(image, strips, channels, writer):
    for height, width in SHAPES:
        pixels = IMAGES[image](height, width, channels)
        png = write_png(pixels, writer, strips, min_strip_bytes=1)
        decoded = Image.open(io.BytesIO(png))
        assert decoded.mode == ("RGB" if channels == 3 else "RGBA")
        assert np.array_equal(np.asarray(decoded), pixels), (height, width)


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("strips", [1, 4])
def test_image_data_is_one_zlib_stream_of_the_filtered_rows(writer, strips):
    pixels = _cutout(30, 19, 4)
    chunks = png_chunks(write_png(pixels, writer, strips, min_strip_bytes=1))
    assert [kind for kind, _ in chunks] == [b"IHDR", b"IDAT", b"IEND"]
    assert struct.unpack(">IIBBBBB", chunks[0][1]) == (19, 30, 8, 6, 0, 0, 0)
    stream = zlib.decompressobj()
    filtered = stream.decompress(chunks[1][1])
    assert stream.eof and not stream.unused_data  # one complete stream, its Adler-32 checked by zlib
    rows = pixels.reshape(30, 19 * 4)
    expected = _paeth_reference(rows, 4) if writer == "compact" else _up_reference(rows)
    filter_type = 4 if writer == "compact" else 2
    assert filtered == np.hstack([np.full((30, 1), filter_type, np.uint8), expected]).tobytes()


def _filtered_on_device(pixels: np.ndarray, writer: str) -> FilteredRows:
    """filter_rows as a job runs it: on the device's tensor, then the output's copy to the host."""
    return to_host(filter_rows(torch.from_numpy(pixels), writer))


@pytest.mark.parametrize("writer", WRITERS)
@pytest.mark.parametrize("channels", [3, 4])
@pytest.mark.parametrize("image", list(IMAGES))
def test_rows_filtered_on_the_device_are_the_filter_of_the_specification(image, channels, writer):
    """filter_rows gives the bytes of the specification's filter, row blocks included (1030 rows: the
    block boundaries of DEVICE_FILTER_ROWS fall inside), and its file decodes to the pixels exactly."""
    for height, width in SHAPES + [(1030, 5)]:
        pixels = IMAGES[image](height, width, channels)
        filtered = _filtered_on_device(pixels, writer)
        rows = pixels.reshape(height, width * channels)
        expected = _paeth_reference(rows, channels) if writer == "compact" else _up_reference(rows)
        assert filtered.shape == pixels.shape
        assert np.array_equal(filtered.rows[:, 0], np.full(height, 4 if writer == "compact" else 2, np.uint8))
        assert np.array_equal(filtered.rows[:, 1:], expected), (height, width)
        png = write_filtered_png(filtered, writer, 3)
        assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), pixels), (height, width)


@pytest.mark.parametrize("writer", WRITERS)
def test_a_png_filtered_on_the_device_is_the_one_the_host_writes(writer):
    """Deflate alone over the device's rows: the same zlib stream's content as write_png's, in strips."""
    pixels = _cutout(1024, 600, 4)
    from_device = write_filtered_png(_filtered_on_device(pixels, writer), writer, 2)
    on_host = write_png(pixels, writer, 2)
    assert png_chunks(from_device)[0] == png_chunks(on_host)[0]
    assert zlib.decompress(png_chunks(from_device)[1][1]) == zlib.decompress(png_chunks(on_host)[1][1])
    if writer == "compact":  # zlib-ng's run-length deflate does not depend on how its input is fed
        assert from_device == on_host


@pytest.mark.parametrize("rows,channels", [(torch.zeros(4, 13, dtype=torch.uint8), 4),
                                           (np.zeros((4, 13), np.uint16), 4), (np.zeros((4, 14), np.uint8), 4),
                                           (np.zeros((0, 13), np.uint8), 4), (np.zeros((4, 13), np.uint8), 2)])
def test_write_filtered_png_refuses_what_it_does_not_write(rows, channels):
    with pytest.raises(ValueError, match="host FilteredRows of RGB or RGBA"):
        write_filtered_png(FilteredRows(rows, channels))


def test_large_image_is_cut_into_strips_and_stays_exact():
    pixels = _cutout(1024, 600, 4)  # 2.5 MB: two strips of at least MIN_STRIP_BYTES
    png = write_png(pixels, strips=2)
    assert png == write_png(pixels, strips=2)
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(png))), pixels)
    single = write_png(pixels, strips=1)
    assert png != single  # two raw deflate streams joined, not one
    assert zlib.decompress(png_chunks(png)[1][1]) == zlib.decompress(png_chunks(single)[1][1])


def test_adler32_combine_matches_zlib():
    data = RNG.integers(0, 256, 200_000, dtype=np.uint8).tobytes()
    for cut in (0, 1, 5552, 65521, 131042, 199_999):
        first, second = data[:cut], data[cut:]
        assert adler32_combine(zlib.adler32(first), zlib.adler32(second), len(second)) == zlib.adler32(data)


@pytest.mark.parametrize("pixels", [np.zeros((4, 4), np.uint8), np.zeros((4, 4, 2), np.uint8),
                                    np.zeros((4, 4, 3), np.uint16), np.zeros((0, 4, 3), np.uint8)])
def test_refuses_what_it_does_not_write(pixels):
    with pytest.raises(ValueError, match="HxWx3 or HxWx4 uint8"):
        write_png(pixels)


def test_refuses_an_unknown_writer():
    with pytest.raises(ValueError, match="unknown PNG writer"):
        write_png(_flat(2, 2, 3), "smallest")


def test_strip_threads_cpu_is_counted_for_the_thread_that_wrote_the_png():
    """thread_time() of the caller misses the strip pool's work; the stage accounting adds what
    offloaded_cpu_seconds reports, so it must grow by that work for the writing thread alone."""
    pixels = np.random.default_rng(0).integers(0, 256, (512, 512, 4), np.uint8)
    seen = {}

    def write(strips: int) -> None:
        before = offloaded_cpu_seconds()
        write_png(pixels, "compact", strips, min_strip_bytes=1)
        seen[strips] = offloaded_cpu_seconds() - before

    mine = offloaded_cpu_seconds()
    for strips in (1, 3):
        thread = threading.Thread(target=write, args=(strips,))
        thread.start()
        thread.join()
    assert seen[1] == 0.0  # one strip runs on the caller: its own thread_time counts it
    assert seen[3] > 0.0
    assert offloaded_cpu_seconds() == mine  # nothing is counted for this thread, which wrote nothing
