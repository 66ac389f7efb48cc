"""Draw the web UI's PWA icons as real PNG files (zlib + struct, no imaging library).

    .venv/bin/python scripts/make_icons.py      # writes services/cellcelly/webui/icons/*.png

The glyph is an open ring (a "C") with three signal bars inside, white on the theme indigo.
"any" icons have rounded corners on a transparent background; "maskable" icons fill the whole
square and keep the glyph inside the central 80 % safe zone, as the maskable-icon spec asks.
Each pixel is supersampled 4×4 for smooth edges. The outputs are committed; rerun after a change.
"""

from __future__ import annotations

import logging
import math
import struct
import zlib
from pathlib import Path

log = logging.getLogger("make_icons")

OUT = Path(__file__).resolve().parents[1] / "services" / "cellcelly" / "webui" / "icons"
THEME = (67, 56, 202)  # #4338ca, the manifest's theme_color
WHITE = (255, 255, 255)
SAMPLES = 4


def png(width: int, height: int, rgba: bytearray) -> bytes:
    """Encode 8-bit RGBA rows as a PNG (filter 0 on every row)."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    stride = width * 4
    raw = b"".join(b"\x00" + bytes(rgba[y * stride : (y + 1) * stride]) for y in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 6, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(raw, 9))
        + chunk(b"IEND", b"")
    )


def inside_rounded_square(x: float, y: float, radius: float) -> bool:
    """Unit square [0,1]² with corners rounded by radius."""
    cx = min(max(x, radius), 1 - radius)
    cy = min(max(y, radius), 1 - radius)
    return (x - cx) ** 2 + (y - cy) ** 2 <= radius**2


def in_glyph(x: float, y: float, scale: float) -> bool:
    """The ring and the bars, in unit coordinates centred on (0.5, 0.5), shrunk by scale."""
    u = (x - 0.5) / scale
    v = (y - 0.5) / scale
    r = math.hypot(u, v)
    angle = math.degrees(math.atan2(v, u))  # 0° points right (the ring's opening)
    if 0.30 <= r <= 0.42 and abs(angle) > 40:
        return True
    # three bars rising to the right, standing on a common baseline
    base = 0.13
    for i, top in enumerate((0.03, -0.06, -0.15)):
        left = -0.15 + i * 0.105
        if left <= u <= left + 0.07 and top <= v <= base:
            return True
    return False


def draw(size: int, maskable: bool) -> bytes:
    rgba = bytearray(size * size * 4)
    scale = 0.78 if maskable else 0.9  # maskable: glyph radius 0.42*0.78 ≈ 0.33 < the 0.4 safe zone
    step = 1.0 / (size * SAMPLES)
    for py in range(size):
        for px in range(size):
            bg = fg = 0
            for sy in range(SAMPLES):
                for sx in range(SAMPLES):
                    x = (px * SAMPLES + sx + 0.5) * step
                    y = (py * SAMPLES + sy + 0.5) * step
                    if maskable or inside_rounded_square(x, y, 0.22):
                        bg += 1
                        if in_glyph(x, y, scale):
                            fg += 1
            total = SAMPLES * SAMPLES
            i = (py * size + px) * 4
            if bg:
                mix = fg / bg
                for c in range(3):
                    rgba[i + c] = round(THEME[c] * (1 - mix) + WHITE[c] * mix)
                rgba[i + 3] = round(255 * bg / total)
    return png(size, size, rgba)


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    OUT.mkdir(parents=True, exist_ok=True)
    targets = {
        "icon-192.png": (192, False),
        "icon-512.png": (512, False),
        "icon-maskable-192.png": (192, True),
        "icon-maskable-512.png": (512, True),
        "apple-touch-icon.png": (180, True),  # iOS rounds the corners itself
    }
    for name, (size, maskable) in targets.items():
        (OUT / name).write_bytes(draw(size, maskable))
        log.info("wrote %s (%dx%d)", OUT / name, size, size)


if __name__ == "__main__":
    main()
