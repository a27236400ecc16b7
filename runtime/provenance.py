"""Provenance label for images PocketGAN writes: XMP saying "made by a trained algorithm", which model, which version.

The label is IPTC's DigitalSourceType `trainedAlgorithmicMedia` (what C2PA-aware viewers and photo
libraries show as "AI-generated"), plus the model file's sha256 and the PocketGAN version. PNG gets it as an
iTXt chunk with keyword "XML:com.adobe.xmp", JPEG as an APP1 segment with the standard XMP header
"http://ns.adobe.com/xap/1.0/\\0" — where Exif/XMP readers (exiftool, Pillow's getxmp) look. Every image
written here also carries an sRGB ICC profile (its pixels are sRGB) and, when given, the input's EXIF.

Example: python -c "from runtime.provenance import xmp_packet; print(xmp_packet('ab' * 32).decode())"
"""

from __future__ import annotations

import io
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from xml.sax.saxutils import escape, quoteattr

import numpy as np
from PIL import Image, PngImagePlugin

import pocketgan
from pocketgan.errors import UsageError
from pocketgan.images import srgb_icc_profile
from pocketgan.manifest import atomic_write_bytes

DIGITAL_SOURCE_TYPE = "http://cv.iptc.org/newscodes/digitalsourcetype/trainedAlgorithmicMedia"
IPTC_EXT_NS = "http://iptc.org/std/Iptc4xmpExt/2008-02-29/"
XMP_BASIC_NS = "http://ns.adobe.com/xap/1.0/"
POCKETGAN_NS = "urn:pocketgan:xmp:1.0/"
PNG_XMP_KEYWORD = "XML:com.adobe.xmp"
JPEG_XMP_HEADER = b"http://ns.adobe.com/xap/1.0/\x00"
FORMATS = {"png": "PNG", "jpg": "JPEG", "jpeg": "JPEG"}
JPEG_SEGMENT_LIMIT = (
    65533  # bytes of an APP1 segment's payload, the "Exif" header included (Pillow refuses more)
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ProvenanceLabel:
    """What the label says: the model's sha256 and file name, and the PocketGAN version."""

    model_sha256: str
    model_name: str = ""
    version: str = pocketgan.__version__


def xmp_packet(model_sha256: str, model_name: str = "", version: str = pocketgan.__version__) -> bytes:
    """A complete XMP packet (UTF-8) carrying the AI-generated label."""
    attributes = {
        "Iptc4xmpExt:DigitalSourceType": DIGITAL_SOURCE_TYPE,
        "xmp:CreatorTool": f"PocketGAN {version}",
        "pocketgan:ModelSHA256": model_sha256,
        "pocketgan:ModelName": model_name,
        "pocketgan:Version": version,
    }
    body = "\n".join(f"    {key}={quoteattr(value)}" for key, value in attributes.items() if value)
    text = (
        '<?xpacket begin="\ufeff" id="W5M0MpCehiHzreSzNTczkc9d"?>\n'
        '<x:xmpmeta xmlns:x="adobe:ns:meta/">\n'
        ' <rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#">\n'
        '  <rdf:Description rdf:about=""\n'
        f"    xmlns:Iptc4xmpExt={quoteattr(IPTC_EXT_NS)}\n"
        f"    xmlns:xmp={quoteattr(XMP_BASIC_NS)}\n"
        f"    xmlns:pocketgan={quoteattr(POCKETGAN_NS)}\n"
        f"{body}/>\n"
        " </rdf:RDF>\n"
        "</x:xmpmeta>\n"
        f"<!-- {escape('AI-generated image (trained algorithmic media), written by PocketGAN')} -->\n"
        '<?xpacket end="w"?>'
    )
    return text.encode("utf-8")


def output_format(fmt: str) -> str:
    """Pillow's format name for "png" / "jpg" / "jpeg"; UsageError otherwise."""
    try:
        return FORMATS[fmt.lower().lstrip(".")]
    except KeyError:
        raise UsageError(f"unsupported output format {fmt!r}; use png or jpg") from None


def encode_image(
    image: np.ndarray, fmt: str, label: ProvenanceLabel | None, quality: int = 95, exif: bytes | None = None
) -> bytes:
    """uint8 (H, W, 3) sRGB -> PNG or JPEG bytes with an sRGB ICC profile, the provenance label unless
    `label` is None, and `exif` (e.g. `pocketgan.images.Photo.exif`) when given."""
    pil_format = output_format(fmt)
    picture = Image.fromarray(np.ascontiguousarray(image, dtype=np.uint8))
    packet = xmp_packet(label.model_sha256, label.model_name, label.version) if label else None
    options: dict = {"icc_profile": srgb_icc_profile()}
    if exif and pil_format == "JPEG" and len(exif) > JPEG_SEGMENT_LIMIT:
        log.warning("EXIF of %d bytes does not fit a JPEG segment; written without it", len(exif))
    elif exif:
        options["exif"] = exif
    buffer = io.BytesIO()
    if pil_format == "PNG":
        if packet is not None:
            options["pnginfo"] = PngImagePlugin.PngInfo()
            options["pnginfo"].add_itxt(PNG_XMP_KEYWORD, packet.decode("utf-8"), zip=False)
        picture.save(buffer, format="PNG", **options)
    else:
        if packet is not None:
            options["xmp"] = packet
        picture.save(buffer, format="JPEG", quality=quality, **options)
    return buffer.getvalue()


def write_image(
    image: np.ndarray,
    path: str | os.PathLike,
    label: ProvenanceLabel | None,
    fmt: str | None = None,
    exif: bytes | None = None,
    replace: bool = True,
) -> Path:
    """Write an image atomically (temporary file, then rename); the format follows the suffix unless given.

    With `replace=False` an existing file is never replaced, even one another process wrote meanwhile:
    FileExistsError instead.
    """
    path = Path(path)
    data = encode_image(image, fmt or path.suffix, label, exif=exif)
    atomic_write_bytes(path, data, replace=replace)
    return path
