"""Deterministic test clips with known camera motion, made from the photo set's test photos (torch-free).

A clip is a virtual camera over one photo: a pan across it, a slow zoom in, a small hand shake, seeded
sensor noise and an exposure change in its middle third. Each frame comes with the affine map from its
pixels to the photo's (`Frame.affine`, 3x3, continuous coordinates with pixel centres at +0.5), so the
motion between two frames is known exactly: `pocketgan.metrics.warping_error` compensates it. Only test
photos are used (photos.toml); the photos a clip needs are at most 1280x800, so a 1080p clip magnifies
them ~1.8x (the motion, noise and lighting are what the clips test, not fine detail).

Also here: `corrupt_copy` (bytes overwritten in the middle) and `truncated_copy` (the first part of the
file only), the broken inputs `pocketgan run` must refuse with one line.

Example: python -m pocketgan.data.clips --out build/clips --size 1280x720 --seconds 10 --audio
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Iterator
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import numpy as np
from PIL import Image

from pocketgan.errors import UsageError

DEFAULT_PHOTO = "kite"
SHAKE_PX = 2.0  # amplitude of the hand shake, in output pixels
NOISE_SIGMA = 2.0  # sensor noise, in 8-bit steps
EXPOSURE_GAIN = 1.25  # brightness factor reached in the lighting change
ZOOM = 0.85  # the crop shrinks to this fraction over the clip (a zoom in)
AUDIO_RATE = 48000
RENDER_VERSION = 2  # bump when render() changes its pixels (caches of model outputs on clips key on it)


@dataclass(frozen=True)
class ClipSpec:
    """What a clip shows: which test photo, size, length, rate and seed (everything else follows)."""

    photo: str = DEFAULT_PHOTO
    width: int = 1280
    height: int = 720
    frames: int = 30
    fps: int = 30
    seed: int = 0

    def __post_init__(self):
        if self.width < 16 or self.height < 16 or self.width % 2 or self.height % 2:
            raise UsageError(f"clip size must be even and at least 16x16, got {self.width}x{self.height}")
        if self.frames < 2 or self.fps < 1:
            raise UsageError(f"a clip needs at least 2 frames and 1 fps, got {self.frames} at {self.fps}")


@dataclass(frozen=True)
class Frame:
    """One rendered frame: uint8 (H, W, 3) pixels and the affine map (3x3) from its pixels to the photo."""

    pixels: np.ndarray
    affine: np.ndarray


def test_photo(name: str) -> np.ndarray:
    """A test-split photo of pocketgan.data by name (validation, training and reserved photos are refused)."""
    from pocketgan.data.photos import _read_split_file, split_photos

    chosen = [photo for photo in split_photos("test") if photo.name == name]
    if not chosen:
        names = ", ".join(photo.name for photo in split_photos("test"))
        raise UsageError(f"clips are made from test photos only ({names}); got {name!r}")
    return _read_split_file(chosen[0].path())


def camera_path(spec: ClipSpec, photo_size: tuple[int, int]) -> list[np.ndarray]:
    """The affine map (3x3) of every frame: pan left to right, zoom in, shake; deterministic in the seed."""
    photo_width, photo_height = photo_size
    start_scale = 0.8 * min(photo_width / spec.width, photo_height / spec.height)
    rng = np.random.default_rng(spec.seed)
    jitter = rng.normal(0.0, SHAKE_PX / 2, (spec.frames, 2))
    affines = []
    for index in range(spec.frames):
        progress = index / (spec.frames - 1)
        scale = start_scale * (1 - (1 - ZOOM) * progress)
        span_x = photo_width - scale * spec.width
        centre_x = photo_width / 2 + (progress - 0.5) * 0.8 * span_x
        centre_y = photo_height / 2 + 0.1 * (photo_height - scale * spec.height) * math.sin(
            2 * math.pi * progress
        )
        shake = SHAKE_PX * np.array([math.sin(index * 1.7), math.cos(index * 2.3)]) + jitter[index]
        origin_x = centre_x - scale * (spec.width / 2 - shake[0])
        origin_y = centre_y - scale * (spec.height / 2 - shake[1])
        affines.append(np.array([[scale, 0, origin_x], [0, scale, origin_y], [0, 0, 1]], dtype=np.float64))
    return affines


def exposure(spec: ClipSpec, index: int) -> float:
    """Brightness gain of frame `index`: 1, rising to EXPOSURE_GAIN over the middle third, then held."""
    progress = index / (spec.frames - 1)
    ramp = min(max((progress - 1 / 3) * 3, 0.0), 1.0)
    return 1.0 + (EXPOSURE_GAIN - 1.0) * ramp


def render(spec: ClipSpec, photo: np.ndarray | None = None) -> Iterator[Frame]:
    """The clip's frames, one at a time (memory: one frame), bit-identical for a given spec."""
    photo = test_photo(spec.photo) if photo is None else photo
    picture = Image.fromarray(photo)
    affines = camera_path(spec, picture.size)
    # A small clip of a large photo would point-sample it (aliasing that moves with the camera, which no
    # camera with a lens shows): the photo is first area-reduced so frames at most slightly minify it.
    reduction = max(1, int(min(affine[0, 0] for affine in affines)))
    picture = picture.reduce(reduction) if reduction > 1 else picture
    to_reduced = np.diag([1.0 / reduction, 1.0 / reduction, 1.0])
    for index, affine in enumerate(affines):
        coefficients = tuple((to_reduced @ affine)[:2].ravel())
        warped = picture.transform(
            (spec.width, spec.height), Image.Transform.AFFINE, coefficients, Image.BILINEAR
        )
        noise = np.random.default_rng([spec.seed, index]).normal(
            0.0, NOISE_SIGMA, (spec.height, spec.width, 3)
        )
        values = np.asarray(warped, dtype=np.float32) * np.float32(exposure(spec, index)) + noise.astype(
            np.float32
        )
        yield Frame(np.clip(np.rint(values), 0, 255).astype(np.uint8), affine)


def _tone(index: int, samples: int) -> np.ndarray:
    """A quiet 440 Hz tone, block `index` of `samples` (float32 (1, samples))."""
    t = (np.arange(samples) + index * samples) / AUDIO_RATE
    return (0.1 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]


def write_clip(spec: ClipSpec, path: str | Path, audio: bool = False, rotation: int = 0) -> Path:
    """Encode the clip to `path` (.mp4/.mov: H.264, .webm: VP9, .gif), with a tone when `audio`, and a
    display rotation (degrees counter-clockwise) in the container when `rotation` is not 0."""
    import av

    from pocketgan.runtime.video import ENCODERS, container_format, encodable_frame

    path = Path(path)
    encoder = ENCODERS.get(path.suffix.lower())
    if encoder is None:
        raise UsageError(f"{path}: clips are .mp4, .mov, .webm or .gif")
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w", format=container_format(path)) as output:
        video = output.add_stream(encoder.codec, rate=Fraction(spec.fps))
        video.width, video.height, video.pix_fmt = spec.width, spec.height, encoder.pix_fmt
        video.options = dict(encoder.options)
        if rotation:
            video.set_display_rotation(rotation)
        sound = output.add_stream(encoder.audio, rate=AUDIO_RATE, layout="mono") if audio else None
        for index, frame in enumerate(render(spec)):
            output.mux(
                video.encode(encodable_frame(frame.pixels, encoder.pix_fmt, index, Fraction(1, spec.fps)))
            )
        output.mux(video.encode())
        if sound is not None:
            _write_tone(output, sound, spec.frames / spec.fps)
    return path


def _write_tone(output, sound, seconds: float) -> None:
    import av

    block = sound.codec_context.frame_size or 1024
    for index in range(math.ceil(seconds * AUDIO_RATE / block)):
        frame = av.AudioFrame.from_ndarray(_tone(index, block), format="flt", layout="mono")
        frame.sample_rate, frame.pts = AUDIO_RATE, index * block
        output.mux(sound.encode(frame))
    output.mux(sound.encode())


def corrupt_copy(source: str | Path, path: str | Path) -> Path:
    """A copy of `source` with its header and middle overwritten by seeded random bytes."""
    data = bytearray(Path(source).read_bytes())
    rng = np.random.default_rng(0)
    for start in (0, len(data) // 2):
        length = min(4096, len(data) - start)
        data[start : start + length] = rng.integers(0, 256, length, dtype=np.uint8).tobytes()
    Path(path).write_bytes(bytes(data))
    return Path(path)


def truncated_copy(source: str | Path, path: str | Path, fraction: float = 0.5) -> Path:
    """The first `fraction` of `source`'s bytes (a download or a recording cut short)."""
    data = Path(source).read_bytes()
    Path(path).write_bytes(data[: max(1, int(len(data) * fraction))])
    return Path(path)


def parse_size(text: str) -> tuple[int, int]:
    """ "1280x720" -> (1280, 720)."""
    try:
        width, height = (int(part) for part in text.lower().split("x"))
    except ValueError:
        raise UsageError(f"expected WIDTHxHEIGHT such as 1280x720, got {text!r}") from None
    return width, height


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m pocketgan.data.clips", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--out", default="build/clips")
    parser.add_argument(
        "--size", action="append", help="WIDTHxHEIGHT, comma-separated (default 1280x720,1920x1080)"
    )
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--fps", type=int, default=30)
    parser.add_argument("--photo", default=DEFAULT_PHOTO)
    parser.add_argument("--audio", action="store_true", help="add a 440 Hz tone")
    parser.add_argument("--suffix", default=".mp4", choices=[".mp4", ".mov", ".webm", ".gif"])
    args = parser.parse_args(argv)
    out = Path(args.out)
    for size in ",".join(args.size or ["1280x720,1920x1080"]).split(","):
        width, height = parse_size(size)
        spec = ClipSpec(args.photo, width, height, round(args.seconds * args.fps), args.fps)
        clip = write_clip(spec, out / f"{args.photo}-{height}p{args.suffix}", audio=args.audio)
        print(clip)
    corrupt_copy(clip, out / f"corrupt{args.suffix}")
    truncated_copy(clip, out / f"truncated{args.suffix}")
    print(out / f"corrupt{args.suffix}", out / f"truncated{args.suffix}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
