"""Image metrics and the parity judgement, one definition each for every stage (torch-free).

PSNR, SSIM and max-abs (numpy, scikit-image), LPIPS and FID from local ONNX models (onnxruntime, scipy), and
the weight-free colour-grade error (CIEDE2000 of low-passed images) and texture statistics (sliced Wasserstein
distance of Laplacian-pyramid patches, detail energy) of `grade_texture`.

Images are float arrays in [-1, 1] (HxWx3 for SSIM; any shape for PSNR and max-abs), compared in float64
with data_range 2.0. Identical images have infinite PSNR; JSON has no inf, so `json_ready` writes
non-finite numbers as the strings "inf", "-inf", "nan" (the one encoding of every PocketGAN JSON file).

Example: python -c "import numpy as np; from pocketgan.metrics import psnr; print(psnr(np.zeros((8,8,3)), np.full((8,8,3), .1)))"
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

DATA_RANGE = 2.0
UNAVAILABLE_WEIGHTS = "unavailable: needs local weights (no downloads here)"


def _float64(image: np.ndarray) -> np.ndarray:
    return np.asarray(image, dtype=np.float64)


def psnr(output: np.ndarray, reference: np.ndarray) -> float:
    """PSNR in dB of `output` against `reference`; inf for identical arrays."""
    from skimage.metrics import peak_signal_noise_ratio

    output, reference = _float64(output), _float64(reference)
    if np.array_equal(output, reference):
        return math.inf
    return float(peak_signal_noise_ratio(reference, output, data_range=DATA_RANGE))


def ssim(output: np.ndarray, reference: np.ndarray) -> float:
    """SSIM of HxWx3 images (channels last); the window shrinks to fit images under 7 px."""
    from skimage.metrics import structural_similarity

    output, reference = _float64(output), _float64(reference)
    win_size = min(7, *[s if s % 2 else s - 1 for s in output.shape[:2]])
    return float(
        structural_similarity(reference, output, channel_axis=-1, data_range=DATA_RANGE, win_size=win_size)
    )


def max_abs(output: np.ndarray, reference: np.ndarray) -> float:
    return float(np.max(np.abs(_float64(output) - _float64(reference))))


def compare_images(
    outputs: Sequence[np.ndarray], references: Sequence[np.ndarray], names: Sequence[str]
) -> dict[str, Any]:
    """PSNR, SSIM and max-abs per HxWx3 image (by name), and their mean (max for max-abs)."""
    if not (len(outputs) == len(references) == len(names)):
        raise ValueError("outputs, references and names differ in length")
    per_image = {
        name: {"psnr_db": psnr(out, ref), "ssim": ssim(out, ref), "max_abs": max_abs(out, ref)}
        for name, out, ref in zip(names, outputs, references, strict=True)
    }
    return {
        "psnr_db": float(np.mean([v["psnr_db"] for v in per_image.values()])),
        "ssim": float(np.mean([v["ssim"] for v in per_image.values()])),
        "max_abs": float(max(v["max_abs"] for v in per_image.values())),
        "per_image": per_image,
    }


def lpips_distance(model_path: str | None, outputs, references) -> float | str:
    """Mean LPIPS from a local ONNX model taking (x, y) NCHW in [-1, 1]; no weights -> a reason string."""
    if not model_path:
        return UNAVAILABLE_WEIGHTS
    import onnxruntime as ort

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    if len(names) != 2:
        return f"unavailable: {model_path} must take two image inputs (x, y), it takes {len(names)}"
    distances = []
    for out, ref in zip(outputs, references, strict=True):
        feed = {names[0]: out.transpose(2, 0, 1)[None].astype(np.float32)}
        feed[names[1]] = ref.transpose(2, 0, 1)[None].astype(np.float32)
        distances.append(float(np.asarray(session.run(None, feed)[0]).mean()))
    return float(np.mean(distances))


def frechet_distance(model_path: str | None, outputs, references) -> float | str:
    """FID between two image sets from a local ONNX feature model (image NCHW [-1, 1] -> (1, D))."""
    if not model_path:
        return UNAVAILABLE_WEIGHTS
    if len(outputs) < 2:
        return "unavailable: FID needs at least 2 images"
    import onnxruntime as ort
    from scipy import linalg

    session = ort.InferenceSession(str(model_path), providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def features(images):
        rows = [session.run(None, {name: im.transpose(2, 0, 1)[None].astype(np.float32)})[0] for im in images]
        return np.concatenate([np.asarray(r, np.float64).reshape(1, -1) for r in rows])

    a, b = features(outputs), features(references)
    cov_a, cov_b = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    root = linalg.sqrtm(cov_a @ cov_b).real
    return float(np.sum((a.mean(0) - b.mean(0)) ** 2) + np.trace(cov_a + cov_b - 2 * root))


def rule_text(metric: str, bound: float) -> str:
    """A pass rule in words: "max_abs <= 0.001" or "psnr_db >= 35"."""
    return f"max_abs <= {bound:g}" if metric == "max_abs" else f"psnr_db >= {bound:g}"


def _stored(value: float) -> float:
    """The precision a manifest keeps: 6 decimals under 1, 3 above (non-finite values unchanged)."""
    if not math.isfinite(value):
        return value
    return round(value, 6) if abs(value) < 1 else round(value, 3)


def judge(output: np.ndarray, reference: np.ndarray, metric: str, bound: float) -> dict[str, Any]:
    """The parity judgement: {"psnr_db", "max_abs", "passed", "threshold"} of `output` against `reference`.

    `metric` "max_abs" passes when max-abs <= bound, "psnr_db" when PSNR >= bound; non-finite output
    fails (psnr -inf, max-abs inf). A shape mismatch fails with "error" and no numbers.
    """
    output, reference = _float64(output), _float64(reference)
    threshold = rule_text(metric, bound)
    if output.shape != reference.shape:
        error = f"shape {output.shape} != reference {reference.shape}"
        return {"psnr_db": None, "max_abs": None, "passed": False, "threshold": threshold, "error": error}
    finite = bool(np.isfinite(output).all())
    distance = max_abs(output, reference) if finite else math.inf
    score = psnr(output, reference) if finite else -math.inf
    value = distance if metric == "max_abs" else score
    passed = finite and (value <= bound if metric == "max_abs" else value >= bound)
    return {
        "psnr_db": _stored(score),
        "max_abs": _stored(distance),
        "passed": bool(passed),
        "threshold": threshold,
    }


def json_ready(value: Any) -> Any:
    """`value` with every non-finite float written as its string ("inf", "-inf", "nan"), for JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: json_ready(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_ready(v) for v in value]
    return value


# ---- colour grade and texture (issue 20) ----------------------------------------------------------------
# Weight-free metrics that show what PSNR hides: the colour grade and the texture, judged apart (torch-free).
#
# - `grade_error`: mean CIEDE2000 (ΔE00) between Gaussian low-passed images (σ = 4 px at 256², scaled with the
#   image): the per-image colour grade, blind to grain and edges. Below ~1 is invisible, ~2-3 is a visible tint.
# - `texture_swd`: sliced Wasserstein distance between the 7x7 RGB patch distributions of the images' Laplacian
#   pyramids (three finest levels), as used to judge GAN output without a network (Karras et al. 2018): grain
#   and edge statistics, blind to the grade (band-pass removes it). x 1e3, 0 for identical texture.
# - `detail_energy_db`: 10 log10 of the finest Laplacian level's energy, output over reference: negative when
#   grain or detail is missing, positive when it is invented or exaggerated.
#
# Images are float HxWx3 in [-1, 1] (this module's convention). "Right grade, missing grain" scores a
# low grade_error and a high texture_swd with a negative detail_energy_db; "right grain, wrong grade" the reverse.
#
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
    directions = directions.astype(a.dtype, copy=False)  # float32 patches: float32 projections
    projected_a, projected_b = np.sort(a @ directions, axis=0), np.sort(b @ directions, axis=0)
    return float(np.mean(np.abs(projected_a - projected_b), dtype=np.float64))


def texture_swd(output: np.ndarray, reference: np.ndarray) -> float:
    """SWD (x 1e3) between Laplacian-pyramid patch distributions, averaged over the levels."""
    rng = np.random.default_rng(SEED)
    distances = []
    for band_out, band_ref in zip(laplacian_pyramid(output), laplacian_pyramid(reference), strict=True):
        positions = rng.bit_generator.state
        patches_out = _patches(band_out.astype(np.float32), rng)  # float32: half the time, same to ~1e-6
        rng.bit_generator.state = positions  # the same positions in both images
        patches_ref = _patches(band_ref.astype(np.float32), rng)
        distances.append(sliced_wasserstein(patches_out, patches_ref, rng))
    return 1e3 * float(np.mean(distances))


def detail_energy_db(output: np.ndarray, reference: np.ndarray) -> float:
    """10 log10(finest-band energy of output / of reference)."""
    finest_out = laplacian_pyramid(output, 1)[0]
    finest_ref = laplacian_pyramid(reference, 1)[0]
    return float(10 * np.log10((np.mean(finest_out**2) + 1e-12) / (np.mean(finest_ref**2) + 1e-12)))


def gradient_energy(image: np.ndarray) -> float:
    """Mean squared difference of horizontally and vertically adjacent pixels (float HxWx3): fine detail."""
    image = np.asarray(image, np.float32)
    horizontal = np.diff(image, axis=1)
    vertical = np.diff(image, axis=0)
    return float(np.mean(horizontal * horizontal) + np.mean(vertical * vertical))


def detail_ratio(output: np.ndarray, reference: np.ndarray) -> float:
    """gradient_energy(output) / gradient_energy(reference): 1 keeps the reference's detail, ~0.1 is blurred."""
    return gradient_energy(output) / max(gradient_energy(reference), 1e-12)


def grade_texture(output: np.ndarray, reference: np.ndarray) -> dict[str, float]:
    """All three for one image pair (float HxWx3 in [-1, 1])."""
    return {
        "grade_de2000": grade_error(output, reference),
        "texture_swd": texture_swd(output, reference),
        "detail_energy_db": detail_energy_db(output, reference),
    }


# -- temporal stability (video) -------------------------------------------------------------------------------
# Frames are uint8 or float (H, W, 3) in one unit (8-bit steps for uint8); the motion between frames is known
# (pocketgan.data.clips: each frame's 3x3 affine map from its pixels to the photo's, continuous coordinates
# with pixel centres at +0.5), so the previous output can be warped onto the current frame exactly.


def warp_previous(
    previous: np.ndarray, previous_affine: np.ndarray, affine: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """`previous` frame warped onto the current one (bilinear) and the mask of pixels it covers.

    A current pixel maps to the photo by `affine`, and back into the previous frame by the inverse of
    `previous_affine`; pixels that fall outside the previous frame are not covered (mask False).
    """
    height, width = previous.shape[:2]
    mapping = np.linalg.inv(previous_affine) @ affine
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float64) + 0.5
    x = mapping[0, 0] * cols + mapping[0, 1] * rows + mapping[0, 2] - 0.5
    y = mapping[1, 0] * cols + mapping[1, 1] * rows + mapping[1, 2] - 0.5
    valid = (x >= 0) & (y >= 0) & (x <= width - 1) & (y <= height - 1)
    x0 = np.clip(np.floor(x).astype(np.int64), 0, width - 2)
    y0 = np.clip(np.floor(y).astype(np.int64), 0, height - 2)
    fx, fy = (np.clip(x - x0, 0, 1)[..., None], np.clip(y - y0, 0, 1)[..., None])
    source = np.asarray(previous, dtype=np.float64)
    top = source[y0, x0] * (1 - fx) + source[y0, x0 + 1] * fx
    bottom = source[y0 + 1, x0] * (1 - fx) + source[y0 + 1, x0 + 1] * fx
    return top * (1 - fy) + bottom * fy, valid


def warping_error(frames: Sequence[np.ndarray], affines: Sequence[np.ndarray], border: int = 2) -> float:
    """Mean absolute change between consecutive frames after compensating the known motion (per pair, over
    the pixels both frames see, `border` pixels in from the edges), averaged over the pairs."""
    if len(frames) != len(affines) or len(frames) < 2:
        raise ValueError(f"need at least 2 frames with one affine each, got {len(frames)} and {len(affines)}")
    errors = []
    for index in range(1, len(frames)):
        warped, valid = warp_previous(frames[index - 1], affines[index - 1], affines[index])
        if border:
            valid[:border], valid[-border:], valid[:, :border], valid[:, -border:] = (
                False,
                False,
                False,
                False,
            )
        change = np.abs(np.asarray(frames[index], dtype=np.float64) - warped)[valid]
        errors.append(float(change.mean()) if change.size else 0.0)
    return float(np.mean(errors))


def flicker(
    outputs: Sequence[np.ndarray], reference_outputs: Sequence[np.ndarray], affines: Sequence[np.ndarray]
) -> dict[str, float]:
    """Temporal stability of `outputs` against a reference's on the same frames (e.g. student vs teacher).

    `ratio` = warping_error(outputs) / warping_error(reference_outputs): 1 flickers like the reference,
    above 1 more (the per-frame grade jumps, noise is amplified), below 1 less.
    """
    own, reference = warping_error(outputs, affines), warping_error(reference_outputs, affines)
    return {
        "warping_error": own,
        "reference_warping_error": reference,
        "ratio": own / reference if reference > 0 else math.inf,
    }
