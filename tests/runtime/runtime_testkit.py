"""Helpers for the runtime tests: tiny seeded models, exporters, manifests, test images,"""

import io
import json
import zlib
from pathlib import Path
from xml.etree import ElementTree

import numpy as np
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
MODEL_SIZE = 64
CONTEXT_THUMBNAIL = "pocketgan.images.context_thumbnail"


def tiny_net():
    import torch

    class TinyFilter(torch.nn.Module):
        """Conv, depthwise conv, 1x1 conv back to RGB, residual, tanh: a student in miniature."""

        def __init__(self):
            super().__init__()
            self.stem = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.depthwise = torch.nn.Conv2d(8, 8, 3, padding=1, groups=8)
            self.head = torch.nn.Conv2d(8, 3, 1)

        def forward(self, x):
            hidden = torch.relu(self.depthwise(torch.relu(self.stem(x))))
            return torch.tanh(x + 0.5 * self.head(hidden))

    torch.manual_seed(0)
    return TinyFilter().eval()


def export_onnx(model, path: Path, size: int) -> Path:
    import torch

    sample = torch.zeros(1, 3, size, size)
    torch.onnx.export(model, (sample,), str(path), dynamo=True, external_data=False, verbose=False)
    return path


def export_tflite(model, path: Path, size: int) -> Path:
    import litert_torch
    import torch

    channel_last = litert_torch.to_channel_last_io(model, args=[0], outputs=[0])
    litert_torch.convert(channel_last.eval(), (torch.zeros(1, size, size, 3),)).export(str(path))
    return path


def quantize_tflite_int8(source: Path, path: Path, size: int) -> Path:
    """Static int8 with int8 input and output tensors (AI Edge Quantizer), calibrated on held-out-free data."""
    from ai_edge_quantizer import quantizer, recipe

    rng = np.random.default_rng(0)
    calibration = [{"args_0": rng.uniform(-1, 1, (1, size, size, 3)).astype(np.float32)} for _ in range(4)]
    engine = quantizer.Quantizer(str(source))
    engine.load_quantization_recipe(recipe.static_wi8_ai8())
    result = engine.calibrate({"serving_default": calibration})
    engine.quantize(result).export_model(str(path), overwrite=True)
    return path


def export_coreml_image_input(model, path: Path, size: int) -> Path:
    """An ML Program whose RGB ImageType input carries the [-1, 1] normalization (scale 2/255, bias -1)."""
    import coremltools as ct
    import torch

    program = torch.export.export(model, (torch.zeros(1, 3, size, size),)).run_decompositions({})
    image = ct.ImageType(name="image", shape=(1, 3, size, size), scale=2 / 255, bias=[-1.0, -1.0, -1.0])
    converted = ct.convert(
        program,
        convert_to="mlprogram",
        inputs=[image],
        minimum_deployment_target=ct.target.iOS16,
        compute_precision=ct.precision.FLOAT32,
    )
    converted.save(str(path))
    return path


def copy_model(source: Path, directory: Path, name: str | None = None) -> Path:
    """A private copy of a session model (tests that add manifests must not touch the shared one)."""
    target = directory / (name or source.name)
    target.write_bytes(source.read_bytes())
    return target


def write_sidecar(model: Path, **overrides) -> Path:
    """A minimal sidecar manifest for `model`; keyword arguments replace top-level keys."""
    manifest = {"format": "onnx" if model.suffix == ".onnx" else "tflite", "precision": "fp32"}
    manifest.update(overrides)
    path = model.with_name(model.name + ".manifest.json")
    path.write_text(json.dumps(manifest))
    return path


def upright_test_image(height: int = 40, width: int = 24) -> np.ndarray:
    """An asymmetric image: red top-left block, blue bottom, a gradient, so rotations are detectable."""
    image = np.zeros((height, width, 3), dtype=np.uint8)
    image[..., 1] = np.linspace(0, 255, width, dtype=np.uint8)[None, :]
    image[: height // 3, : width // 2, 0] = 250
    image[2 * height // 3 :, :, 2] = 230
    return image


def jpeg_bytes(image: np.ndarray, **save_options) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(image).save(buffer, format="JPEG", quality=95, **save_options)
    return buffer.getvalue()


def png_xmp(data: bytes) -> str | None:
    """The XMP text of a PNG's iTXt "XML:com.adobe.xmp" chunk, parsed from the raw chunk bytes."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    offset = 8
    while offset < len(data):
        length = int.from_bytes(data[offset : offset + 4], "big")
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        offset += 12 + length
        if kind == b"iTXt":
            keyword, rest = body.split(b"\x00", 1)
            compressed, rest = rest[0], rest[2:]  # compression flag, compression method
            _language, _translated, text = rest.split(b"\x00", 2)
            if keyword == b"XML:com.adobe.xmp":
                return (zlib.decompress(text) if compressed else text).decode("utf-8")
    return None


def jpeg_xmp(data: bytes) -> str | None:
    """The XMP packet of a JPEG's APP1 segment with the Adobe XMP header, parsed from the raw segments."""
    assert data[:2] == b"\xff\xd8", "not a JPEG"
    header = b"http://ns.adobe.com/xap/1.0/\x00"
    offset = 2
    while offset + 4 <= len(data) and data[offset] == 0xFF:
        marker = data[offset + 1]
        if marker == 0xDA:  # start of scan: no more metadata segments
            break
        length = int.from_bytes(data[offset + 2 : offset + 4], "big")
        body = data[offset + 4 : offset + 2 + length]
        if marker == 0xE1 and body.startswith(header):
            return body[len(header) :].decode("utf-8")
        offset += 2 + length
    return None


def xmp_fields(packet: str) -> dict[str, str]:
    """Attributes of the rdf:Description, keyed by "{namespace}Name"."""
    start, end = packet.index("<x:xmpmeta"), packet.index("</x:xmpmeta>") + len("</x:xmpmeta>")
    root = ElementTree.fromstring(packet[start:end])
    description = root.find(".//{http://www.w3.org/1999/02/22-rdf-syntax-ns#}Description")
    return dict(description.attrib)


def tiny_context_net():
    """A two-input student in miniature: the image, and a thumbnail whose colour means shift the grade."""
    import torch

    class TinyContextFilter(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.stem = torch.nn.Conv2d(3, 8, 3, padding=1)
            self.head = torch.nn.Conv2d(8, 3, 1)
            self.grade = torch.nn.Linear(3, 3)

        def forward(self, image, context):
            # image (1, H, W, 3), context (1, 256, 256, 3), NHWC in [-1, 1] as the exporters write them
            x = image.permute(0, 3, 1, 2)  # (1, 3, H, W)
            shift = self.grade(context.mean(dim=(1, 2)))[:, :, None, None]  # (1, 3, 1, 1)
            y = torch.tanh(x + 0.5 * self.head(torch.relu(self.stem(x))) + shift)
            return y.permute(0, 2, 3, 1)

    torch.manual_seed(0)
    return TinyContextFilter().eval()


def export_context_onnx(model, path: Path) -> Path:
    """ONNX with inputs "image" (1, H, W, 3) of dynamic H and W and "context" (1, 256, 256, 3), with the
    manifest entries the exporters write for such artifacts (input "sizes", "context_input")."""
    import torch

    height, width = torch.export.Dim("height", min=8, max=4096), torch.export.Dim("width", min=8, max=4096)
    torch.onnx.export(
        model,
        (torch.zeros(1, 64, 96, 3), torch.zeros(1, 256, 256, 3)),
        str(path),
        input_names=["image", "context"],
        output_names=["output"],
        dynamic_shapes={"image": {1: height, 2: width}, "context": None},
        dynamo=True,
        external_data=False,
        verbose=False,
    )
    image = {"name": "image", "shape": [1, -1, -1, 3], "layout": "NHWC", "dtype": "float32", "range": [-1, 1]}
    write_sidecar(
        path,
        input=image | {"sizes": {"dynamic": True, "multiple": 4, "min": 16, "max": 4096}},
        output=image | {"name": "output"},
        context_input=image | {"name": "context", "shape": [1, 256, 256, 3], "thumbnail": CONTEXT_THUMBNAIL},
    )
    return path
