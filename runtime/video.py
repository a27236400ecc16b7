"""Video through a session, frame by frame: decode -> run -> encode, streamed, written atomically (torch-free).

Containers in and out: .mp4 and .mov (H.264, libx264), .webm (VP9, libvpx) and animated .gif; the output
has the input's container, frame count, timestamps (so its frame rate), size and display matrix (the
rotation a phone records), the audio stream copied packet for packet, the input's container metadata
(unless stripped) and the provenance label in the container's `comment` tag. One decoded frame, one
model output and the encoder's few frames of look-ahead are in memory at a time, so a long clip runs in
flat memory. PyAV (`av` on PyPI) brings its own FFmpeg: no system FFmpeg is used.

A clip that cannot be opened, or whose decoding stops before its last frame (a cut-off download), raises
ImageLoadError with the file name and one line of reason; nothing is written under the output's name.

Example: python -c "from pocketgan import runtime; from pocketgan.runtime.video import run_video;
                    run_video(runtime.load('dist/student.int8.tflite').run, 'clip.mp4', 'out/clip.mp4')"
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from fractions import Fraction
from functools import partial
from pathlib import Path

import numpy as np

from pocketgan.errors import ImageLoadError
from pocketgan.manifest import atomic_path
from pocketgan.runtime.provenance import DIGITAL_SOURCE_TYPE, ProvenanceLabel
from pocketgan.runtime.working import guided_upsample

log = logging.getLogger(__name__)

VIDEO_SUFFIXES = (".mp4", ".mov", ".webm")  # plus animated .gif (is_video)
CONTAINER_FORMATS = {".mp4": "mp4", ".mov": "mov", ".webm": "webm", ".gif": "gif"}
# Container keys the muxer writes itself; every other input tag is carried over (unless stripped).
FRAMES_IN_FLIGHT = 2  # model outputs waiting for the writer thread (memory: two frames)
# A clip without a frame count is taken as cut short when its video ends this much before the container's
# duration: (seconds, fraction of the duration), both exceeded (audio may outlast the video a little).
TRUNCATION_SLACK = (0.5, 0.1)
MUXER_KEYS = {"encoder", "major_brand", "minor_version", "compatible_brands", "comment"}


@dataclass(frozen=True)
class Encoder:
    """How one container's video is written: codec, pixel format, codec options, audio codec for new audio."""

    codec: str
    pix_fmt: str
    options: dict[str, str] = field(default_factory=dict)
    audio: str | None = None


# x264 at crf 18 is visually lossless; "veryfast" keeps up with the model on two cores. VP9 in realtime
# mode with row threading: libvpx's good-quality mode encodes 720p at ~2 frames/s.
_H264 = Encoder("libx264", "yuv420p", {"crf": "18", "preset": "veryfast"}, "aac")
ENCODERS = {
    ".mp4": _H264,
    ".mov": _H264,
    ".webm": Encoder(
        "libvpx-vp9",
        "yuv420p",
        {"deadline": "realtime", "cpu-used": "8", "row-mt": "1", "crf": "24", "b": "0"},
        "libopus",
    ),
    ".gif": Encoder("gif", "pal8"),
}


@dataclass(frozen=True)
class VideoInfo:
    """What a clip is: frames (decoded, or the container's count), rate, coded size, display matrix, audio."""

    frames: int
    fps: Fraction | None
    width: int
    height: int
    rotation: float = 0.0
    display_matrix: tuple[int, ...] | None = None
    has_audio: bool = False
    metadata: dict[str, str] = field(default_factory=dict)


def container_format(path: Path) -> str:
    """FFmpeg's muxer name for a clip's suffix."""
    return CONTAINER_FORMATS[Path(path).suffix.lower()]


def is_video(path: Path) -> bool:
    """An .mp4/.mov/.webm file, or a .gif with more than one frame."""
    suffix = path.suffix.lower()
    if suffix in VIDEO_SUFFIXES:
        return True
    if suffix != ".gif":
        return False
    from PIL import Image

    try:
        with Image.open(path) as image:
            return getattr(image, "n_frames", 1) > 1
    except (OSError, ValueError, SyntaxError):
        return False  # the image reader reports what is wrong with it


def _open(path: Path):
    import av

    if not path.exists():
        raise ImageLoadError(f"{path}: no such file")
    try:
        container = av.open(str(path))
    except (av.error.FFmpegError, UnicodeDecodeError) as exc:
        raise ImageLoadError(f"{path}: cannot decode ({_reason(exc)})") from None
    if not container.streams.video:
        container.close()
        raise ImageLoadError(f"{path}: no video stream")
    return container


def _reason(exc: BaseException) -> str:
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text.strip().splitlines()[0]


def _display_matrix(frame) -> tuple[int, ...] | None:
    for data in frame.side_data:
        if getattr(data.type, "name", "") == "DISPLAYMATRIX":
            return tuple(int(v) for v in np.frombuffer(bytes(data), dtype="<i4")[:9])
    return None


def probe(path: str | Path, count: bool = False) -> VideoInfo:
    """A clip's facts from its header and first frame; with `count`, every frame is decoded and counted."""
    import av

    path = Path(path)
    with _open(path) as container:
        stream = container.streams.video[0]
        frames, first = 0, None
        try:
            for frame in container.decode(stream):
                first = first or frame
                frames += 1
                if not count:
                    break
        except av.error.FFmpegError as exc:
            raise ImageLoadError(f"{path}: cannot decode ({_reason(exc)})") from None
        if first is None:
            raise ImageLoadError(f"{path}: no frame could be decoded")
        return VideoInfo(
            frames=frames if count else stream.frames,
            fps=stream.average_rate or stream.guessed_rate,
            width=stream.codec_context.width,
            height=stream.codec_context.height,
            rotation=float(first.rotation or 0.0),
            display_matrix=_display_matrix(first),
            has_audio=bool(container.streams.audio),
            metadata=dict(container.metadata),
        )


def label_text(label: ProvenanceLabel) -> str:
    """The container comment of a labelled clip: IPTC's AI-generated source type, model, version."""
    name = f" {label.model_name}" if label.model_name else ""
    return (
        f"AI-generated (DigitalSourceType {DIGITAL_SOURCE_TYPE}) by PocketGAN {label.version};"
        f" model{name} sha256 {label.model_sha256}"
    )


@dataclass(frozen=True)
class VideoOptions:
    """How a clip is written: label (None: none), whether input metadata is dropped, replacement."""

    label: ProvenanceLabel | None = None
    strip_metadata: bool = False
    replace: bool = False


def run_video(
    model: Callable[[np.ndarray], np.ndarray],
    source: str | Path,
    destination: str | Path,
    options: VideoOptions | None = None,
    on_frame: Callable[[int], None] | None = None,
) -> VideoInfo:
    """Apply `model` (uint8 (H, W, 3) -> same; a ClipModel's `start_frame` where it has one) to every frame
    of `source`, writing `destination` atomically.

    Returns the input's facts with the number of frames written. `on_frame(index)` is called after each.
    """
    source, destination = Path(source), Path(destination)
    options = options or VideoOptions()
    info = probe(source)
    with atomic_path(destination, replace=options.replace) as tmp:
        written = _transcode(model, source, tmp, info, options, on_frame)
    return VideoInfo(**{**info.__dict__, "frames": written})


def _transcode(model, source: Path, tmp: Path, info: VideoInfo, options: VideoOptions, on_frame) -> int:
    """Decode on this thread (FFmpeg's own threads decode ahead), run the model here, and hand each output to
    one writer thread that finishes it (a ClipModel's guided upsampling), converts, encodes and muxes it
    (numpy and FFmpeg release the GIL there, so it overlaps the next frame's model): at most
    FRAMES_IN_FLIGHT outputs wait for it, so memory stays flat."""
    import av

    encoder = ENCODERS[tmp.suffix.lower()]
    start_frame = getattr(model, "start_frame", None) or (
        lambda f: _ready(model(f.to_ndarray(format="rgb24")))
    )
    with (
        _open(source) as container,
        av.open(str(tmp), "w", format=container_format(tmp)) as output,
        ThreadPoolExecutor(max_workers=1, thread_name_prefix="pocketgan-encode") as writer,
    ):
        stream_in = container.streams.video[0]
        stream_in.thread_type = "AUTO"
        audio_in = (
            container.streams.audio[0] if container.streams.audio and tmp.suffix.lower() != ".gif" else None
        )
        stream_out = _video_stream(output, stream_in, info, encoder)
        audio_out = output.add_stream_from_template(audio_in) if audio_in is not None else None
        output.metadata.update(_metadata(info, options))
        pending: deque[Future] = deque()

        def write(packet_or_frame) -> None:
            if isinstance(packet_or_frame, av.Packet):
                output.mux(packet_or_frame)
            else:
                output.mux(stream_out.encode(_encodable(packet_or_frame, stream_out)))

        written, decoded_s = 0, 0.0
        frame_s = 1.0 / float(info.fps) if info.fps else 0.0
        try:
            for packet in container.demux(*[s for s in (stream_in, audio_in) if s is not None]):
                if packet.stream is audio_in:
                    if packet.dts is not None:
                        packet.stream = audio_out
                        pending.append(writer.submit(write, packet))
                    continue
                for frame in packet.decode():
                    styled = start_frame(frame)
                    pending.append(writer.submit(write, (styled, frame.pts, frame.time_base)))
                    decoded_s = max(decoded_s, (frame.time or 0.0) + frame_s)
                    while len(pending) > FRAMES_IN_FLIGHT:
                        pending.popleft().result()
                    if on_frame:
                        on_frame(written)
                    written += 1
            while pending:
                pending.popleft().result()
            output.mux(stream_out.encode())
        except av.error.FFmpegError as exc:
            raise ImageLoadError(f"{source}: cannot decode ({_reason(exc)})") from None
        finally:
            for future in pending:
                future.cancel()
        duration_s = container.duration / 1e6 if container.duration else None
        _check_complete(source, stream_in.frames, written, decoded_s, duration_s)
    if encoder.codec == "gif" and options.label is not None:
        add_gif_comment(tmp, label_text(options.label))
    return written


def _check_complete(
    source: Path, declared: int, written: int, decoded_s: float, duration_s: float | None
) -> None:
    """Refuse a clip cut short: fewer frames than its container declares (mp4, mov), or, where it declares
    none (webm, gif), decoded video ending more than TRUNCATION_SLACK before the container's duration."""
    if written == 0:
        raise ImageLoadError(f"{source}: no frame could be decoded")
    if declared and written < declared:
        raise ImageLoadError(f"{source}: truncated or corrupt: {written} of {declared} frames decoded")
    missing = (duration_s or 0.0) - decoded_s
    if not declared and missing > max(TRUNCATION_SLACK[0], TRUNCATION_SLACK[1] * (duration_s or 0.0)):
        raise ImageLoadError(
            f"{source}: truncated or corrupt: video ends at {decoded_s:.2f} s of {duration_s:.2f} s"
        )


def _video_stream(output, stream_in, info: VideoInfo, encoder: Encoder):
    stream = output.add_stream(encoder.codec, rate=info.fps or Fraction(25))
    stream.width, stream.height, stream.pix_fmt = info.width, info.height, encoder.pix_fmt
    stream.time_base = stream_in.time_base
    stream.codec_context.time_base = stream_in.time_base
    stream.options = dict(encoder.options)
    if info.display_matrix:
        stream.set_display_matrix(list(info.display_matrix))
    return stream


def _metadata(info: VideoInfo, options: VideoOptions) -> dict[str, str]:
    kept = (
        {}
        if options.strip_metadata
        else {k: v for k, v in info.metadata.items() if k.lower() not in MUXER_KEYS}
    )
    if options.label is not None:
        kept["comment"] = label_text(options.label)
    return kept


def _encodable(styled: tuple[Callable[[], np.ndarray], int, Fraction], stream_out):
    """(function finishing the model's output, pts, time base) -> a frame in the encoder's pixel format with
    the input's timestamp."""
    finish, pts, time_base = styled
    return encodable_frame(finish(), stream_out.pix_fmt, pts, time_base)


def encodable_frame(pixels: np.ndarray, pix_fmt: str, pts: int, time_base: Fraction):
    """uint8 (H, W, 3) RGB -> an av.VideoFrame in the encoder's pixel format, with its timestamp."""
    import av

    pixels = np.ascontiguousarray(pixels)
    if pix_fmt == "pal8":
        result = av.VideoFrame.from_ndarray(_palette_image(pixels), format="pal8")
    else:
        result = av.VideoFrame.from_ndarray(pixels, format="rgb24").reformat(format=pix_fmt)
    result.pts, result.time_base = pts, time_base
    return result


def _palette_image(pixels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 (H, W, 3) -> (palette indices (H, W), ARGB palette (256, 4)) for a GIF frame: an octree
    palette of the frame itself, not dithered (dither noise would flicker from frame to frame)."""
    from PIL import Image

    quantized = Image.fromarray(pixels).quantize(
        256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE
    )
    colours = np.frombuffer(bytes(quantized.getpalette()), np.uint8).reshape(-1, 3)
    palette = np.zeros((256, 4), np.uint8)
    palette[: len(colours), 0] = 255
    palette[: len(colours), 1:] = colours
    return np.asarray(quantized), palette


def add_gif_comment(path: Path, text: str) -> None:
    """Put a GIF comment extension (what FFmpeg's GIF muxer cannot write) after the header and global
    palette of the GIF at `path`, rewriting it in place (it is still the temporary file)."""
    data = path.read_bytes()
    packed = data[10]
    header_end = 13 + (3 * 2 ** ((packed & 7) + 1) if packed & 0x80 else 0)
    payload = text.encode("utf-8")
    blocks = b"".join(
        bytes([len(chunk)]) + chunk for chunk in (payload[i : i + 255] for i in range(0, len(payload), 255))
    )
    path.write_bytes(data[:header_end] + b"\x21\xfe" + blocks + b"\x00" + data[header_end:])


SMOOTHING = 0.9  # weight of the past in the context's moving average (a time constant of ~10 frames)
SCENE_CUT = 40.0  # mean change of the context thumbnail (8-bit steps) taken as a cut: the average restarts


class ClipModel:
    """The per-frame model of one clip: `session` on each frame, its context thumbnail (the image-level grade)
    smoothed over time by an exponential moving average restarted at a scene cut, so the grade does not
    jump from frame to frame; `smoothing=0` runs each frame on its own thumbnail (per frame).

    `run_frame` takes the decoded av.VideoFrame: FFmpeg's scaler (swscale) makes the working-size image
    straight from the decoded YUV and carries the change up (guided_upsample's "swscale"), ~20 ms less
    per 720p frame than Pillow (README, "Video"); the context thumbnail is the photo path's, so a frame
    and the same picture as a photo get the same grade. `__call__` takes uint8 RGB frames (as session.run).
    """

    def __init__(self, session, smoothing: float = SMOOTHING, scene_cut: float = SCENE_CUT):
        if not 0.0 <= smoothing < 1.0:
            raise ValueError(f"smoothing must be in [0, 1), got {smoothing}")
        self.session, self.smoothing, self.scene_cut = session, smoothing, scene_cut
        self.context: np.ndarray | None = None
        self.cuts = 0

    def _context_for(self, frame: np.ndarray) -> np.ndarray | None:
        """The smoothed context for uint8 RGB `frame` (None for artifacts without a context input)."""
        thumbnail = self.session.thumbnail(frame)
        if thumbnail is None:
            return None
        current = thumbnail.astype(np.float32)
        if self.context is None or float(np.abs(current - self.context).mean()) > self.scene_cut:
            self.cuts += self.context is not None
            self.context = current
        else:
            self.context *= np.float32(self.smoothing)
            self.context += np.float32(1.0 - self.smoothing) * current
        return self.context

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        return self.session.run(frame, thumbnail=self._context_for(frame), grain=0.0)  # no shimmering grain

    def run_frame(self, frame) -> np.ndarray:
        """One decoded av.VideoFrame -> uint8 (H, W, 3) RGB at its size (class docstring)."""
        return self.start_frame(frame)()

    def start_frame(self, frame) -> Callable[[], np.ndarray]:
        """`run_frame` in two steps: the model runs now; the returned function finishes the frame (the guided
        upsampling to its size). run_video calls it on its writer thread, beside the next frame's model."""
        pixels = frame.to_ndarray(format="rgb24")
        session = self.session
        size = pixels.shape[:2]
        work_size = session.working_size(size)
        if session.size_mode == "model" or work_size == size:
            return _ready(self(pixels))
        context = self._context_for(pixels)
        height, width = work_size
        work = frame.reformat(
            width=width, height=height, format="rgb24", interpolation="BICUBIC"
        ).to_ndarray()
        result = session.session_for(work_size).run_working(work, context)
        return partial(guided_upsample, pixels, work, result, scaler="swscale")


def _ready(pixels: np.ndarray) -> Callable[[], np.ndarray]:
    """A finished frame, as ClipModel.start_frame returns one."""
    return lambda: pixels
