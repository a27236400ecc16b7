"""TFLite (LiteRT) exporter through litert-torch: NHWC float I/O, fp16/w8 via AI Edge Quantizer, int8 static.

Padded ConvTranspose2d layers (the CycleGAN upsampler) are rewritten to padding 0 + crop first: litert-torch
cannot legalize them (FACTS.md). int8 uses `INT8_METHOD`: "pt2e" (torchao PT2E quantizer inside
litert-torch; float image I/O; the fastest int8 on conv-heavy nets), checked on calibration
images and replaced by "aeq-conv" (AI Edge Quantizer static int8 on CONV_2D/DEPTHWISE_CONV_2D only, float
I/O) where litert-torch mis-converts it; "aeq-static" (static_wi8_ai8, int8 I/O) is available too and
is what int8-full uses (every op int8, int8 image I/O: what NPU delegates take without CPU fallback).
int8 leaves the layers named in `Prepared.keep_float` in float (PT2E module-name filter).

A context model gets two inputs, image and context (256²), and one artifact per working size
(ExportConfig.sizes): litert-torch cannot convert dynamic shapes here (its MLIR lowering wants concrete
shapes), and a converted graph cannot be resized with `Interpreter.resize_tensor_input` (the pixel shuffle
and the colour transform lower to RESHAPEs with constant shapes: allocate_tensors fails).

Example: pocketgan export vintage --format tflite --precision fp32 --out dist/
"""

from __future__ import annotations

import dataclasses
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np

from pocketgan.export.base import (
    ANY_FORMAT_UNSUPPORTED_OPS,
    EMBEDDED_IO,
    Exporter,
    Prepared,
    UnsupportedOp,
    context_entry,
    image_sizes,
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
    dynamic_sizes = False
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
            _fp32_base(model, prepared, base)
            _aeq_static_int8(base, prepared, path)
            base.unlink(missing_ok=True)
            _input_on_image_grid(path)
            int8_method = "aeq-static (static_wi8_ai8: every op int8, int8 I/O on the image grid)"
        elif precision == "fp32":
            _fp32_base(model, prepared, path)
        else:
            base = path.with_name(path.stem + ".fp32-base.tflite")
            _fp32_base(model, prepared, base)
            _aeq_weight_only(base, path, bits=16 if precision == "fp16" else 8)
            base.unlink(missing_ok=True)
        io = tensor_entries(path, prepared)
        embedded = {**prepared.metadata, **{key: io[key] for key in io if key in EMBEDDED_IO}}
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
            inputs = calibration_nchw(prepared)[:2]
            fake_quant = _convert_pt2e_int8(model, prepared, path, inputs)
            score = max(
                _quick_psnr(path, inputs, _torch_outputs(model, inputs)),
                _quick_psnr(path, inputs, fake_quant),
            )
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
        _fp32_base(model, prepared, base)
        if INT8_METHOD == "aeq-static":
            _aeq_static_int8(base, prepared, path)
            return "aeq-static (int8 I/O)"
        _aeq_static_int8(base, prepared, path, conv_only=True)
        return f"aeq-conv (static int8 convs, float elsewhere; {reason})"
    finally:
        base.unlink(missing_ok=True)


def calibration_nchw(prepared: Prepared) -> list[tuple[np.ndarray, ...]]:
    """prepare.calibration_inputs as NCHW arrays: what the torch model (and `predict`) take."""
    from pocketgan.export.prepare import calibration_inputs  # imports torch

    return [tuple(a.transpose(0, 3, 1, 2) for a in item) for item in calibration_inputs(prepared)]


def _torch_outputs(model, inputs: list[tuple[np.ndarray, ...]]) -> np.ndarray:
    """`model` on each (image,) or (image, context) tuple of batch-1 arrays, concatenated."""
    import torch

    with torch.no_grad():
        return np.concatenate([model(*(torch.from_numpy(a) for a in item)).numpy() for item in inputs])


def _quick_psnr(path: Path, inputs: list[tuple[np.ndarray, ...]], reference: np.ndarray) -> float:
    """PSNR of the float-I/O .tflite on NCHW `inputs`, run in the LiteRT backend directly (the artifact has
    no manifest yet to tell a session which input is the context)."""
    from pocketgan.runtime.litert import LiteRTBackend

    engine = LiteRTBackend(path, threads=2)
    outputs = [
        _dequantized(
            engine.outputs[0],
            engine.run_inputs(
                [
                    _quantized(spec, a.transpose(0, 2, 3, 1))
                    for spec, a in zip(engine.inputs, item, strict=True)
                ]
            ),
        )
        for item in inputs
    ]
    return psnr(np.concatenate(outputs).transpose(0, 3, 1, 2), reference)


def _quantized(spec, values: np.ndarray) -> np.ndarray:
    """Float values -> what a (possibly integer, quantized) input tensor takes."""
    if spec.quantization is None:
        return np.ascontiguousarray(values, dtype=spec.dtype)
    scale, zero_point = spec.quantization
    info = np.iinfo(np.dtype(spec.dtype))
    return np.clip(np.rint(values / scale) + zero_point, info.min, info.max).astype(spec.dtype)


def _dequantized(spec, raw: np.ndarray) -> np.ndarray:
    if spec.quantization is None:
        return raw.astype(np.float32)
    scale, zero_point = spec.quantization
    return (raw.astype(np.float32) - zero_point) * np.float32(scale)


def _nhwc(model, prepared: Prepared):
    """(`model` with NHWC input and output (the permutes of litert_torch.to_channel_last_io), sample inputs)."""
    from pocketgan.export.prepare import ChannelsLast, sample_inputs  # imports torch

    return ChannelsLast(model).eval(), sample_inputs(*prepared.trace_size, prepared.context)


def _fp32_base(model, prepared: Prepared, path: Path) -> None:
    """The fp32 TFLite of `model` (prepared.model with its ConvTranspose rewrite) at `path`, converted once
    per export."""
    prepared.fp32_base("tflite", path, lambda base: _convert_fp32(model, prepared, base))


def _convert_fp32(model, prepared: Prepared, path: Path) -> None:
    import litert_torch

    wrapped, samples = _nhwc(model, prepared)
    litert_torch.convert(wrapped, samples).export(str(path))


def _convert_pt2e_int8(model, prepared: Prepared, path: Path, inputs) -> np.ndarray:
    """PT2E int8 with float I/O; returns torch's fake-quant graph on NCHW `inputs` (what the .tflite should give).

    The fake-quant outputs are computed before lowering: litert-torch rewrites the graph it converts.
    A fixed-size artifact of a context model is calibrated like the others, on the images at the export
    size (a dynamic-shape graph), then converted at its own size: calibrating on images at that size scored
    lower (shipped student at 1920x1080: 34.7 dB on crops taken at that size, 35.9 on 256² images blown up).
    """
    import litert_torch
    import torch
    from litert_torch.quantize.pt2e_quantizer import PT2EQuantizer, get_symmetric_quantization_config
    from litert_torch.quantize.quant_config import QuantConfig
    from torchao.quantization.pt2e import move_exported_model_to_eval
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from pocketgan.export.prepare import calibration_inputs, dynamic_image_shapes, float_only_types

    wrapped, samples = _nhwc(model, prepared)
    quantizer = PT2EQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    for type_name in float_only_types(model):
        # torch.export records module types as "module.QualName" strings, which is what the filter compares.
        quantizer.set_module_type(type_name, None)
    _leave_in_float(quantizer, prepared.keep_float)
    dynamic = dynamic_image_shapes() if prepared.context else None
    graph = prepare_pt2e(torch.export.export(wrapped, samples, dynamic_shapes=dynamic).module(), quantizer)
    move_exported_model_to_eval(graph)
    with torch.no_grad():
        for item in calibration_inputs(dataclasses.replace(prepared, fixed=None)):
            graph(*(torch.from_numpy(a) for a in item))
    graph = convert_pt2e(graph, fold_quantize=False)
    move_exported_model_to_eval(graph)
    nhwc = [tuple(np.ascontiguousarray(a.transpose(0, 2, 3, 1)) for a in item) for item in inputs]
    fake_quant = _torch_outputs(graph, nhwc).transpose(0, 3, 1, 2)
    litert_torch.convert(graph, samples, quant_config=QuantConfig(pt2e_quantizer=quantizer)).export(str(path))
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
        floated = set()
        for node in model.graph.nodes:
            paths = [path for path, _ in (node.meta.get("nn_module_stack") or {}).values()]
            if any(p == s or p.startswith(s + ".") for p in paths for s in scopes):
                node.meta.pop(Q_ANNOTATION_KEY, None)
                floated.add(node)
        # An op that shares a float op's quantization parameters (SharedQuantizationSpec) has none to share:
        # it goes float too, until no annotation refers to a float op.
        while floated:
            newly = {
                node for node in model.graph.nodes if _shares_with(node.meta.get(Q_ANNOTATION_KEY), floated)
            }
            for node in newly:
                node.meta.pop(Q_ANNOTATION_KEY, None)
            floated = newly
        return model

    quantizer.annotate = annotate_except


def _shares_with(annotation, nodes: set) -> bool:
    """Whether a PT2E annotation has a SharedQuantizationSpec pointing at one of `nodes` (or an edge from one)."""
    from torchao.quantization.pt2e.quantizer import SharedQuantizationSpec

    if annotation is None:
        return False
    specs = [*annotation.input_qspec_map.values(), annotation.output_qspec]
    for spec in specs:
        if isinstance(spec, SharedQuantizationSpec):
            target = spec.edge_or_node
            if (target[0] if isinstance(target, tuple) else target) in nodes:
                return True
    return False


def _input_names(path: Path) -> list[str]:
    """The signature's input names in argument order (args_0: the image, args_1: the context)."""
    from ai_edge_litert.interpreter import Interpreter

    runner = Interpreter(model_path=str(path)).get_signature_list()
    signature = next(iter(runner.values()))
    return sorted(signature["inputs"], key=lambda name: (len(name), name))


def _aeq_static_int8(base: Path, prepared: Prepared, path: Path, conv_only: bool = False) -> None:
    """AI Edge Quantizer static int8: every op (int8 I/O), or convolutions only (float I/O).

    Every op: FULLY_CONNECTED weights are quantized per tensor. Per channel, an output channel whose
    weights are all zero (the colour transform's constant term: bias only) gets scale 0 and its bias
    breaks: `pocketgan explain` showed the colour transform at 1.5 dB SQNR, and the shipped student's
    parity went from 11 dB to 30 dB per tensor (its weights are 0/1, exact either way).
    """
    from ai_edge_quantizer import qtyping, quantizer, recipe

    from pocketgan.export.prepare import calibration_inputs  # imports torch

    names = _input_names(base)
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
    samples = [dict(zip(names, item, strict=True)) for item in calibration_inputs(prepared)]
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
    for index in graph.inputs:  # the image, and the context thumbnail of a context model
        quantization = graph.tensors[index].quantization
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


def tensor_entries(path: Path, prepared: Prepared) -> dict[str, Any]:
    """Manifest input/output (and context_input) entries read from the .tflite file (int8 I/O adds its
    quantization); the input's "sizes": the one size it was converted at."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path))
    inputs = interpreter.get_input_details()
    entries = {}
    for side, detail in (
        ("input", inputs[0]),
        ("output", interpreter.get_output_details()[0]),
        *((("context_input", inputs[1]),) if prepared.context else ()),
    ):
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
    entries["input"]["sizes"] = image_sizes(prepared)
    if prepared.context:
        entries["context_input"] = context_entry(
            entries["context_input"].pop("name"), entries["context_input"]
        )
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
