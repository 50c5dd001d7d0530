"""TFLite compaction: fewer bytes, and every output bit-identical on the builtin kernels and on XNNPACK."""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from egeunet import EGEUNet, EGEUNetConfig
from egeunet.export import tflite_flatbuffer as fb
from egeunet.export.data import synthetic_sets
from egeunet.model.deploy import for_litert, deploy_form
from egeunet.export import get_format
from egeunet.export.spec import ExportSpec
from egeunet.export.tflite_compact import compact
from egeunet.runtime.tflite_file import read_metadata

from conftest import perturb_

from ai_edge_litert.interpreter import Interpreter, OpResolverType

SIZE = 32
SMALL = EGEUNetConfig(channels=(4, 8, 12, 16, 24, 32))


@pytest.fixture(scope="module")
def raw_tflite(tmp_path_factory) -> dict[str, bytes]:
    """Trimmed (not compacted) fp32, fp16 and full-int8 conversions of a small perturbed model's deploy form (the
    LiteRT copy the exporter converts)."""
    from egeunet.export import tflite_export

    work = tmp_path_factory.mktemp("compact")
    torch.manual_seed(0)
    deploy = for_litert(deploy_form(perturb_(EGEUNet(SMALL).eval()), SIZE))
    fp32 = work / "fp32.tflite"
    tflite_export._convert_fp32(deploy, str(fp32))
    spec = ExportSpec(size=SIZE, calibration=synthetic_sets(SIZE, 4, 1)[0])
    out = {"fp32": fb.trim(fp32.read_bytes(), "{}", "image", "prob"), "converted": fp32.read_bytes()}
    recipes = {r.name: r for p in ("fp16", "int8") for r in get_format("tflite").recipes(p, spec)}
    for name in ("fp16", "int8"):
        path = work / f"{name}.tflite"
        tflite_export._quantize(str(fp32), str(path), recipes[name], spec)
        out[name] = fb.trim(path.read_bytes(), "{}", "image", "prob")
    return out


def _outputs(buf: bytes, resolver: OpResolverType, x: np.ndarray) -> np.ndarray:
    interpreter = Interpreter(model_content=buf, experimental_op_resolver_type=resolver, num_threads=1)
    interpreter.allocate_tensors()
    interpreter.set_tensor(interpreter.get_input_details()[0]["index"], x)
    interpreter.invoke()
    return interpreter.get_tensor(interpreter.get_output_details()[0]["index"]).copy()


@pytest.mark.parametrize("variant", ["fp32", "fp16", "int8"])
def test_compaction_is_bit_identical_and_smaller(variant, raw_tflite):
    """Same outputs bit for bit (XNNPACK and builtin kernels) on random images, in a smaller file."""
    before = raw_tflite[variant]
    after = compact(before)
    assert len(after) < 0.85 * len(before)
    x = np.random.default_rng(0).uniform(0, 255, (2, 1, 3, SIZE, SIZE)).astype(np.float32)
    for resolver in (OpResolverType.AUTO, OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES):
        for image in x:
            expected = _outputs(before, resolver, image)
            assert np.array_equal(_outputs(after, resolver, image), expected), resolver
            assert np.isfinite(expected).all() and expected.std() > 0


def test_compaction_rewrites_what_it_claims(raw_tflite):
    """SLICE runs become SPLITs, LayerNorm variances lose their RESHAPE (at 32 px the 1x1 stages are emitted another
    way, so not every one), names stay on the I/O only, no empty quantization, the contract survives."""
    before, after = fb.load(raw_tflite["int8"]), fb.load(compact(raw_tflite["int8"]))
    ops_before, ops_after = Counter(fb.op_names(before)), Counter(fb.op_names(after))
    assert ops_before["SLICE"] >= 4 and ops_after["SLICE"] == 0
    assert ops_after["SPLIT"] == ops_before["SLICE"] // 4
    layer_norms = sum(1 for m in EGEUNet(SMALL).modules() if type(m).__name__ == "LayerNorm2d")
    reshapes = ops_before["RESHAPE"] - ops_after["RESHAPE"]
    assert layer_norms // 2 <= reshapes <= layer_norms
    assert sum(ops_after.values()) == sum(ops_before.values()) - 3 * ops_after["SPLIT"] - reshapes
    sg = after.subgraphs[0]
    named = {i for i, t in enumerate(sg.tensors) if t.name}
    assert named == {int(sg.inputs[0]), int(sg.outputs[0])}
    assert all(t.quantization is None or len(t.quantization.scale) for t in sg.tensors)
    assert read_metadata(compact(raw_tflite["int8"])) == {}


def test_compacting_twice_changes_nothing(raw_tflite):
    """A compacted file is a fixed point (nothing left to share or drop)."""
    once = compact(raw_tflite["int8"])
    assert compact(once) == once


def test_running_min_max_ranges_are_each_tensors_extremes_over_all_images(raw_tflite, tmp_path):
    """The integer-only recipes' calibration (``Quantizer.calibrate`` per image, merged) gives every tensor the min and
    max it takes over all images, as an interpreter keeping all tensors computes them; ai-edge-quantizer's own
    moving average would pull the extremes of later images in."""
    from ai_edge_quantizer import quantizer

    from egeunet.export import tflite_export
    from egeunet.runtime.runners.litert_runner import interpreter

    path = tmp_path / "fp32.tflite"
    path.write_bytes(raw_tflite["converted"])
    spec = ExportSpec(size=SIZE, calibration=synthetic_sets(SIZE, 4, 1)[0])
    recipe = next(r for r in get_format("tflite").recipes("int8", spec) if r.ranges == "running-min-max")
    key, name = tflite_export._signature(str(path))
    rng = np.random.default_rng(0)
    images = [(rng.random((1, 3, SIZE, SIZE)) * 255 * scale).astype(np.float32) for scale in (0.2, 1.0, 0.5)]
    q = quantizer.Quantizer(str(path))
    q.load_quantization_recipe(tflite_export._rules(recipe, spec))
    ranges = tflite_export._running_min_max(q, {key: [{name: x} for x in images]})
    runner = interpreter(raw_tflite["converted"], keep_tensors=True)
    runner.allocate_tensors()
    signature = runner.get_signature_runner(key)
    index = {d["name"]: d["index"] for d in runner.get_tensor_details()}
    seen: dict[str, list[tuple[float, float]]] = {}
    for x in images:
        signature(**{name: x})
        for tensor in ranges:
            value = runner.get_tensor(index[tensor])
            seen.setdefault(tensor, []).append((float(value.min()), float(value.max())))
    moved = 0
    for tensor, extremes in seen.items():
        lo, hi = min(e[0] for e in extremes), max(e[1] for e in extremes)
        tol = 1e-4 * max(abs(lo), abs(hi), 1e-6)
        assert abs(float(np.min(ranges[tensor]["min"])) - lo) <= tol, tensor
        assert abs(float(np.max(ranges[tensor]["max"])) - hi) <= tol, tensor
        moved += extremes[-1][1] < hi - 100 * tol  # the last image does not reach the max: an average would differ
    assert moved > 10


def test_eight_byte_buffers_keep_their_alignment():
    """Data vectors start 4-byte aligned through flatbuffers' public API; INT64/FLOAT64 buffers need 8, which only the
    Builder's internals give (flatbuffers pinned in constraints.txt): this names them when a release moves them."""
    import flatbuffers

    from egeunet.export.tflite_compact import VECTOR_ALIGN, _SharingBuilder

    internals = ("StartVector", "EndVector", "Bytes", "head")
    missing = [n for n in internals if not hasattr(flatbuffers.Builder(0), n)]
    assert not missing, (f"flatbuffers {flatbuffers.__version__} has no Builder.{', Builder.'.join(missing)}: "
                         "rewrite the over-aligned path of tflite_compact._SharingBuilder.CreateNumpyVector")
    data = np.arange(24, dtype=np.uint8)
    for align in (1, 2, 4, 8, 16):
        builder = _SharingBuilder({id(data): align})
        builder.PrependUint8(7)  # an odd offset before the vector
        builder.Finish(builder.CreateNumpyVector(data))
        out = bytes(builder.Output())
        start = int.from_bytes(out[:4], "little") + 4  # the root offset points at the vector's length
        assert int.from_bytes(out[start - 4:start], "little") == data.size
        assert out[start:start + data.size] == data.tobytes() and start % max(align, VECTOR_ALIGN) == 0, align
