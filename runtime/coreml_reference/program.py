"""Read the ML Program inside an `.mlpackage` into plain Python objects (torch-free).

The program is taken from coremltools' protobuf spec (`MLModel(path, skip_model_load=True)`), so this works
on Linux; weights stored in `Data/com.apple.CoreML/weights/weight.bin` are read with coremltools' blob reader.

Example: python -c "from runtime.coreml_reference import load_program; print(load_program('m.mlpackage'))"
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from pocketgan.errors import ModelLoadError

log = logging.getLogger(__name__)

# MIL DataType enum names -> numpy storage dtype. Sub-byte integers are stored unpacked, one per byte.
NUMPY_DTYPES: dict[str, Any] = {
    "BOOL": np.bool_,
    "STRING": np.str_,
    "FLOAT16": np.float16,
    "FLOAT32": np.float32,
    "FLOAT64": np.float64,
    "INT4": np.int8,
    "INT8": np.int8,
    "INT16": np.int16,
    "INT32": np.int32,
    "INT64": np.int64,
    "UINT1": np.uint8,
    "UINT2": np.uint8,
    "UINT3": np.uint8,
    "UINT4": np.uint8,
    "UINT6": np.uint8,
    "UINT8": np.uint8,
    "UINT16": np.uint16,
    "UINT32": np.uint32,
    "UINT64": np.uint64,
}
SUB_BYTE_BITS = {"INT4": 4, "UINT1": 1, "UINT2": 2, "UINT3": 3, "UINT4": 4, "UINT6": 6}
# How coremltools' blob reader spells each dtype (method read_<name>_data); fp16 comes back as uint16 bits.
BLOB_READERS = {
    "FLOAT32": "float",
    "FLOAT16": "fp16",
    "INT4": "int4",
    "INT8": "int8",
    "INT16": "int16",
    "INT32": "int32",
    "UINT1": "uint1",
    "UINT2": "uint2",
    "UINT3": "uint3",
    "UINT4": "uint4",
    "UINT6": "uint6",
    "UINT8": "uint8",
    "UINT16": "uint16",
    "UINT32": "uint32",
}
WEIGHTS_DIR = Path("Data") / "com.apple.CoreML" / "weights"


@dataclass(frozen=True)
class ValueType:
    """A tensor type as the spec records it: MIL dtype name and shape (None for a dim the spec leaves open)."""

    dtype: str
    shape: tuple[int | None, ...]

    @property
    def numpy_dtype(self) -> Any:
        return NUMPY_DTYPES[self.dtype]


@dataclass(frozen=True)
class Binding:
    """One argument of an operation input: a reference to a named value, or an inline constant."""

    name: str | None = None
    value: Any = None


@dataclass
class Operation:
    type: str
    name: str
    inputs: dict[str, list[Binding]]
    outputs: list[tuple[str, ValueType]]
    attributes: dict[str, Any]


@dataclass
class ImageInput:
    """How the model's ImageType input wants its pixels (the scale/bias ops live inside the program)."""

    color: str  # "RGB", "BGR" or "GRAYSCALE"
    height: int
    width: int


@dataclass
class Program:
    """The `main` function of an ML Program: typed inputs, operations in order, output names."""

    path: Path
    opset: str
    specification_version: int
    inputs: dict[str, ValueType]
    image_inputs: dict[str, ImageInput]
    operations: list[Operation]
    outputs: list[str]
    output_types: dict[str, ValueType]
    metadata: dict[str, str] = field(default_factory=dict)
    spec: Any = None  # the coremltools Model protobuf it was read from

    @property
    def is_fp16(self) -> bool:
        return any(
            t.dtype == "FLOAT16" for op in self.operations for _, t in op.outputs if op.type != "const"
        )

    def op_types(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for op in self.operations:
            counts[op.type] = counts.get(op.type, 0) + 1
        return counts

    def __repr__(self) -> str:
        return (
            f"Program({self.path.name}, opset={self.opset}, inputs={list(self.inputs)}, "
            f"outputs={self.outputs}, {len(self.operations)} operations)"
        )


def _value_type(type_proto: Any) -> ValueType:
    kind = type_proto.WhichOneof("type")
    if kind != "tensorType":
        raise ModelLoadError(f"ML Program value of type {kind!r} is not supported by coreml-reference")
    from coremltools.proto import MIL_pb2

    tensor = type_proto.tensorType
    dtype = MIL_pb2.DataType.Name(tensor.dataType)
    shape = tuple(
        d.constant.size if d.WhichOneof("dimension") == "constant" else None for d in tensor.dimensions
    )
    return ValueType(dtype, shape)


def unpack_bits(packed: np.ndarray, nbits: int, count: int, signed: bool = False) -> np.ndarray:
    """Sub-byte integers packed least-significant bit first (coremltools' layout) -> one per element."""
    bits = np.unpackbits(packed.astype(np.uint8), bitorder="little")[: nbits * count].reshape(count, nbits)
    values = (bits.astype(np.int32) << np.arange(nbits, dtype=np.int32)).sum(axis=1)
    if signed:
        values = np.where(values >= 1 << (nbits - 1), values - (1 << nbits), values)
        return values.astype(np.int8)
    return values.astype(np.uint8)


class _BlobFiles:
    """Opens each weight file once."""

    def __init__(self, package: Path) -> None:
        self.package = package
        self.readers: dict[str, Any] = {}

    def read(self, file_name: str, offset: int, vtype: ValueType) -> np.ndarray:
        from coremltools.libmilstoragepython import _BlobStorageReader

        path = self.package / WEIGHTS_DIR / file_name.split("/")[-1]
        if str(path) not in self.readers:
            if not path.is_file():
                raise ModelLoadError(f"{self.package}: weight file {path.name} is missing")
            self.readers[str(path)] = _BlobStorageReader(str(path))
        reader_name = BLOB_READERS.get(vtype.dtype)
        if reader_name is None:
            raise ModelLoadError(f"{self.package}: weights of dtype {vtype.dtype} are not supported")
        data = np.asarray(getattr(self.readers[str(path)], f"read_{reader_name}_data")(offset))
        if vtype.dtype == "FLOAT16":
            data = data.view(np.float16)
        return data.astype(vtype.numpy_dtype, copy=False).reshape(vtype.shape)


def decode_value(value_proto: Any, blobs: _BlobFiles) -> Any:
    """A MIL Value (immediate or blob file) -> numpy array (0-d for scalars) or str."""
    vtype = _value_type(value_proto.type)
    which = value_proto.WhichOneof("value")
    if which == "blobFileValue":
        return blobs.read(value_proto.blobFileValue.fileName, value_proto.blobFileValue.offset, vtype)
    tensor = value_proto.immediateValue.tensor
    kind = tensor.WhichOneof("value")
    if kind == "strings":
        strings = list(tensor.strings.values)
        return strings[0] if vtype.shape == () else np.array(strings)
    count = int(np.prod(vtype.shape)) if vtype.shape else 1
    if kind == "bytes":
        raw = np.frombuffer(tensor.bytes.values, dtype=np.uint8)
        if vtype.dtype in SUB_BYTE_BITS:
            array = unpack_bits(raw, SUB_BYTE_BITS[vtype.dtype], count, signed=vtype.dtype == "INT4")
        else:
            array = raw.view(vtype.numpy_dtype)
    else:
        array = np.array(list(getattr(tensor, kind).values))
    return np.asarray(array).astype(vtype.numpy_dtype).reshape(vtype.shape)


def _bindings(argument: Any) -> list[Binding]:
    bindings = []
    for arg in argument.arguments:
        if arg.WhichOneof("binding") == "name":
            bindings.append(Binding(name=arg.name))
        else:
            bindings.append(Binding(value=arg.value))  # decoded when the program is prepared
    return bindings


def load_program(path: str | Path) -> tuple[Program, _BlobFiles]:
    """Parse `path` (an .mlpackage or .mlmodel holding an ML Program); ModelLoadError if it is not one."""
    path = Path(path)
    if not path.exists():
        raise ModelLoadError(f"{path}: no such file or directory")
    try:
        import coremltools as ct

        spec = ct.models.MLModel(str(path), skip_model_load=True).get_spec()
    except ImportError as exc:
        raise ModelLoadError(f"{path}: coreml-reference needs coremltools ({exc})") from None
    except Exception as exc:
        raise ModelLoadError(f"{path}: not a readable Core ML model ({type(exc).__name__}: {exc})") from None
    if spec.WhichOneof("Type") != "mlProgram":
        raise ModelLoadError(
            f"{path}: a {spec.WhichOneof('Type')} model, not an ML Program (convert_to='mlprogram')"
        )
    function = spec.mlProgram.functions["main"]
    block = function.block_specializations[function.opset]
    operations = []
    for op_proto in block.operations:
        if op_proto.blocks:
            raise ModelLoadError(
                f"{path}: control flow ({op_proto.type}) is not supported by coreml-reference"
            )
        name_attr = op_proto.attributes.get("name")
        op_name = (
            name_attr.immediateValue.tensor.strings.values[0] if name_attr is not None else op_proto.type
        )
        operations.append(
            Operation(
                type=op_proto.type,
                name=op_name,
                inputs={key: _bindings(arg) for key, arg in op_proto.inputs.items()},
                outputs=[(out.name, _value_type(out.type)) for out in op_proto.outputs],
                attributes={key: value for key, value in op_proto.attributes.items() if key != "name"},
            )
        )
    image_inputs = {}
    for feature in spec.description.input:
        if feature.type.WhichOneof("Type") == "imageType":
            image = feature.type.imageType
            color = ct.proto.FeatureTypes_pb2.ImageFeatureType.ColorSpace.Name(image.colorSpace)
            image_inputs[feature.name] = ImageInput(color, image.height, image.width)
    outputs = list(block.outputs)
    output_types = {name: vtype for op in operations for name, vtype in op.outputs if name in outputs}
    program = Program(
        path=path,
        opset=function.opset,
        specification_version=spec.specificationVersion,
        inputs={inp.name: _value_type(inp.type) for inp in function.inputs},
        image_inputs=image_inputs,
        operations=operations,
        outputs=outputs,
        output_types=output_types,
        metadata=dict(spec.description.metadata.userDefined),
        spec=spec,
    )
    return program, _BlobFiles(path)
