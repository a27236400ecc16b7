"""The teacher's film grain, synthesised at the output's own pixel scale (torch-free).

The CycleGAN teacher adds a fine grain wherever it runs: in flat areas (sky, skin, a blurred background) its
output carries 2–5 levels of pixel-scale texture that the photo does not have. The student's change is
smooth, so at full size its output lacks it (detail ratio 0.02–0.3 on flat photos). The grain is a
chaotic function of the input, which no small model reproduces pixel for pixel; what can be matched is
its statistics, as film-grain synthesis in video codecs does (AV1's grain table: a noise pattern and an
intensity scaling). `GrainModel` holds those statistics, fitted on the teacher's outputs of training
photos (`pocketgan.distill.grain`):

- `kernel`: a small filter that turns white noise into noise with the teacher grain's spatial spectrum
  (band-pass, with a peak at a period of 4 pixels from its stride-2 upsampling);
- `colour`: a 3x3 mixing matrix giving its channel correlation (mostly luminance grain, some colour);
- `luma_levels`/`std_levels`: its standard deviation, in pixel levels, by output luminance (piecewise linear).

`add_grain` adds `sqrt(max(0, (strength x std(luminance))² - detail)) x pattern` to a uint8 image, per
16x16 block: `luminance` its mean, `detail` the gradient energy of its luminance expressed as grain
variance: flat areas get the teacher's grain, areas that already carry that much fine detail get none
(uncorrelated noise on detail only costs fidelity). A model fitted against a student's own outputs
(`--artifact` in pocketgan.distill.grain; the zoo student's is) carries a deficit table instead: the std
by the block's mean luminance and detail, measured as the teacher's extra detail over that student's on
training photos, which puts grain on moderately detailed areas too (strength scales it). The pattern is a
seeded template tiled in 64x64 blocks at seeded offsets: it depends only on the pixel position, so the
same photo gives the same bytes, in row strips (bounded memory) and on any number of threads.

Example: python -c "import numpy as np; from pocketgan.runtime.grain import GrainModel, add_grain;
  g = GrainModel.unit(); print(add_grain(np.full((64, 64, 3), 128, np.uint8), g).std())"
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from functools import lru_cache, partial
from typing import Any

import numpy as np

from pocketgan.errors import ModelLoadError
from pocketgan.runtime.working import run_strips

TEMPLATE_SIDE = 256  # side of the seeded grain template (pixels)
BLOCK = 64  # the template is laid down in blocks of this side, each at its own seeded offset
STRIP_ROWS = BLOCK
LUMA_BIN = 16  # levels per luminance row of deficit_std
DETAIL_BLOCK = 16  # side of the blocks whose own detail is subtracted from the grain (divides BLOCK)


@dataclass(frozen=True)
class GrainModel:
    """Grain statistics of a teacher (module docstring). Saved as the manifest's "grain" section."""

    kernel: tuple[tuple[float, ...], ...]  # (k, k), odd k: white noise -> grain spectrum
    colour: tuple[tuple[float, ...], ...]  # (3, 3): independent channels -> correlated RGB grain
    luma_levels: tuple[float, ...]  # output luminance (0..255), increasing
    std_levels: tuple[float, ...]  # grain standard deviation (pixel levels) at each luma_levels
    seed: int = 0
    fitted_on: dict[str, Any] = field(default_factory=dict, compare=False)  # provenance of the fit
    # Optional, fitted against a student's outputs: grain std (levels) by the block's mean luminance (rows:
    # LUMA_BIN-level bins) and its own detail (columns: bins between detail_edges); replaces the table and
    # the subtraction rule (module docstring) when present.
    detail_edges: tuple[float, ...] = ()
    deficit_std: tuple[tuple[float, ...], ...] = ()

    def __post_init__(self):
        kernel = np.asarray(self.kernel, np.float64)
        if kernel.ndim != 2 or kernel.shape[0] != kernel.shape[1] or kernel.shape[0] % 2 == 0:
            raise ModelLoadError(f"grain kernel must be square with an odd side, got {kernel.shape}")
        if np.asarray(self.colour).shape != (3, 3):
            raise ModelLoadError(f"grain colour matrix must be 3x3, got {np.asarray(self.colour).shape}")
        luma = np.asarray(self.luma_levels, np.float64)
        if luma.ndim != 1 or len(luma) < 2 or len(luma) != len(self.std_levels) or np.any(np.diff(luma) <= 0):
            raise ModelLoadError("grain luma_levels must increase and match std_levels in length (>= 2)")
        if min(self.std_levels) < 0:
            raise ModelLoadError("grain std_levels must be non-negative")
        if self.deficit_std:
            deficit = np.asarray(self.deficit_std, np.float64)
            edges = np.asarray(self.detail_edges, np.float64)
            if deficit.shape != (256 // LUMA_BIN, len(edges) - 1) or np.any(np.diff(edges) <= 0):
                raise ModelLoadError(
                    f"grain deficit_std must be {256 // LUMA_BIN} x (len(detail_edges) - 1) with increasing "
                    f"edges, got {deficit.shape} and {len(edges)} edges"
                )
            if deficit.min() < 0:
                raise ModelLoadError("grain deficit_std must be non-negative")

    @classmethod
    def unit(cls, std: float = 4.0, seed: int = 0) -> GrainModel:
        """White luminance grain of `std` levels everywhere: for tests and as a plain example."""
        return cls(((1.0,),), ((1.0, 0, 0), (1.0, 0, 0), (1.0, 0, 0)), (0.0, 255.0), (std, std), seed)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GrainModel:
        try:
            return cls(
                kernel=tuple(tuple(float(v) for v in row) for row in data["kernel"]),
                colour=tuple(tuple(float(v) for v in row) for row in data["colour"]),
                luma_levels=tuple(float(v) for v in data["luma_levels"]),
                std_levels=tuple(float(v) for v in data["std_levels"]),
                seed=int(data.get("seed", 0)),
                fitted_on=dict(data.get("fitted_on", {})),
                detail_edges=tuple(float(v) for v in data.get("detail_edges", ())),
                deficit_std=tuple(tuple(float(v) for v in row) for row in data.get("deficit_std", ())),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ModelLoadError(f"unreadable grain section: {exc}") from exc

    def std_table(self, strength: float = 1.0) -> np.ndarray:
        """float32 (256,): grain standard deviation (levels) for each output luminance 0..255."""
        table = np.interp(np.arange(256), self.luma_levels, self.std_levels) * strength
        return table.astype(np.float32)

    def variance_table(self, strength: float = 1.0) -> np.ndarray:
        """float32 (256,): the std table squared."""
        return self.std_table(strength) ** 2


@lru_cache(maxsize=4)
def _template(model: GrainModel) -> np.ndarray:
    """float32 (TEMPLATE_SIDE, TEMPLATE_SIDE, 3), unit variance per channel before colour mixing: white
    noise filtered (circularly, so the template tiles) by the kernel, mixed across channels."""
    rng = np.random.default_rng(model.seed)
    side = TEMPLATE_SIDE
    kernel = np.asarray(model.kernel, np.float64)
    padded = np.zeros((side, side))
    k = kernel.shape[0]
    padded[:k, :k] = kernel
    padded = np.roll(padded, (-(k // 2), -(k // 2)), axis=(0, 1))  # kernel centred on (0, 0)
    response = np.fft.rfft2(padded)
    channels = []
    for _ in range(3):
        noise = np.fft.irfft2(np.fft.rfft2(rng.standard_normal((side, side))) * response, s=(side, side))
        channels.append(noise / noise.std())
    pattern = np.stack(channels, axis=-1) @ np.asarray(model.colour, np.float64).T
    return pattern.astype(np.float32)


def _block_offsets(model: GrainModel, block_row: int, blocks: int) -> np.ndarray:
    """(blocks, 2) template offsets of one row of blocks: a function of (seed, row) only."""
    rng = np.random.default_rng((model.seed, block_row))
    return rng.integers(0, TEMPLATE_SIDE - BLOCK + 1, size=(blocks, 2))


def grain_pattern(model: GrainModel, top: int, rows: int, width: int) -> np.ndarray:
    """float32 (rows, width, 3): the pattern for image rows [top, top + rows), top a multiple of BLOCK."""
    if top % BLOCK:
        raise ValueError(f"top must be a multiple of {BLOCK}, got {top}")
    template = _template(model)
    out = np.empty((rows, width, 3), np.float32)
    blocks = -(-width // BLOCK)
    for start in range(0, rows, BLOCK):
        height = min(BLOCK, rows - start)
        offsets = _block_offsets(model, (top + start) // BLOCK, blocks)
        for column, (y, x) in enumerate(offsets):
            left = column * BLOCK
            right = min(width, left + BLOCK)
            out[start : start + height, left:right] = template[y : y + height, x : x + right - left]
    return out


def luminance(pixels: np.ndarray) -> np.ndarray:
    """float32 (rows, W): (R + 2G + B) / 4, the luminance the std table is indexed by."""
    total = pixels[..., 1].astype(np.float32)
    total *= 2
    total += pixels[..., 0]
    total += pixels[..., 2]
    total *= 0.25
    return total


@lru_cache(maxsize=4)
def gradient_per_variance(model: GrainModel) -> float:
    """Gradient energy of the pattern's luminance (mean squared neighbour difference, both directions) per
    unit of its variance: turns an image's detail into the grain variance that would give as much."""
    pattern = _template(model)
    luma = luminance(pattern)
    across = np.mean(np.diff(luma, axis=1) ** 2) + np.mean(np.diff(luma, axis=0) ** 2)
    return float(across / np.mean(pattern**2))


def _block_means(values: np.ndarray, block_rows: int, block_columns: int, blocks: tuple[int, int]):
    """float32 `blocks`-shaped means of `values` over blocks of block_rows x block_columns (the last ones
    partial; blocks with no values repeat their neighbour's). Summed by reshaping, rows then columns (6x
    faster than np.add.reduceat; the sums of grain statistics are exact in float32 either way)."""
    rows, width = values.shape
    if rows == 0 or width == 0:
        return np.zeros(blocks, np.float32)
    sums = _block_sums(_block_sums(values, block_rows).T, block_columns).T
    row_starts, column_starts = np.arange(0, rows, block_rows), np.arange(0, width, block_columns)
    counts = np.outer(np.diff(row_starts, append=rows), np.diff(column_starts, append=width))
    means = (sums / counts).astype(np.float32)
    return np.pad(means, [(0, blocks[0] - means.shape[0]), (0, blocks[1] - means.shape[1])], mode="edge")


def _block_sums(values: np.ndarray, size: int) -> np.ndarray:
    """Sums of `values` (rows, W) over consecutive groups of `size` rows (the last one partial):
    (ceil(rows / size), W)."""
    rows = values.shape[0]
    whole = rows // size
    sums = np.empty((-(-rows // size), values.shape[1]), values.dtype)
    if whole:
        sums[:whole] = values[: whole * size].reshape(whole, size, -1).sum(axis=1)
    if whole < len(sums):
        sums[whole] = values[whole * size :].sum(axis=0)
    return sums


def block_statistics(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mean luminance, detail) of each DETAIL_BLOCK² block of a strip of uint8 (or float levels) RGB, float32:
    detail is the mean gradient energy of the luminance (squared neighbour differences, both directions),
    sampled on every other row (horizontal differences) and column (vertical ones). Only the strip's own
    pixels are read, so strips can be written in place in any order."""
    rows, width = pixels.shape[:2]
    blocks = (-(-rows // DETAIL_BLOCK), -(-width // DETAIL_BLOCK))
    half = DETAIL_BLOCK // 2
    luma = luminance(pixels)
    across = np.square(np.diff(luma[::2], axis=1))  # (rows / 2, W - 1)
    down = np.square(np.diff(luma[:, ::2], axis=0))  # (rows - 1, W / 2)
    detail = _block_means(across, half, DETAIL_BLOCK, blocks) + _block_means(down, DETAIL_BLOCK, half, blocks)
    return _block_means(luma[::2, ::2], half, half, blocks), detail


def _block_amplitude(pixels: np.ndarray, model: GrainModel, table: np.ndarray, strength: float) -> np.ndarray:
    """float32 per-block grain std. With a deficit table: its entry for the block's mean luminance and
    detail. Without: the table's variance at the block's mean luminance less the block's own detail (as
    grain variance), floored at 0."""
    mean_luma, detail = block_statistics(pixels)
    luma_index = np.clip(np.rint(mean_luma), 0, 255).astype(np.intp)
    if model.deficit_std:
        columns = np.searchsorted(np.asarray(model.detail_edges[1:-1], np.float32), detail, side="right")
        deficit = np.asarray(model.deficit_std, np.float32)
        return deficit[luma_index // LUMA_BIN, columns] * np.float32(strength)
    variance = table[luma_index]
    variance -= detail / gradient_per_variance(model)
    return np.sqrt(np.maximum(variance, 0))


def _scale_by_blocks(values: np.ndarray, blocks: np.ndarray) -> None:
    """values (rows, W, 3) *= blocks (ceil(rows / DETAIL_BLOCK), ceil(W / DETAIL_BLOCK)), each block's factor
    on its DETAIL_BLOCK² pixels, in place (no full-size array of factors)."""
    rows, width = values.shape[:2]
    whole = width // DETAIL_BLOCK  # block columns without the partial last one
    for index, start in enumerate(range(0, rows, DETAIL_BLOCK)):
        band = values[start : start + DETAIL_BLOCK]  # (<= 16, W, 3)
        if whole:
            tiles = band[:, : whole * DETAIL_BLOCK].reshape(len(band), whole, DETAIL_BLOCK, 3)  # a view
            tiles *= blocks[index, :whole, None, None]
        if whole * DETAIL_BLOCK < width:
            band[:, whole * DETAIL_BLOCK :] *= blocks[index, whole]


def _add_strips(image, model, table, strength, output, starts) -> None:
    height, width = image.shape[:2]
    for top in starts:
        bottom = min(height, top + STRIP_ROWS)
        pixels = image[top:bottom]
        blocks = _block_amplitude(pixels, model, table, strength)
        values = grain_pattern(model, top, bottom - top, width)
        _scale_by_blocks(values, blocks)
        values += pixels
        values += 0.5  # then truncation rounds to nearest
        np.clip(values, 0, 255, out=values)
        output[top:bottom] = values


def rows_adder(model: GrainModel, strength: float = 1.0) -> Callable[[np.ndarray, int, int], None]:
    """`add(image, top, bottom)`: `add_grain(..., in_place=True)` on rows [top, bottom) of a uint8 image alone,
    top a multiple of STRIP_ROWS: the same bytes as the whole image at once, so a caller that writes an image
    strip by strip (guided upsampling) adds the grain to each strip while it is in cache."""
    if strength <= 0:
        raise ValueError(f"grain strength must be > 0 here, got {strength}")
    table = model.variance_table(strength)

    def add(image: np.ndarray, top: int, bottom: int) -> None:
        if top % STRIP_ROWS:
            raise ValueError(f"top must be a multiple of {STRIP_ROWS}, got {top}")
        _add_strips(image[:bottom], model, table, strength, image, list(range(top, bottom, STRIP_ROWS)))

    return add


def add_grain(
    image: np.ndarray, model: GrainModel, strength: float = 1.0, workers: int = 1, in_place: bool = False
) -> np.ndarray:
    """uint8 (H, W, 3) -> uint8 (H, W, 3) with the model's grain (strength x its std) added; 0 returns image.
    in_place: write into `image` (no second full-size array: a 12 MP photo is 36 MB)."""
    if strength < 0:
        raise ValueError(f"grain strength must be >= 0, got {strength}")
    if strength == 0:
        return image
    table = model.variance_table(strength)
    output = image if in_place else np.empty_like(image)
    add = partial(_add_strips, image, model, table, strength, output)
    run_strips(add, list(range(0, image.shape[0], STRIP_ROWS)), workers, "pocketgan-grain")
    return output
