"""What `pocketgan run` does with its inputs: jobs with collision-free output names, run without losing or
clobbering a file (torch-free).

Naming: an output mirrors its input's path relative to the folder argument it came from (a glob's folder is
the part before its first wildcard); a file argument keeps its name. Outputs that would still share a name
(three `x.jpg` from three folders, or `a.png` and `a.webp` in one) get `-2`, `-3`, ... before the suffix, in
argument order, skipping names that another input has by right; names that differ only in case count as
the same, so outputs stay distinct on macOS and Windows disks too.

Writing: every output is written to a temporary file beside it, then linked to its name, which fails rather
than replace a file that exists, even one another `run` wrote a moment before (pocketgan.manifest.
atomic_path). Such an output is skipped, with a line saying so, unless `--overwrite`. An output that would
replace the input it is made from is skipped unless `--in-place`; one that would replace another input of
the run is always skipped (that input is still to be read, or was read as itself).

Example: python -c "from pocketgan.runtime.batch import collect_jobs; print(collect_jobs(('photos',), 'out', 'png'))"
"""

from __future__ import annotations

import glob
import os
import sys
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from pocketgan.errors import ImageLoadError, PocketGANError
from pocketgan.images import read_photo
from pocketgan.manifest import remove_stale_temps
from pocketgan.runtime.provenance import ProvenanceLabel, write_image
from pocketgan.runtime.video import VIDEO_SUFFIXES, ClipModel, VideoOptions, is_video, run_video

GLOB_CHARS = "*?["
# What a broken input or a failed write raises: reported on one line, the run goes on.
RUN_ERRORS = (PocketGANError, OSError, ValueError, MemoryError, Image.DecompressionBombError)
WRITES_IN_FLIGHT = 2  # outputs handed to the writer thread and not yet written (memory: two images)
JPEG_SUFFIXES = (".jpg", ".jpeg")
EXISTS = "exists"
IS_INPUT = "input file"


@dataclass(frozen=True)
class Job:
    """One input file and where its output goes (relative to the output folder)."""

    source: Path
    output: Path


@dataclass
class Inputs:
    """The jobs of a run, the arguments that matched nothing, and files in folders that are not images."""

    jobs: list[Job] = field(default_factory=list)
    failures: list[tuple[str, str]] = field(default_factory=list)
    unsupported: list[Path] = field(default_factory=list)


@dataclass(frozen=True)
class WriteOptions:
    """How outputs are written: format, provenance label, and what may be replaced or kept."""

    fmt: str | None = None  # None: by the output's suffix (output_name)
    label: ProvenanceLabel | None = None  # None: no AI-generated label
    overwrite: bool = False
    in_place: bool = False
    strip_metadata: bool = False
    # Makes the per-frame model of one clip (fresh state per clip, e.g. a smoothed context); None: session.run.
    clip_model: Callable[[], Callable[[np.ndarray], np.ndarray]] | None = None


@dataclass
class RunReport:
    written: list[Path] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)  # (source, EXISTS or IS_INPUT)
    failed: list[tuple[str, str]] = field(default_factory=list)
    first_frame_only: list[tuple[Path, int]] = field(default_factory=list)  # (source, frames in it)
    unsupported: list[Path] = field(default_factory=list)

    def summary(self, outdir: Path, backend: str) -> str:
        """One line: what was written, skipped (and why), failed, cut to one frame, left out."""
        skipped = f"{len(self.skipped)} skipped"
        if self.skipped:
            reasons = Counter(reason for _, reason in self.skipped)
            skipped += " (" + ", ".join(f"{count} {reason}" for reason, count in reasons.items()) + ")"
        parts = [f"{len(self.written)} written to {outdir}", skipped, f"{len(self.failed)} failed"]
        if self.first_frame_only:
            parts.append(f"{len(self.first_frame_only)} animated (first frame only)")
        if self.unsupported:
            parts.append(f"{len(self.unsupported)} not images (not run)")
        return ", ".join(parts) + f" ({backend})"

    def to_json(self) -> dict:
        """The run as JSON-able lists: written outputs, skipped and failed inputs (with why), and the rest."""
        return {
            "written": [str(path) for path in self.written],
            "skipped": [{"input": str(source), "reason": reason} for source, reason in self.skipped],
            "failed": [{"input": source, "error": error} for source, error in self.failed],
            "first_frame_only": [{"input": str(source), "frames": n} for source, n in self.first_frame_only],
            "not_images": [str(path) for path in self.unsupported],
        }


def output_name(path: Path, fmt: str | None, source: Path | None = None) -> Path:
    """`path` with the output's suffix: a video (and an animated GIF) keeps its container; else `.fmt` when
    a format is chosen; else a JPEG stays a JPEG (written at quality 95, far quicker to encode than PNG)
    and anything else becomes PNG (lossless)."""
    if is_video(source or path):
        return path
    if fmt:
        return path.with_suffix(f".{fmt}")
    suffix = path.suffix.lower()
    return path.with_suffix(suffix if suffix in JPEG_SUFFIXES else ".png")


def _inside(path: Path, folder: Path) -> bool:
    return path == folder or folder in path.parents


def _folder_jobs(folder: Path, base: Path, outdir: Path, fmt: str | None) -> Inputs:
    from pocketgan.images import scan_folder

    outdir, resolved_folder = outdir.resolve(), folder.resolve()
    # An output folder inside the input folder is not read back (its files are our outputs); the input
    # folder itself as output folder is read: outputs that would replace an input are refused later.
    excluded = outdir if outdir != resolved_folder and _inside(outdir, resolved_folder) else None
    images, others = scan_folder(folder)
    found = Inputs()
    for path in images:
        if excluded is None or not _inside(path.resolve(), excluded):
            found.jobs.append(Job(path, output_name(path.relative_to(base), fmt, path)))
    for path in others:
        if excluded is not None and _inside(path.resolve(), excluded):
            continue
        if path.suffix.lower() in VIDEO_SUFFIXES:
            found.jobs.append(Job(path, path.relative_to(base)))
        else:
            found.unsupported.append(path)
    found.jobs.sort(key=lambda job: job.source)
    return found


def _glob_base(pattern: str) -> Path:
    """The folder part of a glob before its first wildcard: `photos/**/*.jpg` -> `photos`."""
    parts = Path(pattern).parts
    fixed = []
    for part in parts:
        if any(char in part for char in GLOB_CHARS):
            break
        fixed.append(part)
    return Path(*fixed) if fixed else Path(".")


def _add(found: Inputs, more: Inputs) -> None:
    found.jobs += more.jobs
    found.failures += more.failures
    found.unsupported += more.unsupported


def collect_jobs(inputs: tuple[str, ...], outdir: Path, fmt: str | None = None) -> Inputs:
    """Expand files, folders (recursive) and globs into jobs with distinct output names (module docstring);
    outputs are `fmt` files, or follow their input when `fmt` is None (output_name)."""
    found = Inputs()
    for text in inputs:
        path = Path(text)
        if path.is_dir():
            _add(found, _folder_jobs(path, path, Path(outdir), fmt))
        elif path.exists():
            found.jobs.append(Job(path, output_name(Path(path.name), fmt, path)))
        elif any(char in text for char in GLOB_CHARS):
            matches = sorted(Path(m) for m in glob.glob(text, recursive=True))
            if not matches:
                found.failures.append((text, "no files match this pattern"))
            base = _glob_base(text)
            for match in matches:
                if match.is_dir():
                    _add(found, _folder_jobs(match, base, Path(outdir), fmt))
                else:
                    found.jobs.append(Job(match, output_name(match.relative_to(base), fmt, match)))
        else:
            found.failures.append((text, "no such file or folder"))
    found.jobs = unique_outputs(found.jobs)
    found.unsupported = list(dict.fromkeys(found.unsupported))
    return found


def _name_key(path: Path) -> str:
    return path.as_posix().casefold()


def unique_outputs(jobs: list[Job]) -> list[Job]:
    """Drop repeated sources; outputs that would share a name get `-2`, `-3`, ... (argument order)."""
    seen_sources: set[Path] = set()
    distinct = []
    for job in jobs:
        if job.source.resolve() not in seen_sources:
            seen_sources.add(job.source.resolve())
            distinct.append(job)
    wanted = {_name_key(job.output) for job in distinct}  # a name an input has by right is never handed out
    taken: set[str] = set()
    unique = []
    for job in distinct:
        output, number = job.output, 1
        while _name_key(output) in taken or (number > 1 and _name_key(output) in wanted):
            number += 1
            output = job.output.with_name(f"{job.output.stem}-{number}{job.output.suffix}")
        taken.add(_name_key(output))
        unique.append(Job(job.source, output))
    return unique


def _file_id(path: Path) -> tuple[int, int] | None:
    """(device, inode) of an existing file (through links), else None: hard links and symlinks compare equal."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else type(exc).__name__


class _Run:
    """One `process` call: its report and progress bar, and the run's input files by (device, inode)."""

    def __init__(self, jobs: list[Job], unsupported: list[Path]):
        from tqdm import tqdm

        self.report = RunReport(unsupported=list(unsupported))
        self.progress = tqdm(jobs, desc="pocketgan run", unit="image", file=sys.stderr, disable=None)
        self.input_ids = {_file_id(job.source) for job in jobs} - {None}

    def say(self, line: str) -> None:
        self.progress.write(line, file=sys.stderr)

    def skip(self, job: Job, destination: Path, reason: str, why: str = "exists (use --overwrite)") -> None:
        self.report.skipped.append((job.source, reason))
        self.say(f"skipped {job.source}: {destination} {why}")

    def fail(self, job: Job, exc: BaseException) -> None:
        self.report.failed.append((str(job.source), _one_line(exc)))
        name_given = isinstance(exc, ImageLoadError)  # its message starts with the file name
        self.say(f"error: {_one_line(exc)}" if name_given else f"error: {job.source}: {_one_line(exc)}")


def process(session, inputs: Inputs, outdir: Path, options: WriteOptions) -> RunReport:
    """Run every job; a broken input is reported on one line and skipped, the rest still run.

    Outputs are encoded and written on one writer thread while the model runs on the next photo (the
    encoder and fsync release the GIL), at most WRITES_IN_FLIGHT at a time; the report keeps job order.
    """
    for folder in sorted({(outdir / job.output).parent for job in inputs.jobs}):
        remove_stale_temps(folder)  # what a run killed mid-write left behind
    run = _Run(inputs.jobs, inputs.unsupported)
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="pocketgan-write") as writer:
        pending: deque[tuple[Job, Path, int, Future]] = deque()
        for job in run.progress:
            destination = outdir / job.output
            replace = _check(job, destination, options, run)
            if replace is None:
                continue
            if is_video(job.source):
                while pending:  # the report keeps job order
                    _settle(run, *pending.popleft())
                _run_video(session, job, destination, options, replace, run)
                continue
            try:
                photo = read_photo(job.source, keep_image=True)
                result = session.run(photo.pixels, source=photo.image)
            except RUN_ERRORS as exc:
                run.fail(job, exc)
                continue
            exif, frames = None if options.strip_metadata else photo.exif, photo.frames
            del photo  # its pixels, twice (numpy and PIL), are not needed while the output is written
            write = writer.submit(write_image, result, destination, options.label, options.fmt, exif, replace)
            pending.append((job, destination, frames, write))
            while len(pending) >= WRITES_IN_FLIGHT:
                _settle(run, *pending.popleft())
        while pending:
            _settle(run, *pending.popleft())
    run.progress.close()
    return run.report


def _run_video(session, job: Job, destination: Path, options: WriteOptions, replace: bool, run: _Run) -> None:
    """A video job, frame by frame on this thread (runtime/video.py); recorded like an image's write."""
    video_options = VideoOptions(options.label, options.strip_metadata, replace)
    try:
        run_video(
            options.clip_model() if options.clip_model else ClipModel(session, smoothing=0.0),
            job.source,
            destination,
            video_options,
        )
    except FileExistsError:
        run.skip(job, destination, EXISTS)
    except RUN_ERRORS as exc:
        run.fail(job, exc)
    else:
        run.report.written.append(destination)


def _check(job: Job, destination: Path, options: WriteOptions, run: _Run) -> bool | None:
    """Whether the job may replace its destination (False: create only), or None when it is skipped."""
    destination_id = _file_id(destination)
    own_input = destination_id is not None and destination_id == _file_id(job.source)
    replace = options.overwrite or own_input
    if destination_id in run.input_ids and not own_input:
        run.skip(job, destination, IS_INPUT, "is another input file of this run")
    elif own_input and not options.in_place:
        run.skip(job, destination, IS_INPUT, "is its input file (use --in-place to replace it)")
    elif destination.is_dir():
        run.fail(job, IsADirectoryError(f"{destination} is a folder"))
    elif destination.exists() and not replace:
        run.skip(job, destination, EXISTS)  # checked before the model runs: a rerun resumes cheaply
    else:
        return replace
    return None


def _settle(run: _Run, job: Job, destination: Path, frames: int, write: Future) -> None:
    """Record how one output's write ended."""
    try:
        write.result()
    except FileExistsError:
        run.skip(job, destination, EXISTS)  # another process wrote it since the check
    except RUN_ERRORS as exc:
        run.fail(job, exc)
    else:
        run.report.written.append(destination)
        if frames > 1:
            run.report.first_frame_only.append((job.source, frames))
            run.say(f"notice: {job.source}: animated; only the first frame of {frames} was run")
