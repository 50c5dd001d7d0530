"""Minimal reproduction of XNNPACK's int8 MEAN fault over long reductions (for an upstream report).

One-op TFLite models, built by hand from LiteRT's flatbuffer schema: an int8 MEAN over the last two axes of a
1 x 4 x K x L tensor (keep dims), input and output on the same int8 grid. Each is fed a constant input for every int8
value v (the exact mean is v itself) and run on LiteRT's default XNNPACK delegate and on its built-in kernels. Prints,
per reduction length, how many of the 256 int8 values each kernel gets wrong. Measured (issue 22): on an AVX2 CPU
without AVX-512 (AMD EPYC, or this script under `qemu-x86_64 -cpu Haswell`), XNNPACK is wrong on 39-128 values for
reductions of 24,576 values and more, and on none up to 8,192; the built-in kernel is exact.

    python scripts/repro_xnnpack_mean.py                                    # this CPU
    qemu-x86_64 -cpu Haswell .venv/bin/python scripts/repro_xnnpack_mean.py # AVX2 kernels on any x86 host
"""
from __future__ import annotations

import argparse
import platform

import numpy as np

LENGTHS = ((8, 512), (16, 512), (8, 1024), (48, 512), (128, 512), (256, 512))  # K x L: 4,096 ... 131,072 values
SCALE, ZERO_POINT = 0.05, -3  # one int8 grid for input and output


def mean_model(k: int, length: int) -> bytes:
    """Flatbuffer of one int8 MEAN over axes (2, 3) of a 1 x 4 x k x length tensor, keep dims."""
    import flatbuffers
    from ai_edge_litert import schema_py_generated as s

    def tensor(shape: list[int], kind: int, buffer: int, name: str, quantized: bool) -> s.TensorT:
        t = s.TensorT()
        t.shape, t.type, t.buffer, t.name = shape, kind, buffer, name.encode()
        if quantized:
            t.quantization = s.QuantizationParametersT()
            t.quantization.scale, t.quantization.zeroPoint = [SCALE], [ZERO_POINT]
        return t

    axes = s.BufferT()
    axes.data = list(np.array([2, 3], np.int32).tobytes())
    code = s.OperatorCodeT()
    code.builtinCode = code.deprecatedBuiltinCode = s.BuiltinOperator.MEAN
    code.version = 2
    op = s.OperatorT()
    op.opcodeIndex, op.inputs, op.outputs = 0, [0, 1], [2]
    op.builtinOptionsType = s.BuiltinOptions.ReducerOptions
    op.builtinOptions = s.ReducerOptionsT()
    op.builtinOptions.keepDims = True
    graph = s.SubGraphT()
    graph.tensors = [tensor([1, 4, k, length], s.TensorType.INT8, 0, "x", True),
                     tensor([2], s.TensorType.INT32, 1, "axes", False),
                     tensor([1, 4, 1, 1], s.TensorType.INT8, 0, "mean", True)]
    graph.inputs, graph.outputs, graph.operators = [0], [2], [op]
    model = s.ModelT()
    model.version, model.operatorCodes, model.subgraphs = 3, [code], [graph]
    model.buffers = [s.BufferT(), axes]
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


def wrong_values(buf: bytes, shape: tuple[int, ...], builtin: bool) -> int:
    """How many of the 256 constant int8 inputs give a mean other than the input value."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    kind = OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES if builtin else OpResolverType.AUTO
    interpreter = Interpreter(model_content=buf, num_threads=1, experimental_op_resolver_type=kind)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0]["index"], interpreter.get_output_details()[0]["index"]
    wrong = 0
    for value in range(-128, 128):
        interpreter.set_tensor(inp, np.full(shape, value, np.int8))
        interpreter.invoke()
        wrong += int(np.any(interpreter.get_tensor(out) != value))
    return wrong


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    import ai_edge_litert

    print(f"ai-edge-litert {getattr(ai_edge_litert, '__version__', '?')} on {platform.machine()}; "
          "wrong int8 means of 256 constant inputs:")
    print(f"{'values reduced':>15} {'XNNPACK':>8} {'built-in':>9}")
    for k, length in LENGTHS:
        buf = mean_model(k, length)
        shape = (1, 4, k, length)
        print(f"{k * length:>15,} {wrong_values(buf, shape, False):>8} {wrong_values(buf, shape, True):>9}")


if __name__ == "__main__":
    main()
