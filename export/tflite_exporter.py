"""TFLite (LiteRT) exporter through litert-torch: NHWC float I/O, fp16/w8 via AI Edge Quantizer, int8 static.

Padded ConvTranspose2d layers (the CycleGAN upsampler) are rewritten to padding 0 + crop first: litert-torch
cannot legalize them (FACTS.md). int8 uses `INT8_METHOD`: "pt2e" (torchao PT2E quantizer inside
litert-torch; float image I/O; the fastest int8 on conv-heavy nets), checked on calibration
images and replaced by "aeq-conv" (AI Edge Quantizer static int8 on CONV_2D/DEPTHWISE_CONV_2D only, float
I/O) where litert-torch mis-converts it; "aeq-static" (static_wi8_ai8, int8 I/O) is available too and
is what int8-full uses (every op int8, int8 image I/O: what NPU delegates take without CPU fallback).
int8 leaves the layers named in `Prepared.keep_float` in float (PT2E module-name filter).

Example: pocketgan export vintage --format tflite --precision fp32 --out dist/
"""

from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from pocketgan.export._runners import predict
from pocketgan.export.base import (
    ANY_FORMAT_UNSUPPORTED_OPS,
    Exporter,
    Prepared,
    UnsupportedOp,
    library_missing,
    register_exporter,
)
from pocketgan.manifest import EMBEDDED_MANIFEST_KEY
from pocketgan.metrics import psnr
from pocketgan.status import OK, Status, unavailable

log = logging.getLogger(__name__)

INT8_METHOD = "pt2e"  # "pt2e" (falls back to "aeq-conv" when it converts wrongly), "aeq-conv", "aeq-static"
FALLBACK_PSNR_DB = 35.0


def _grouped_or_dilated_transpose(module: Any) -> bool:
    from pocketgan.export.prepare import transpose_needs_groups_or_dilation  # imports torch

    return transpose_needs_groups_or_dilation(module)


@register_exporter("tflite")
class TFLiteExporter(Exporter):
    suffix = ".tflite"
    libraries = ("torch", "litert-torch", "ai-edge-quantizer", "ai-edge-litert", "torchao")
    precisions = ("fp32", "fp16", "int8", "w8", "int8-full")
    unsupported_precisions = {"p6": "6-bit palettization is a Core ML weight format"}
    unsupported_ops = (
        *ANY_FORMAT_UNSUPPORTED_OPS,
        UnsupportedOp(
            _grouped_or_dilated_transpose,
            "grouped/dilated ConvTranspose2d has no exact padding-0 rewrite for litert-torch",
        ),
    )

    @classmethod
    def availability(cls) -> Status:
        missing = library_missing("litert_torch", "ai_edge_quantizer", "ai_edge_litert", "torchao")
        if missing:
            return unavailable(
                f"pip install litert-torch ai-edge-quantizer ai-edge-litert torchao (missing {missing})"
            )
        return OK

    @classmethod
    def exportability_note(cls, model: Any) -> str | None:
        from pocketgan.export.prepare import padded_transposes  # imports torch

        rewritten = padded_transposes(model)
        return f"ConvTranspose2d rewritten to padding 0 + crop: {len(rewritten)}" if rewritten else None

    def export(self, prepared: Prepared, precision: str, path: Path) -> dict[str, Any]:
        from pocketgan.export.prepare import rewrite_conv_transpose  # imports torch

        model, rewritten = rewrite_conv_transpose(prepared.model)
        if rewritten:
            log.info("rewrote %d padded ConvTranspose2d layers to padding 0 + crop", rewritten)
        int8_method = None
        if precision == "int8":
            int8_method = _convert_int8(model, prepared, path)
        elif precision == "int8-full":
            base = path.with_name(path.stem + ".fp32-base.tflite")
            _convert_fp32(model, prepared.size, base)
            _aeq_static_int8(base, prepared, path)
            base.unlink(missing_ok=True)
            _input_on_image_grid(path)
            int8_method = "aeq-static (static_wi8_ai8: every op int8, int8 I/O on the image grid)"
        elif precision == "fp32":
            _convert_fp32(model, prepared.size, path)
        else:
            base = path.with_name(path.stem + ".fp32-base.tflite")
            _convert_fp32(model, prepared.size, base)
            _aeq_weight_only(base, path, bits=16 if precision == "fp16" else 8)
            base.unlink(missing_ok=True)
        io = tensor_entries(path, prepared.size)
        embedded = {**prepared.metadata, "input": io["input"], "output": io["output"]}
        embed_metadata(path, EMBEDDED_MANIFEST_KEY, json.dumps(embedded, default=str))
        io["conv_transpose_rewritten"] = rewritten
        if int8_method:
            io["int8_method"] = int8_method
        return io


def _convert_int8(model, prepared: Prepared, path: Path) -> str:
    """int8 by INT8_METHOD; a PT2E model that the converter got wrong falls back to "aeq-conv".

    litert-torch's quantized lowering mis-converts some graphs (channel slices + concat of products:
    torch's fake-quant graph scored 58 dB, the .tflite 12 dB), so the PT2E result is checked on two
    calibration images before it is kept: against the float model, or, where quantization itself costs
    more (a fragile layer), against torch's fake-quant graph, which only a conversion error can miss.
    `prepared.keep_float` layers need PT2E: aeq-conv cannot keep them.
    """
    base = path.with_name(path.stem + ".fp32-base.tflite")
    try:
        if INT8_METHOD == "pt2e":
            x = prepared.calibration()[:2]
            fake_quant = _convert_pt2e_int8(model, prepared, path, x)
            score = max(_quick_psnr(path, x, _torch_outputs(model, x)), _quick_psnr(path, x, fake_quant))
            if score >= FALLBACK_PSNR_DB:
                return f"pt2e (calibration-image check {score:.1f} dB)"
            if prepared.keep_float:
                raise ValueError(
                    f"keep-float needs the pt2e int8 path, which converted wrongly ({score:.1f} dB)"
                )
            log.warning(
                "PT2E int8 TFLite scored %.1f dB on calibration images; using aeq-conv instead", score
            )
            reason = f"pt2e scored {score:.1f} dB"
        else:
            reason = "configured"
        _convert_fp32(model, prepared.size, base)
        if INT8_METHOD == "aeq-static":
            _aeq_static_int8(base, prepared, path)
            return "aeq-static (int8 I/O)"
        _aeq_static_int8(base, prepared, path, conv_only=True)
        return f"aeq-conv (static int8 convs, float elsewhere; {reason})"
    finally:
        base.unlink(missing_ok=True)


def _torch_outputs(model, x: np.ndarray) -> np.ndarray:
    """`model` on NCHW `x`, one image at a time (exported graphs take batch 1)."""
    import torch

    with torch.no_grad():
        return np.concatenate([model(torch.from_numpy(x[i : i + 1])).numpy() for i in range(len(x))])


def _quick_psnr(path: Path, x: np.ndarray, reference: np.ndarray) -> float:

    return psnr(predict(path, x)[0], reference)


def _nhwc(model, size: int):
    """`model` with NHWC input and output (the same permutes as litert_torch.to_channel_last_io)."""
    import torch

    from pocketgan.export.prepare import ChannelsLast  # imports torch

    return ChannelsLast(model).eval(), torch.zeros(1, size, size, 3)


def _convert_fp32(model, size: int, path: Path) -> None:
    import litert_torch

    wrapped, sample = _nhwc(model, size)
    litert_torch.convert(wrapped, (sample,)).export(str(path))


def _convert_pt2e_int8(model, prepared: Prepared, path: Path, x: np.ndarray) -> np.ndarray:
    """PT2E int8 with float I/O; returns torch's fake-quant graph on NCHW `x` (what the .tflite should give).

    The fake-quant outputs are computed before lowering: litert-torch rewrites the graph it converts.
    """
    import litert_torch
    import torch
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from pocketgan.export.prepare import float_only_types, nhwc_calibration  # imports torch

    wrapped, sample = _nhwc(model, prepared.size)
    quantizer = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    for type_name in float_only_types(model):
        # torch.export records module types as "module.QualName" strings, which is what the filter compares.
        quantizer.set_module_type(type_name, None)
    _leave_in_float(quantizer, prepared.keep_float)
    graph = prepare_pt2e(torch.export.export(wrapped, (sample,)).module(), quantizer)
    move_exported_model_to_eval(graph)
    with torch.no_grad():
        for image in nhwc_calibration(prepared):
            graph(torch.from_numpy(image[None]))
    graph = convert_pt2e(graph, fold_quantize=False)
    move_exported_model_to_eval(graph)
    nhwc = np.ascontiguousarray(x.transpose(0, 2, 3, 1))
    fake_quant = _torch_outputs(graph, nhwc).transpose(0, 3, 1, 2)
    litert_torch.convert(graph, (sample,), quant_config=QuantConfig(pt2e_quantizer=quantizer)).export(
        str(path)
    )
    return fake_quant


def _leave_in_float(quantizer, layers: tuple[str, ...]) -> None:
    """Make `quantizer` leave the ops of the modules `layers` (of the student) unannotated, i.e. float.

    Not `set_module_name(name, None)`: litert-torch refuses None there, and its name filter expects
    torch.export's older "L__self___a_b" stack keys (torch 2.13 writes "L__self__model.a.b").
    """
    if not layers:
        return
    from torchao.quantization.pt2e.quantizer.quantizer import Q_ANNOTATION_KEY

    scopes = tuple(f"model.{layer}" for layer in layers)  # ChannelsLast holds the student as `model`
    annotate = quantizer.annotate

    def annotate_except(model):
        model = annotate(model)
        for node in model.graph.nodes:
            paths = [path for path, _ in (node.meta.get("nn_module_stack") or {}).values()]
            if any(p == s or p.startswith(s + ".") for p in paths for s in scopes):
                node.meta.pop(Q_ANNOTATION_KEY, None)
        return model

    quantizer.annotate = annotate_except


def _input_name(path: Path) -> str:
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(path)).get_signature_list()
    signature = next(iter(runner.values()))
    return signature["inputs"][0]


def _aeq_static_int8(base: Path, prepared: Prepared, path: Path, conv_only: bool = False) -> None:
    """AI Edge Quantizer static int8: every op (int8 I/O), or convolutions only (float I/O).

    Every op: FULLY_CONNECTED weights are quantized per tensor. Per channel, an output channel whose
    weights are all zero (the colour transform's constant term: bias only) gets scale 0 and its bias
    breaks: `pocketgan explain` showed the colour transform at 1.5 dB SQNR, and the shipped student's
    parity went from 11 dB to 30 dB per tensor (its weights are 0/1, exact either way).
    """
    from ai_edge_quantizer import qtyping, quantizer, recipe

    from pocketgan.export.prepare import nhwc_calibration  # imports torch

    name = _input_name(base)
    q = quantizer.Quantizer(str(base))
    if conv_only:
        for op in (qtyping.TFLOperationName.CONV_2D, qtyping.TFLOperationName.DEPTHWISE_CONV_2D):
            q.add_static_config(regex=".*", operation_name=op, activation_num_bits=8, weight_num_bits=8)
    else:
        q.load_quantization_recipe(recipe.static_wi8_ai8())
        q.add_static_config(
            regex=".*",
            operation_name=qtyping.TFLOperationName.FULLY_CONNECTED,
            activation_num_bits=8,
            weight_num_bits=8,
            weight_granularity=qtyping.QuantGranularity.TENSORWISE,
        )
    samples = [{name: image[None]} for image in nhwc_calibration(prepared)]
    calibration = q.calibrate({"serving_default": samples}, num_threads=2)
    q.quantize(calibration, enable_progress_report=False).export_model(str(path), overwrite=True)


def _input_on_image_grid(path: Path) -> None:
    """Give the int8 image input the 8-bit image range: scale 2/255, zero point 0, so [-1.004, 0.996].

    AI Edge Quantizer calibrated it to [-0.91, 0.76] on the shipped student (its min/max average over
    images), clipping every highlight: shipped student int8-full parity 32.1 -> 33.2 dB. Valid after
    quantization because TFLite kernels derive their arithmetic from the tensors' parameters when the
    model is loaded.
    """
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    graph = model.subgraphs[0]
    quantization = graph.tensors[graph.inputs[0]].quantization
    quantization.scale = np.array([2 / 255], np.float32)
    quantization.zeroPoint = np.array([0], np.int64)
    flatbuffer_utils.write_model(model, str(path))


def _aeq_weight_only(base: Path, path: Path, bits: int) -> None:
    from ai_edge_quantizer import qtyping, quantizer, recipe

    q = quantizer.Quantizer(str(base))
    if bits == 16:
        q.add_weight_only_config(
            regex=".*",
            operation_name=qtyping.TFLOperationName.ALL_SUPPORTED,
            num_bits=16,
            algorithm_key=recipe.AlgorithmName.FLOAT_CASTING,
        )
    else:
        q.load_quantization_recipe(recipe.weight_only_wi8_afp32())
    q.quantize(enable_progress_report=False).export_model(str(path), overwrite=True)


def tensor_entries(path: Path, size: int) -> dict[str, Any]:
    """Manifest input/output entries read from the .tflite file (int8 I/O adds its quantization)."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    entries = {}
    for side, details in (
        ("input", interpreter.get_input_details()),
        ("output", interpreter.get_output_details()),
    ):
        detail = details[0]
        entry = {
            "name": detail["name"],
            "shape": [int(d) for d in detail["shape"]],
            "layout": "NHWC",
            "dtype": np.dtype(detail["dtype"]).name,
            "range": [-1, 1],
            "color": "RGB",
        }
        scale, zero_point = detail.get("quantization", (0.0, 0))
        if np.dtype(detail["dtype"]).kind in "iu" and scale:
            entry["quantization"] = {"scale": float(scale), "zero_point": int(zero_point)}
        entries[side] = entry
    return entries


def embed_metadata(path: Path, key: str, text: str) -> None:
    """Add `text` as a named entry of the .tflite flatbuffer's metadata table (read back by name)."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    model = flatbuffer_utils.read_model(str(path))
    model.metadata = [entry for entry in (model.metadata or []) if entry.name != key.encode()]
    buffer = schema.BufferT()
    buffer.data = np.frombuffer(text.encode(), dtype=np.uint8)
    model.buffers.append(buffer)
    entry = schema.MetadataT()
    entry.name = key
    entry.buffer = len(model.buffers) - 1
    model.metadata.append(entry)
    flatbuffer_utils.write_model(model, str(path))
