"""Measure the export targets (issues 4, 25): file sizes, where the int8 TFLite bytes go, agreement, 1-thread latency.

    .venv/bin/python scripts/bench_export.py [--model CKPT] [--out DIR] [--size 256]

Without --model a model is trained briefly on synthetic images (seed 100; the export calibrates and
validates on seed 0). Latency: batch 1, one thread, median of --runs after warm-up, every runtime in
this one process with calls interleaved (fair on a shared machine). The exported fp32 ONNX and TFLite
are compared with a plain export of the same eval-mode weights (``torch.onnx.export`` at opset 18 and
``litert_torch.convert``) in the same run, each ONNX file with ORT's default options and with the NCHWc
layout pass disabled (``disabled_optimizers=["NchwcTransformer"]``), the better of the two counting; each
ratio also comes with the median and quartiles of its per-round ratios, to show how certain it is on a shared
machine. The same run times a norm-free floor: the deploy form with every normalization removed (``norm_free``), a
lower bound for any exact rewrite that keeps the convolutions, resizes and activations as they are. When the export
built ExecuTorch files (executorch in --formats), the fp32 and int8 ``.pte`` run in the same rounds (a bare one-thread
ExecuTorch ``forward``, XNNPACK) and the run gives issue 25's two ratios: fp32 .pte / fp32 TFLite in LiteRT (deploy
forms) and int8 .pte / fp32 .pte. ``--also`` files (.onnx, .tflite or .pte, e.g. an earlier export) join the same
rounds; an ``--also`` .pte is compared with the LiteRT deploy fp32. Prints markdown tables and writes DIR/bench.json.
"""
from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


def quick_train(size: int, steps: int, seed: int = 0):
    """AdamW on synthetic images at ``size`` (BCE on the final logit): a lightly trained model."""
    from egeunet import EGEUNet
    from egeunet.export.data import synthetic_sets

    torch.manual_seed(seed)
    data, _ = synthetic_sets(size, 64, 1, seed=100)
    x, y = torch.from_numpy(data.canonical()), torch.from_numpy(data.masks[:, None].astype(np.float32))
    model = EGEUNet()
    opt = torch.optim.AdamW(model.parameters(), 3e-3)
    for _ in range(steps):
        idx = torch.randint(0, len(x), (8,))
        loss = F.binary_cross_entropy_with_logits(model.forward_logits(x[idx])[0], y[idx])
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval()


def latency_rounds(predictors: dict, x: np.ndarray, runs: int) -> dict[str, list[float]]:
    """Wall times (ms) of each ``predict(x)`` per round, calls interleaved so a busy machine biases none of them."""
    for predict in predictors.values():
        for _ in range(5):
            predict(x)
    times: dict[str, list[float]] = {name: [] for name in predictors}
    for _ in range(runs):
        for name, predict in predictors.items():
            start = time.perf_counter()
            predict(x)
            times[name].append((time.perf_counter() - start) * 1000)
    return times


def latency_ms(predictors: dict, x: np.ndarray, runs: int) -> dict[str, float]:
    """Median wall time (ms) of each ``predict(x)``, calls interleaved."""
    return {name: statistics.median(t) for name, t in latency_rounds(predictors, x, runs).items()}


def round_ratios(mine: list[float], base: list[float]) -> dict[str, float]:
    """Median and quartiles of the per-round ratios mine / base (each round timed both within milliseconds, so a
    slow spell of a shared machine moves both): how certain a latency ratio is."""
    ratios = [a / b for a, b in zip(mine, base)]
    low, _, high = statistics.quantiles(ratios, n=4)
    return {"median": statistics.median(ratios), "q1": low, "q3": high, "rounds": len(ratios)}


def plain_onnx(model, size: int, path: Path) -> None:
    """``torch.onnx.export`` of the unmodified EGEUNet (torch.export, opset 18), the latency baseline (or of any
    module with the same input)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(model, (torch.zeros(1, 3, size, size),), str(path),
                          opset_version=18, verbose=False, external_data=False,
                          input_names=["image"], output_names=["prob"])


def plain_tflite(model, size: int, path: Path) -> None:
    """``litert_torch.convert`` of the unmodified EGEUNet, the LiteRT latency baseline (or of any module)."""
    import litert_torch

    litert_torch.convert(model.eval(), (torch.zeros(1, 3, size, size),)).export(str(path))


def norm_free(model, size: int):
    """The deploy form with every GroupNorm and LayerNorm removed: not the model's function, a latency floor. Any
    exact normalization reads its input at least once more than this, so no exact rewrite that keeps these
    convolutions, resizes and activations can run faster (an ad hoc one-multiply stand-in ran as fast)."""
    from egeunet.model.deploy import RsqrtLayerNorm, _swap_modules, deploy_form

    form = deploy_form(model, size)  # GAB's GroupInputsNorm keeps its chunks and concatenations, its norms go too
    _swap_modules(form.net, {nn.GroupNorm: lambda _: nn.Identity(), RsqrtLayerNorm: lambda _: nn.Identity()})
    return form


NCHWC_OFF = ["NchwcTransformer"]  # ORT's NCHWc layout pass, measured on and off


def ort_predict(path: Path, disabled: list[str] | None = None):
    """Bare one-thread ORT session on the float NCHW input (no runner overhead, same for every file)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = 1, 1
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"],
                                   disabled_optimizers=disabled or [])
    name = session.get_inputs()[0].name
    return lambda x: session.run(None, {name: x})[0]


def litert_predict(path: Path):
    """Bare one-thread LiteRT interpreter (XNNPACK, the default delegate) on the float NCHW input."""
    from ai_edge_litert.interpreter import Interpreter

    interpreter = Interpreter(model_path=str(path), num_threads=1)
    interpreter.allocate_tensors()
    inp, out = interpreter.get_input_details()[0]["index"], interpreter.get_output_details()[0]["index"]

    def predict(x: np.ndarray) -> np.ndarray:
        interpreter.set_tensor(inp, x)
        interpreter.invoke()
        return interpreter.get_tensor(out)

    return predict


def executorch_predict(path: Path):
    """Bare one-thread ExecuTorch ``forward`` (XNNPACK delegate) on the float NCHW input, loaded as the runner loads it."""
    from egeunet.runtime.runners.executorch_runner import forward_method, load_program

    method = forward_method(load_program(path), threads=1)
    return lambda x: method.execute([torch.from_numpy(x)])[0].numpy()


# (runtime, file suffix, {name suffix: predictor factory}): how deploy_vs_plain times each file
RUNTIMES = [("ORT", ".onnx", {"": ort_predict, ", NCHWc off": lambda path: ort_predict(path, NCHWC_OFF)}),
            ("LiteRT", ".tflite", {"": litert_predict}),
            ("ExecuTorch", ".pte", {"": executorch_predict})]


def deploy_vs_plain(out: Path, model, size: int, x: np.ndarray, runs: int, also: list[Path] = ()) -> dict:
    """fp32 and int8 exports, the norm-free floor and the ``also`` files (e.g. an earlier export of the same model)
    against plain exports of the same weights, and the .pte files against the LiteRT deploy fp32: ms per runtime and
    option, and ratios."""
    plain_onnx(model, size, out / "plain.onnx")
    plain_tflite(model, size, out / "plain.tflite")
    floor = norm_free(model, size)
    plain_onnx(floor, size, out / "floor.onnx")
    plain_tflite(floor, size, out / "floor.tflite")
    art = out / "artifacts"
    stems = {"plain": out / "plain", "deploy": art / "egeunet_fp32", "deploy int8": art / "egeunet_int8",
             "norm-free floor": out / "floor"}
    extra = [str(path) for path in also]
    predictors = {}
    for runtime, suffix, factories in RUNTIMES:
        for name, path in [(name, stem.with_suffix(suffix)) for name, stem in stems.items()] + \
                [(str(path), path) for path in also if path.suffix == suffix]:
            if path.exists():
                predictors.update({f"{runtime} {name}{label}": make(path) for label, make in factories.items()})
    rounds = latency_rounds(predictors, x, runs)
    ms = {name: statistics.median(t) for name, t in rounds.items()}

    def best(prefix: str) -> str | None:
        found = [k for k in ms if k == prefix or k == prefix + ", NCHWc off"]
        return min(found, key=ms.get) if found else None

    ratios, spread = {}, {}

    def compare(label: str, mine: str | None, base: str | None) -> None:
        if mine and base:
            ratios[label], spread[label] = ms[mine] / ms[base], round_ratios(rounds[mine], rounds[base])

    for runtime in ("ORT", "LiteRT"):
        for form in ("deploy", "deploy int8", "norm-free floor", *extra):
            compare(f"{runtime} {form} / plain", best(f"{runtime} {form}"), best(f"{runtime} plain"))
    litert = best("LiteRT deploy")  # issue 25: fp32 .pte within 1.1x of this, int8 .pte not slower than fp32 .pte
    compare("ExecuTorch fp32 .pte / LiteRT fp32 TFLite (deploy)", best("ExecuTorch deploy"), litert)
    compare("ExecuTorch int8 .pte / ExecuTorch fp32 .pte", best("ExecuTorch deploy int8"), best("ExecuTorch deploy"))
    for name in extra:
        compare(f"ExecuTorch {name} / LiteRT deploy", best(f"ExecuTorch {name}"), litert)
    sizes = {"plain.onnx": (out / "plain.onnx").stat().st_size, "plain.tflite": (out / "plain.tflite").stat().st_size}
    return {"ms_1thread": ms, "ratios": ratios, "round_ratios": spread, "plain_bytes": sizes}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="checkpoint; default: train briefly on synthetic images")
    parser.add_argument("--out", default="bench-export", help="output folder (default bench-export)")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--steps", type=int, default=150, help="training steps without --model")
    parser.add_argument("--calib", help="calibration images (the model's training data: its test split is held out); "
                                        "default: synthetic images")
    parser.add_argument("--n-calib", type=int, default=32)
    parser.add_argument("--n-held", type=int, help="held-out images (default: the model's test split with --calib, else 16)")
    parser.add_argument("--formats", default="onnx,tflite",
                        help="export formats (default onnx,tflite); with executorch the .pte files are timed too")
    parser.add_argument("--runs", type=int, default=60, help="timed rounds (default 60)")
    parser.add_argument("--also", nargs="*", type=Path, default=[], metavar="FILE",
                        help="more .onnx/.tflite/.pte files timed in the same interleaved run (e.g. an earlier "
                             "export); a .pte is compared with the LiteRT deploy fp32")
    parser.add_argument("--fp32-tol", type=float, help="fp32 gate's max |dprob| (default: the export's, 1e-4); "
                                                       "a looser one keeps a failing fp32 file so its latency is measured")
    args = parser.parse_args()
    for path in args.also:
        if path.suffix not in {suffix for _, suffix, _ in RUNTIMES} or not path.is_file():
            parser.error(f"--also {path}: not an existing .onnx, .tflite or .pte file")

    from egeunet import load_model, save_checkpoint
    from egeunet.accuracy import Gate
    from egeunet.runtime.runners import open_runner
    from egeunet.export import ExportFailed, ExportSpec, export_all
    from egeunet.export.data import synthetic_sets
    from egeunet.runtime.byte_accounting import onnx_accounting as onnx_size_breakdown
    from egeunet.export.tflite_flatbuffer import size_breakdown

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    model_path = Path(args.model) if args.model else out / "trained.pt"
    if not args.model:
        start = time.perf_counter()
        save_checkpoint(model_path, quick_train(args.size, args.steps), args.size)
        print(f"trained {args.steps} steps in {time.perf_counter() - start:.0f} s")
    try:
        gates = {} if args.fp32_tol is None else {"fp32": Gate(max_abs_dprob=args.fp32_tol)}
        manifest = export_all(model_path, out / "artifacts", spec=ExportSpec(size=args.size, gates=gates),
                              formats=args.formats, precisions="fp32,fp16,int8", calib_dir=args.calib,
                              n_calib=args.n_calib, n_held=args.n_held or (None if args.calib else 16))
    except ExportFailed as exc:
        manifest = exc.manifest
        print(f"some artifacts failed: {exc}")

    torch.set_num_threads(1)
    model = load_model(model_path)
    x = synthetic_sets(args.size, 1, 1)[1].canonical()
    plain = out / "plain.onnx"
    plain_onnx(model, args.size, plain)
    rows = [{"file": "PyTorch eager (reference)", "bytes": None},
            {"file": "plain torch.onnx.export (baseline)", "bytes": plain.stat().st_size}]
    predictors = {rows[0]["file"]: lambda b: model(torch.from_numpy(b)),
                  rows[1]["file"]: open_runner(plain, threads=1).predict}
    for record in manifest["artifacts"] + manifest["failed"]:
        path = out / "artifacts" / record["file"]
        row = {"file": record["file"], "kept": record["kept"], "bytes": record.get("bytes"),
               **{k: record.get("validation", {}).get(k) for k in ("max_abs_dprob", "agreement", "iou_drop_points",
                                                                 "iou_reference", "iou_artifact")}}
        if path.exists() and path.suffix != ".mlpackage":
            predictors[record["file"]] = open_runner(path, threads=1).predict
        if path.suffix in (".tflite", ".onnx") and path.exists():
            breakdown = size_breakdown if path.suffix == ".tflite" else onnx_size_breakdown
            row["size_breakdown"] = breakdown(path.read_bytes())
        rows.append(row)
    with torch.no_grad():
        measured = latency_ms(predictors, x, args.runs)
    for row in rows:
        row["ms_1thread"] = measured.get(row["file"])
    deploy_ms = next((r["ms_1thread"] for r in rows if r["file"] == "egeunet_fp32.onnx"), None)
    ratio = deploy_ms / rows[1]["ms_1thread"] if deploy_ms else None
    with torch.no_grad():
        versus = deploy_vs_plain(out, model, args.size, x, args.runs, args.also)
    result = {"size": args.size, "rows": rows, "deploy_vs_plain_onnx_latency": ratio, "deploy_vs_plain": versus,
              "versions": manifest["versions"]}
    (out / "bench.json").write_text(json.dumps(result, indent=1, default=str) + "\n")

    print(f"\n| artifact | bytes | max abs dprob | mask agreement | IoU drop (points) | 1-thread ms ({args.size}^2) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        cells = [f"{r['bytes']:,}" if r.get("bytes") else "-"]
        cells += [f"{r[k]:.2e}" if k == "max_abs_dprob" and r.get(k) is not None else
                  f"{r[k]:.4f}" if r.get(k) is not None else "-" for k in ("max_abs_dprob", "agreement", "iou_drop_points")]
        cells.append(f"{r['ms_1thread']:.2f}" if r.get("ms_1thread") else "-")
        print(f"| {r['file']} | " + " | ".join(cells) + " |")
    if ratio:
        print(f"\nfp32 ONNX deploy form / plain torch.onnx.export latency (1 thread, same run): {ratio:.2f}x")
    print(f"\nDeploy form vs plain export of the same weights (1 thread, batch 1, {args.size}^2, one interleaved run; "
          "ORT ratios use the better of default / NCHWc off):")
    print("| model | ms |\n|---|---|")
    for name, value in versus["ms_1thread"].items():
        print(f"| {name} | {value:.2f} |")
    for name, value in versus["ratios"].items():
        r = versus["round_ratios"][name]
        print(f"{name}: {value:.2f}x (per-round ratios: median {r['median']:.2f}x, quartiles {r['q1']:.2f}-{r['q3']:.2f}x, "
              f"{r['rounds']} rounds)")
    print("norm-free floor: the deploy form with every normalization removed (not the model's function); no exact "
          "rewrite that keeps its convolutions, resizes and activations runs faster")
    print("plain export bytes: " + ", ".join(f"{k} {v:,}" for k, v in versus["plain_bytes"].items()))
    for r in rows:
        b = r.get("size_breakdown")
        if b and "tensor_name_bytes" in b:
            print(f"{r['file']}: {b['bytes']:,} B = constants {b['constant_data_bytes']:,}, names {b['tensor_name_bytes']:,}, "
                  f"{b['tensors']} tensors ({b['quantized_tensors']} quantised, {b['quant_scale_values']} scales), {b['ops']} ops")
        elif b:
            data = ", ".join(f"{k} {v:,}" for k, v in b["constant_data_by_type"].items())
            print(f"{r['file']}: {b['bytes']:,} B = constants {b['constant_data_bytes']:,} ({data}) + structure "
                  f"{b['structure_bytes']:,} ({b['ops']} ops, {b['structure_bytes_per_op']} B/op; nodes "
                  f"{b['node_bytes']:,}, names {b['value_name_bytes']:,}, metadata {b['metadata_bytes']:,})")


if __name__ == "__main__":
    main()
