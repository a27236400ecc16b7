"""Which size a photo is processed at, and how the model's change reaches the photo's own size (torch-free).

Working size: a dynamic artifact (manifest input "sizes": {"dynamic": true, "multiple", "min", "max"}) runs
at the photo's own size, scaled down so its long side is at most `max_side` and rounded to the nearest
`multiple` (a few pixels of aspect change at most); an artifact with fixed sizes runs at the one whose
aspect and scale are nearest (an old manifest without "sizes" has one: its input shape).

Guided upsampling: when the working size differs from the photo's, the output is
`photo + upsample(model(work) - work)`, `work` being the photo resized to the working size: the model's
change (grade, tone, texture at the working scale) is carried to full size with a bilinear upsample,
while the photo's own full-resolution detail stays. Done in row strips into the output, so a 12 MP photo
needs no full-size float or int16 copy (about 1 MB of scratch per strip). Video frames (`scaler="swscale"`)
upsample the change with FFmpeg's scaler in one pass instead: ~2x faster than Pillow on a 720p frame, within
2 levels of it, and a frame is small enough for one int16 copy.

Example: python -c "from pocketgan.runtime.working import SizePolicy, working_size;
                    print(working_size(SizePolicy(dynamic=True), (3024, 4032), 1536))"
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import numpy as np
from PIL import Image

from pocketgan.errors import ModelLoadError

STRIP_ROWS = 64  # output rows per strip of the guided upsampling (cache-sized; memory ~ rows x width)
_UPSAMPLE_FILTER = Image.Resampling.BILINEAR  # the change is smooth at working scale: bilinear is enough


@dataclass(frozen=True)
class SizePolicy:
    """The sizes an artifact runs at: any multiple of `multiple` in [min, max] per side, or `fixed` ones."""

    dynamic: bool = False
    multiple: int = 4
    min: int = 64
    max: int = 4096
    fixed: tuple[tuple[int, int], ...] = field(default_factory=tuple)

    @classmethod
    def from_manifest(cls, sizes: dict[str, Any] | None, shape_hw: tuple[int, int] | None) -> SizePolicy:
        """From the manifest input's "sizes" entry, else from the engine's input (H, W) (-1 = dynamic)."""
        if sizes:
            if sizes.get("dynamic"):
                return cls(
                    True,
                    int(sizes.get("multiple", 4)),
                    int(sizes.get("min", 64)),
                    int(sizes.get("max", 4096)),
                )
            fixed = tuple((int(h), int(w)) for h, w in sizes.get("fixed") or ())
            if fixed:
                return cls(fixed=fixed)
        if shape_hw is None or min(shape_hw) <= 0:
            return cls(dynamic=True)
        return cls(fixed=(tuple(shape_hw),))

    def to_json(self) -> dict[str, Any]:
        if self.dynamic:
            return {"dynamic": True, "multiple": self.multiple, "min": self.min, "max": self.max}
        return {"dynamic": False, "fixed": [list(size) for size in self.fixed]}


def _round_side(value: float, policy: SizePolicy) -> int:
    side = max(1, round(value / policy.multiple)) * policy.multiple
    low = math.ceil(policy.min / policy.multiple) * policy.multiple
    return int(min(max(side, low), policy.max - policy.max % policy.multiple))


def _nearest_fixed(
    fixed: Sequence[tuple[int, int]], target: tuple[float, float], limit_side: float
) -> tuple[int, int]:
    """The fixed size closest to `target`: least 2 |log aspect ratio| + |log side scale| (half log area), so a
    photo is neither stretched much nor blown up much (measured: README, "Full resolution"); sizes whose long
    side exceeds `limit_side` (the photo's, or the --max-side cap if smaller) are left out while a smaller one
    exists: a 720p frame never runs at 1080p, and --max-side caps per-size exports too."""
    smaller = [size for size in fixed if max(size) <= limit_side]
    fixed = smaller or fixed

    def distance(size: tuple[int, int]) -> float:
        aspect = abs(math.log((size[1] / size[0]) / (target[1] / target[0])))
        scale = abs(math.log((size[0] * size[1]) / (target[0] * target[1]))) / 2
        return 2 * aspect + scale

    return min(fixed, key=distance)


def working_size(policy: SizePolicy, size: tuple[int, int], max_side: int | None) -> tuple[int, int]:
    """The (H, W) to run a photo of `size` at: its own, capped to `max_side` on the long side (None: no cap)."""
    height, width = size
    scale = min(1.0, max_side / max(height, width)) if max_side else 1.0
    target = (max(height * scale, 1.0), max(width * scale, 1.0))
    if policy.dynamic:
        return _round_side(target[0], policy), _round_side(target[1], policy)
    if not policy.fixed:
        raise ModelLoadError("the artifact declares neither dynamic nor fixed input sizes")
    return _nearest_fixed(policy.fixed, target, max(target) + 0.5)


def _encoded_change(work_in: np.ndarray, work_out: np.ndarray) -> tuple[np.ndarray, int, int]:
    """The change `work_out - work_in` as uint8 `code` with `change = scale * code - offset`.

    Exact (scale 1, offset 128) when every change is within [-128, 127], else halved toward zero (scale 2,
    offset 256; odd changes lose one level, without bias): uint8 resamples fast in Pillow.
    """
    change = work_out.astype(np.int16)
    change -= work_in
    if change.min() >= -128 and change.max() <= 127:
        change += 128
        return change.astype(np.uint8), 1, 128
    change += 256 + (change < 0)
    change >>= 1
    return change.astype(np.uint8), 2, 256


def guided_upsample(
    photo: np.ndarray,
    work_in: np.ndarray,
    work_out: np.ndarray,
    rows: int = STRIP_ROWS,
    workers: int = 1,
    scaler: str = "pillow",
    then: Callable[[np.ndarray, int, int], None] | None = None,
) -> np.ndarray:
    """uint8 `photo + upsample(work_out - work_in)` at the photo's size (module docstring), row strip by strip.

    work_in: the photo resized to the working size; work_out: the model's output on it (same size).
    workers: threads sharing the strips (Pillow's resize and numpy release the GIL); same bytes for any.
    scaler: "pillow" (row strips, bounded memory: photos) or "swscale" (whole image at once: video frames).
    then: `then(output, top, bottom)` after each strip's rows are written, while they are in cache (e.g. the
    grain, `pocketgan.runtime.grain.rows_adder`); it may change those rows only. Pillow scaler only.
    """
    height = photo.shape[0]
    code, scale, offset = _encoded_change(work_in, work_out)
    if scaler == "swscale":
        if then is not None:
            raise ValueError("guided_upsample: `then` needs the pillow scaler")
        return _combine_swscale(photo, code, scale, offset)
    if scaler != "pillow":
        raise ValueError(f"scaler must be 'pillow' or 'swscale', got {scaler!r}")
    change_image = Image.fromarray(code)
    output = np.empty_like(photo)
    combine = partial(_combine_strips, photo, change_image, scale, offset, output, rows=rows, then=then)
    run_strips(combine, list(range(0, height, rows)), workers, "pocketgan-guided")
    return output


def run_strips(work: Callable[[list[int]], None], starts: list[int], workers: int, name: str) -> None:
    """`work(starts)` on one thread, or split into `workers` contiguous runs of strips on as many threads
    (Pillow's resize and numpy release the GIL); `work` writes disjoint rows, so the bytes are the same."""
    if workers <= 1 or len(starts) < 2:
        work(starts)
        return
    from concurrent.futures import ThreadPoolExecutor

    share = -(-len(starts) // workers)
    parts = [starts[i : i + share] for i in range(0, len(starts), share)]
    with ThreadPoolExecutor(max_workers=len(parts), thread_name_prefix=name) as pool:
        for future in [pool.submit(work, part) for part in parts]:
            future.result()


def _combine_swscale(photo: np.ndarray, code: np.ndarray, scale: int, offset: int) -> np.ndarray:
    """clip(photo + scale * code upsampled by FFmpeg's bilinear scaler - offset), the whole image at once."""
    import av

    height, width = photo.shape[:2]
    frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(code), format="rgb24")
    upsampled = frame.reformat(width=width, height=height, interpolation="BILINEAR").to_ndarray()
    values = np.multiply(upsampled, scale, dtype=np.int16)
    values += photo
    values -= offset
    np.clip(values, 0, 255, out=values)
    return values.astype(np.uint8)


def _combine_strips(
    photo: np.ndarray,
    change_image: Image.Image,
    scale: int,
    offset: int,
    output: np.ndarray,
    starts: list[int],
    rows: int,
    then: Callable[[np.ndarray, int, int], None] | None = None,
) -> None:
    """output[top:top+rows] = clip(photo + scale * upsampled change code - offset) for each top in `starts`,
    then `then(output, top, bottom)` on those rows."""
    height, width = photo.shape[:2]
    work_width, work_height = change_image.size
    step = work_height / height
    strip = np.empty((rows, width, 3), np.int16)
    for top in starts:
        bottom = min(height, top + rows)
        box = (0.0, top * step, float(work_width), bottom * step)
        upsampled = np.asarray(change_image.resize((width, bottom - top), _UPSAMPLE_FILTER, box=box))
        values = strip[: bottom - top]
        np.multiply(upsampled, scale, out=values, dtype=np.int16)
        values += photo[top:bottom]
        values -= offset
        np.clip(values, 0, 255, out=values)
        output[top:bottom] = values
        if then is not None:
            then(output, top, bottom)
