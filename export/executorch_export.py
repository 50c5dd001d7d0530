"""ExecuTorch ``.pte`` through XNNPACK: fp32, and int8 from the PT2E XNNPACK quantizer (per-channel weights, int8
activations calibrated on the export's calibration images), every op of both programs inside the XNNPACK delegate.

Both lower ``deploy.for_executorch``'s form (the norms written in ops XNNPACK takes) from ``capture``'s program with
``to_edge_transform_and_lower`` and the ``XnnpackPartitioner``; splits become slices first (XNNPACK has no split).
The int8 program keeps the norms float (``float_regions``: the quantizer leaves those modules alone and XNNPACK runs
them in float, as full-int8 TFLite does); ``delegation`` counts what stays outside XNNPACK (nothing, on the demo model)
and ``export`` refuses a program where anything does.

Contract: a ``.pte`` has no free-form metadata, so the contract JSON is the program's constant method ``egeunet``
(``CONTRACT_KEY``; ExecuTorch's own named values: ``Module.execute("egeunet")`` in an app, no sidecar file).
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np

from egeunet.atomic import write_bytes_atomic
from egeunet.errors import EGEUNetError
from egeunet.export.base import Exporter, contract_json, register
from egeunet.export.capture import capture
from egeunet.export.recipes import Recipe, float_recipe
from egeunet.export.spec import ExportSpec, FormatConfig
from egeunet.quiet import held
from egeunet.runtime.contract import CONTRACT_KEY, parse_contract

CONFIG = FormatConfig(name="executorch", precisions=("fp32", "int8"))
DELEGATE = "executorch_call_delegate"  # the call of a delegated section in a lowered program's graph
XNNPACK = "XnnpackBackend"
SEGMENT_ALIGNMENT = 16  # ExecuTorch's default 128 pads each of ~200-300 weight segments: 10 KB of a 398 KB fp32 file


def float_regions() -> tuple[type, ...]:
    """Module classes of ``for_executorch``'s form whose ops the int8 program keeps float: the deploy form's float
    regions and the norms ``for_executorch`` writes (GroupNorm from channel statistics, their scale and shift, which
    ``PhaseConvStage`` computes outside its norm's own scope; GAB's norms as fixed 1x1 convolutions)."""
    from egeunet.model.deploy import FLOAT_MODULES, ConvGroupAffine, ConvStatsGroupNorm, LinearNormGAB

    return (*FLOAT_MODULES, ConvStatsGroupNorm, ConvGroupAffine, LinearNormGAB)


def _as_slices(program):
    """The program with every split written as slices (XNNPACK takes static slices, no split)."""
    import torch

    aten = torch.ops.aten

    def slices(x, sizes, dim=0):
        starts = np.cumsum([0, *sizes])
        return [aten.slice.Tensor(x, dim, int(a), int(b)) for a, b in zip(starts[:-1], starts[1:])]

    def split(x, size, dim=0):
        length = x.shape[dim]
        return slices(x, [min(size, length - start) for start in range(0, length, size)], dim)

    return program.run_decompositions({aten.split_with_sizes.default: slices, aten.split.Tensor: split})


def delegation(lowered) -> dict:
    """Call nodes of a lowered program (``to_edge_transform_and_lower``'s result): delegated sections, the ops
    inside them, and the ops left outside (by name); ``getitem`` (reading a section's outputs) is neither."""
    graph = lowered.exported_program().graph_module
    calls = [n for n in graph.graph.nodes if n.op == "call_function" and getattr(n.target, "__name__", "") != "getitem"]
    sections = [n for n in calls if n.target.__name__ == DELEGATE]
    inside = sum(1 for n in calls if n.target.__name__ == DELEGATE for node in getattr(graph, n.args[0].target)
                 .original_module.graph.nodes if node.op == "call_function")
    outside = Counter(n.target.__name__ for n in calls if n.target.__name__ != DELEGATE)
    return {"sections": len(sections), "delegated_ops": inside, "outside": dict(outside)}


def _quantized(form, spec: ExportSpec):
    """``form`` through the PT2E XNNPACK quantizer (per-channel symmetric int8 weights, int8 activations), calibrated
    on ``spec.calibration``, with ``float_regions`` left float."""
    import torch
    from executorch.backends.xnnpack.quantizer.xnnpack_quantizer import (XNNPACKQuantizer,
                                                                         get_symmetric_quantization_config)
    from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e

    from egeunet.runtime.contract import ArtifactIO

    if spec.calibration is None:
        raise EGEUNetError("ExecuTorch int8 needs calibration images (spec.calibration)")
    quantizer = XNNPACKQuantizer().set_global(get_symmetric_quantization_config(is_per_channel=True))
    for region in float_regions():
        quantizer.set_module_type(region, None)
    prepared = prepare_pt2e(_as_slices(capture(form)).module(), quantizer)
    inputs = ArtifactIO(spec.size, spec.layout, spec.bake_preprocess, "uint8").images_input(spec.calibration.images)
    with torch.no_grad():
        for x in inputs:
            prepared(torch.from_numpy(np.ascontiguousarray(x[None])))
    converted = _slices_on_output_grid(convert_pt2e(prepared))
    converted.example_input = form.example_input  # what ``capture`` traces the quantized module at
    return converted


def _slices_on_output_grid(module):
    """Requantize a slice's int8 input onto its output's grid before the slice (dequantize, slice, quantize on two
    grids becomes quantize onto the output's grid, then dequantize, slice, quantize on one): the same numbers, and
    XNNPACK takes a slice of an int8 tensor only on one grid (GAB's chunks of a feature into a concatenation)."""
    import torch

    quantize = torch.ops.quantized_decomposed.quantize_per_tensor.default
    dequantize = torch.ops.quantized_decomposed.dequantize_per_tensor.default
    graph = module.graph
    for node in list(graph.nodes):
        source = node.args[0] if node.op == "call_function" and node.target == torch.ops.aten.slice.Tensor else None
        users = list(node.users)
        if getattr(source, "target", None) != dequantize or len(users) != 1 or users[0].target != quantize \
                or source.args[1:] == users[0].args[1:]:
            continue
        grid = users[0].args[1:]
        with graph.inserting_before(node):
            onto = graph.call_function(dequantize, (graph.call_function(quantize, (source, *grid)), *grid))
        node.replace_input_with(source, onto)
    graph.lint()
    module.recompile()
    return module


@held("executorch")
def lower(deploy, spec: ExportSpec, recipe: Recipe, contract: str | None = None):
    """``for_executorch``'s form of ``deploy`` (int8: quantized by ``recipe``) lowered to XNNPACK; ``contract``: the
    JSON its ``egeunet`` constant method returns. The result's ``to_executorch().buffer`` is the ``.pte``."""
    from executorch.backends.xnnpack.partition.xnnpack_partitioner import XnnpackPartitioner
    from executorch.exir import to_edge_transform_and_lower

    from egeunet.model.deploy import for_executorch

    form = for_executorch(deploy)
    module = _quantized(form, spec) if recipe.static else form
    return to_edge_transform_and_lower(_as_slices(capture(module)), partitioner=[XnnpackPartitioner()],
                                       constant_methods={CONTRACT_KEY: contract} if contract else None)


@register
class ExecuTorchExporter(Exporter):
    """ExecuTorch exporter: one lowering per recipe, refused unless every op is inside XNNPACK."""

    config = CONFIG

    def recipes(self, precision: str, spec: ExportSpec, int8_io: bool = False) -> list[Recipe]:
        if precision == "fp32":
            return [float_recipe("fp32", "to_edge_transform_and_lower of for_executorch's form, every op in XNNPACK")]
        if precision != "int8":
            return []  # no fp16 program: XNNPACK computes float16 only on CPUs with float16 arithmetic (not x86)
        regions = tuple(f"{cls.__module__}.{cls.__qualname__}" for cls in float_regions())
        return [Recipe("int8", "int8", weights="int8", activations="int8", float_regions=regions, scales="calibration",
                       forms=("full",), method="PT2E XNNPACK quantizer: per-channel int8 weights, int8 activations, "
                                                "norm statistics float; every op in XNNPACK")]

    def export(self, deploy, spec: ExportSpec, out_path: Path, recipe: Recipe) -> Path:
        if recipe.weights == "int8" and not recipe.static or spec.int8_drift_budget is not None:
            raise EGEUNetError("the ExecuTorch exporter builds full int8 only (no dynamic-range form, no drift-budget "
                               "search)")
        lowered = lower(deploy, spec, recipe, contract_json(spec, CONFIG, recipe))
        outside = delegation(lowered)["outside"]
        if outside:
            raise EGEUNetError(f"{Path(out_path).name}: ops outside XNNPACK: {outside}")
        from executorch.exir import ExecutorchBackendConfig

        with held("executorch"):  # every XNNPACK weight is a segment of its own: 16-byte aligned (what XNNPACK asks),
            program = lowered.to_executorch(ExecutorchBackendConfig(segment_alignment=SEGMENT_ALIGNMENT))
            write_bytes_atomic(out_path, program.buffer)
        return Path(out_path)

    def describe(self, path: Path) -> dict:
        return describe_pte(Path(path))


def _program(path: Path):
    """The ``.pte``'s program (ExecuTorch's own reader of the file; it imports torch)."""
    from executorch.exir._serialize._program import deserialize_pte_binary

    return deserialize_pte_binary(path.read_bytes()).program


def describe_pte(path: Path) -> dict:
    """Inputs and outputs of ``forward`` (ExecuTorch's method metadata), the program's kernel calls outside any
    delegate (by operator), its delegate calls (by backend), the XNNPACK graph's int8 tensors and the contract."""
    from egeunet.runtime.runners.executorch_runner import load_program, read_contract, tensor_specs

    program = load_program(path)
    inputs, outputs = tensor_specs(program)
    serialized = _program(path)
    plan = next(p for p in serialized.execution_plan if p.name == "forward")
    kernels: Counter = Counter()
    delegates: Counter = Counter()
    for chain in plan.chains:
        for instruction in chain.instructions:
            call = instruction.instr_args
            if hasattr(call, "delegate_index"):
                delegates[plan.delegates[call.delegate_index].id] += 1
            elif hasattr(call, "op_index"):
                kernels[plan.operators[call.op_index].name] += 1
    int8 = _xnnpack_int8_ops(serialized)
    stored = parse_contract(read_contract(program)) or None
    names = (stored or {}).get  # a program's tensors have no names: the contract's, as every format reports them

    def io(specs, key: str) -> list[dict]:
        return [{"name": names(key, s.name), "dtype": s.dtype, "shape": list(s.shape)} for s in specs]

    return {"inputs": io(inputs, "input_name"), "outputs": io(outputs, "output_name"),
            "ops": sum(kernels.values()) + sum(delegates.values()), "op_counts": {**kernels, **delegates},
            "delegates": dict(delegates), "outside_delegates": dict(kernels),
            "quantization": {"int8_ops": int8} if int8 else None, "contract": stored}


def _xnnpack_int8_ops(program) -> int:
    """How many ops of a program's XNNPACK graphs write a quantized tensor (0: a float program), read with the flatc
    and the XNNPACK schema that ship with ExecuTorch."""
    import json
    import subprocess
    import tempfile
    from importlib import resources

    from executorch.backends.xnnpack.serialization.xnnpack_graph_serialize import XNNHeader

    package = resources.files("executorch")
    flatc = package / "data" / "bin" / "flatc"
    schema = package / "backends" / "xnnpack" / "serialization" / "schema.fbs"
    quantized = 0
    for plan in program.execution_plan:
        for delegate in plan.delegates:
            if delegate.id != XNNPACK:
                continue
            blob = program.backend_delegate_data[delegate.processed.index].data
            header = XNNHeader.from_bytes(blob[:XNNHeader.EXPECTED_LENGTH])
            with tempfile.TemporaryDirectory() as work:
                binary = Path(work) / "graph.bin"
                binary.write_bytes(blob[header.flatbuffer_offset:header.flatbuffer_offset + header.flatbuffer_size])
                subprocess.run([str(flatc), "--json", "--strict-json", "--raw-binary", "-o", work, str(schema), "--",
                                str(binary)], check=True, capture_output=True)
                graph = json.loads((Path(work) / "graph.json").read_text())
            ids = {v["xvalue_union"]["tensor_value"]["id_out"] for v in graph["xvalues"]
                   if "Quantized" in v["xvalue_union_type"]}
            quantized += sum(1 for node in graph["xnodes"] if node["xnode_union"].get("output_id") in ids)
    return quantized
