"""Weight-free metrics that show what PSNR hides: the colour grade and the texture, judged apart (torch-free).

- `grade_error`: mean CIEDE2000 (ΔE00) between Gaussian low-passed images (σ = 4 px at 256², scaled with the
  image): the per-image colour grade, blind to grain and edges. Below ~1 is invisible, ~2-3 is a visible tint.
- `texture_swd`: sliced Wasserstein distance between the 7x7 RGB patch distributions of the images' Laplacian
  pyramids (three finest levels), as used to judge GAN output without a network (Karras et al. 2018): grain
  and edge statistics, blind to the grade (band-pass removes it). x 1e3, 0 for identical texture.
- `detail_energy_db`: 10 log10 of the finest Laplacian level's energy, output over reference: negative when
  grain or detail is missing, positive when it is invented or exaggerated.

Images are float HxWx3 in [-1, 1] (the fidelity module's convention). "Right grade, missing grain" scores a
low grade_error and a high texture_swd with a negative detail_energy_db; "right grain, wrong grade" the reverse.

Example: python -c "from pocketgan.evals.grade_texture import grade_texture; import numpy as np; x = np.zeros((64, 64, 3)); print(grade_texture(x + .1, x))"
"""

from __future__ import annotations

import numpy as np

GRADE_SIGMA_AT_256 = 4.0
PYRAMID_LEVELS = 3
PATCH = 7
PATCHES_PER_LEVEL = 4096
PROJECTIONS = 128
SEED = 20261205


def _low_pass(image: np.ndarray, sigma: float) -> np.ndarray:
    from scipy.ndimage import gaussian_filter

    return gaussian_filter(image, sigma=(sigma, sigma, 0), mode="reflect")


def grade_error(output: np.ndarray, reference: np.ndarray) -> float:
    """Mean ΔE00 between the low-passed images (the colour grade)."""
    from skimage.color import deltaE_ciede2000, rgb2lab

    sigma = GRADE_SIGMA_AT_256 * max(output.shape[:2]) / 256.0
    labs = [
        rgb2lab(np.clip(_low_pass((np.asarray(x, np.float64) + 1) / 2, sigma), 0, 1))
        for x in (output, reference)
    ]
    return float(np.mean(deltaE_ciede2000(labs[0], labs[1])))


def laplacian_pyramid(image: np.ndarray, levels: int = PYRAMID_LEVELS) -> list[np.ndarray]:
    """Band-pass levels, finest first: each is the image minus its blurred self, then halve and repeat."""
    bands, current = [], np.asarray(image, np.float64)
    for _ in range(levels):
        blurred = _low_pass(current, 1.0)
        bands.append(current - blurred)
        current = blurred[::2, ::2]
        if min(current.shape[:2]) < PATCH:
            break
    return bands


def _patches(band: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Up to PATCHES_PER_LEVEL random 7x7x3 patches of a band, flattened (n, 147), same positions for a seed."""
    height, width = band.shape[:2]
    count = min(PATCHES_PER_LEVEL, (height - PATCH + 1) * (width - PATCH + 1))
    rows = rng.integers(0, height - PATCH + 1, count)
    cols = rng.integers(0, width - PATCH + 1, count)
    offsets = np.arange(PATCH)
    windows = band[rows[:, None, None] + offsets[None, :, None], cols[:, None, None] + offsets[None, None, :]]
    return windows.reshape(count, -1)


def sliced_wasserstein(a: np.ndarray, b: np.ndarray, rng: np.random.Generator) -> float:
    """Mean over random unit directions of the 1-D Wasserstein distance of the projected samples (n, d)."""
    directions = rng.standard_normal((a.shape[1], PROJECTIONS))
    directions /= np.linalg.norm(directions, axis=0, keepdims=True)
    projected_a, projected_b = np.sort(a @ directions, axis=0), np.sort(b @ directions, axis=0)
    return float(np.mean(np.abs(projected_a - projected_b)))


def texture_swd(output: np.ndarray, reference: np.ndarray) -> float:
    """SWD (x 1e3) between Laplacian-pyramid patch distributions, averaged over the levels."""
    rng = np.random.default_rng(SEED)
    distances = []
    for band_out, band_ref in zip(laplacian_pyramid(output), laplacian_pyramid(reference), strict=True):
        positions = rng.bit_generator.state
        patches_out = _patches(band_out, rng)
        rng.bit_generator.state = positions  # the same positions in both images
        patches_ref = _patches(band_ref, rng)
        distances.append(sliced_wasserstein(patches_out, patches_ref, rng))
    return 1e3 * float(np.mean(distances))


def detail_energy_db(output: np.ndarray, reference: np.ndarray) -> float:
    """10 log10(finest-band energy of output / of reference)."""
    finest_out = laplacian_pyramid(output, 1)[0]
    finest_ref = laplacian_pyramid(reference, 1)[0]
    return float(10 * np.log10((np.mean(finest_out**2) + 1e-12) / (np.mean(finest_ref**2) + 1e-12)))


def grade_texture(output: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """All three for one image pair (float HxWx3 in [-1, 1])."""
    return {
        "grade_de2000": grade_error(output, reference),
        "texture_swd": texture_swd(output, reference),
        "detail_energy_db": detail_energy_db(output, reference),
    }
