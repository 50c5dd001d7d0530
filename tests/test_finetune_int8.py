"""Quantization-aware fine-tuning: the fake-quant model against integer arithmetic, the run's files, exact resume."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from egeunet import EGEUNet, load_model
from egeunet.checkpoint import read_checkpoint
from egeunet.cli import main
from egeunet.data.synthetic import write_sample_dataset
from egeunet.model import EGEUNetConfig
from egeunet.training import finetune_int8 as ft
from egeunet.training.qat import WEIGHT_QMAX, FakeQuantEGEUNet
from tests.conftest import perturb_

pytestmark = pytest.mark.numeric  # run again on another CPU family's kernels (scripts/test.sh)

TINY = ["--size", "64", "--batch-size", "4", "--threads", "1", "--no-progress"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> tuple[Path, Path]:
    """(dataset, best.pt of a 2-epoch tiny training run on it)."""
    root = tmp_path_factory.mktemp("ft")
    data = write_sample_dataset(root / "data", n=12, seed=3)
    assert main(["train", "--data", str(data), "--out", str(root / "run"), "--cache-dir", str(root / "cache"),
                 "--epochs", "2", "--channels", "4,8,12,16,24,32", *TINY]) == 0
    return data, root / "run" / "best.pt"


def _tune(trained, out: Path, *extra: str) -> int:
    data, model = trained
    return main(["finetune-int8", str(model), "--data", str(data), "--out", str(out),
                 "--cache-dir", str(data.parent / "cache"), "--n-calib", "4", *TINY, *extra])


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return read_checkpoint(path)["state_dict"]


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


@pytest.fixture(scope="module")
def straight(trained) -> Path:
    """A 2-epoch fine-tuning run, the reference for resume."""
    out = trained[0].parent / "tuned"
    assert _tune(trained, out, "--epochs", "2") == 0
    return out


def test_first_convolution_matches_integer_arithmetic():
    """The fake-quant conv output equals int8 x int8 -> int32 accumulation requantized to the output's int8 grid."""
    torch.manual_seed(0)
    model = perturb_(EGEUNet(EGEUNetConfig(channels=(4, 8, 12, 16, 24, 32))), scale=0.1).eval()
    fq = FakeQuantEGEUNet(model)
    fq.calibrate(torch.rand(3, 3, 64, 64) * 255)
    seen = {}
    fq.quantizers[0].register_forward_hook(lambda m, i, o: seen.setdefault("x", o))
    fq.quantizers[1].register_forward_hook(lambda m, i, o: seen.setdefault("y", o))
    with torch.no_grad():
        fq(torch.rand(1, 3, 64, 64) * 255)
    (s_in, z_in), (s_out, z_out) = [(float(q.scale), int(q.zero_point)) for q in fq.quantizers[:2]]
    conv = model.encoder[0].block
    w = conv.weight.detach().double()
    s_w = w.abs().amax(dim=(1, 2, 3)) / WEIGHT_QMAX
    w_q = torch.round(w / s_w[:, None, None, None])
    x_q = torch.round(seen["x"].double() / s_in) + z_in
    assert x_q.min() >= -128 and x_q.max() <= 127
    bias_q = torch.round(conv.bias.detach().double() / (s_in * s_w))
    acc = torch.nn.functional.conv2d(x_q - z_in, w_q, bias_q, padding=1)  # exact integers in float64
    y_q = torch.clamp(torch.round(acc * (s_in * s_w)[None, :, None, None] / s_out) + z_out, -128, 127)
    sim = torch.round(seen["y"].double() / s_out) + z_out
    assert (sim - y_q).abs().max() <= 1  # the int32 bias rounding may move a value across a rounding boundary
    assert (sim == y_q).double().mean() > 0.99


def test_the_simulation_runs_the_deploy_form_itself():
    """A live deploy form (the one ``FakeQuantEGEUNet`` runs, unrounded here) computes what the exported form computes,
    follows the model's weights after ``refresh`` and passes gradients to every parameter (all of them reach the output)."""
    from egeunet.model.deploy import deploy_form, for_litert

    torch.manual_seed(2)
    model = perturb_(EGEUNet(EGEUNetConfig(channels=(4, 8, 12, 16, 24, 32))), scale=0.1)
    live = for_litert(deploy_form(model, 128, live=True))
    x = torch.rand(2, 3, 128, 128) * 255
    with torch.no_grad():
        model.encoder[3].block.params_zx.mul_(1.5)  # a map's parameter, the folded norm before a 1x1 and its conv
        model.bridges[1].tail_conv[0].weight.add_(0.2)
        model.bridges[1].tail_conv[1].weight.mul_(0.5)
        live.refresh()
        assert torch.equal(live(x), for_litert(deploy_form(model, 128))(x))
    live.refresh()
    live(x).square().mean().backward()
    without = [n for n, p in model.named_parameters() if p.grad is None or not p.grad.abs().sum()]
    assert without == [], without  # norm affines, map parameters and folded convolutions included


def test_simulation_matches_the_real_integer_only_tflite(trained):
    """Built and calibrated on the same images, the simulation has the TFLite's activation grids (every requantizing
    op's int8 scale and zero point) and its probabilities; a drift in structure or rounding breaks one of the two."""
    from ai_edge_litert.interpreter import Interpreter

    from egeunet.export.data import split_sets
    from egeunet.export.qat_fidelity import measure
    from egeunet.runtime.runners.litert_runner import per_tensor_grid

    data, ckpt = trained
    calib, held = split_sets(data, ckpt.parent / "split.json", 64, 8, None)
    model = load_model(ckpt)
    result = measure(model, calib.images, held.images)
    interpreter = Interpreter(model_content=result.tflite_bytes)
    tensors = {t["index"]: t for t in interpreter.get_tensor_details()}
    keep_scale = {"RESHAPE", "TRANSPOSE", "SLICE", "MAX_POOL_2D", "RESIZE_BILINEAR", "QUANTIZE", "DEQUANTIZE",
                  "LOGISTIC", "DELEGATE", "SPLIT"}
    grids = [per_tensor_grid(tensors[op["outputs"][0]]) for op in interpreter._get_ops_details()
             if op["op_name"] not in keep_scale]
    sim = FakeQuantEGEUNet(model)
    sim.calibrate(torch.from_numpy(calib.canonical()))
    simulated = [(float(q.scale), int(q.zero_point)) for q in sim.quantizers[1:]]

    def covered(grids: list, by: list) -> bool:
        return all(any(z == bz and abs(s - bs) <= 1e-2 * s for bs, bz in by) for s, z in grids)

    # every grid of one is a grid of the other, to 1% of the scale (an RSQRT range is the float rsqrt of a near-0
    # variance in calibration). The TFLite has more ops than grids (the ops feeding a concatenation
    # output on its grid, and the simulation has one quantizer per grid)
    assert len(simulated) > 0.9 * len(grids) and covered(grids, simulated) and covered(simulated, grids)
    summary = result.summary()
    # measured 0.869 and 0.124 on this weakly trained 64 px model, whose int8 masks agree with its float ones on only
    # 0.75 of the pixels: the float model is no stand-in for the TFLite, the simulation is (on an 8-epoch 256 px model,
    # scripts/qat_fidelity.py: 0.9946 and 0.0058 on 16 test images)
    assert summary["sim_vs_tflite_agreement"] > 0.85 and summary["tflite_vs_float_agreement"] < 0.85, summary
    assert summary["sim_vs_tflite_mean_abs_dprob"] < 0.15, summary


def test_sigmoid_output_is_on_the_int8_grid_and_plain_weights_round_trip():
    torch.manual_seed(1)
    model = perturb_(EGEUNet(EGEUNetConfig(channels=(4, 8, 12, 16, 24, 32))), scale=0.1).eval()
    fq = FakeQuantEGEUNet(model)
    x = torch.rand(2, 3, 64, 64) * 255
    fq.calibrate(x)
    with torch.no_grad():
        prob = fq(x)
    steps = prob.double() * 256
    assert torch.equal(steps, torch.round(steps))
    plain = fq.plain()
    assert type(plain) is EGEUNet and type(plain.encoder[0].norm) is torch.nn.GroupNorm
    assert _same(plain.state_dict(), model.state_dict())
    with torch.no_grad():  # the simulation is close to the float model, not equal to it
        diff = (prob - model(x)).abs()
    assert 0 < diff.mean() < 0.2


def test_run_writes_plain_checkpoints_and_does_not_worsen_agreement(straight, trained):
    for name in ("best.pt", "last.pt", "log.json", "split.json"):
        assert (straight / name).is_file(), name
    model, meta = load_model(straight / "best.pt", with_meta=True)
    assert type(model) is EGEUNet and meta["input_size"] == 64
    assert set(model.state_dict()) == set(load_model(trained[1]).state_dict())
    training = meta["training"]
    assert training["finetune_int8"]["epochs"] == 2 and training["original_model"] == str(trained[1].resolve())
    original_split = json.loads((trained[1].parent / "split.json").read_text())
    assert json.loads((straight / "split.json").read_text()) == original_split  # the model's test images stay unseen
    rows = json.loads((straight / "log.json").read_text())
    assert [r["epoch"] for r in rows] == [0, 1, 2]
    assert rows[0]["train_loss"] is None and all(r["train_loss"] > 0 for r in rows[1:])
    best = next(r for r in reversed(rows) if r["best"])
    assert meta["epoch"] == best["epoch"]
    assert ft._selection_key(best) >= ft._selection_key(rows[0])
    assert not _same(_weights(straight / "last.pt"), _weights(trained[1]))  # fine-tuning moved the weights
    last = read_checkpoint(straight / "last.pt")
    assert last["resume"]["epoch"] == 2 and len(last["resume"]["quantizers"]) > 100


def test_export_gates_int8_of_a_finetuned_model_against_the_original(straight, trained, tmp_path):
    """A fine-tuned checkpoint's int8 artifacts are gated against the model it was fine-tuned from; when that file is
    gone, against the checkpoint itself, and the manifest says why."""
    import shutil

    from egeunet.export.api import _int8_reference, reference_probs
    from egeunet.export.data import synthetic_sets

    images = synthetic_sets(64, 1, 2)[1].images
    tuned, meta = load_model(straight / "last.pt", with_meta=True)  # best.pt may be epoch 0, the original's weights
    own = reference_probs(tuned, images)
    probs, source = _int8_reference(meta, images, own)
    assert source["model"] == str(trained[1].resolve()) and "why" in source
    assert np.array_equal(probs, reference_probs(load_model(trained[1]), images)) and not np.array_equal(probs, own)
    moved = dict(meta, training={**meta["training"], "original_model": str(tmp_path / "gone.pt")})
    probs, source = _int8_reference(moved, images, own)
    assert probs is own and "is missing" in source["note"]
    changed = tmp_path / "changed.pt"
    shutil.copy(straight / "best.pt", changed)
    probs, source = _int8_reference(dict(meta, training={**meta["training"], "original_model": str(changed)}), images, own)
    assert probs is own and "has changed" in source["note"]
    assert _int8_reference(load_model(trained[1], with_meta=True)[1], images, own)[1] == {
        "model": "this checkpoint (fp32 PyTorch)"}


def test_resume_after_interrupt_continues_exactly(straight, trained, tmp_path, monkeypatch):
    """Interrupt a 2-epoch run during epoch 2, resume it: same weights, log and best as the straight run."""
    out = tmp_path / "cut"
    real = ft._train_epoch

    def interrupt_second(student, teacher, optimizer, data, config, epoch, device):
        if epoch == 2:
            raise KeyboardInterrupt
        return real(student, teacher, optimizer, data, config, epoch, device)

    monkeypatch.setattr(ft, "_train_epoch", interrupt_second)
    assert _tune(trained, out, "--epochs", "2") == 130
    monkeypatch.undo()
    assert read_checkpoint(out / "last.pt")["epoch"] == 1
    assert _tune(trained, out, "--epochs", "2", "--resume") == 0
    assert _same(_weights(straight / "last.pt"), _weights(out / "last.pt"))
    assert _same(_weights(straight / "best.pt"), _weights(out / "best.pt"))
    drop = ("seconds",)
    rows, reference = (json.loads((d / "log.json").read_text()) for d in (out, straight))
    assert [{k: v for k, v in r.items() if k not in drop} for r in rows] == \
        [{k: v for k, v in r.items() if k not in drop} for r in reference]
    quantizers = read_checkpoint(out / "last.pt")["resume"]["quantizers"]
    expected = read_checkpoint(straight / "last.pt")["resume"]["quantizers"]
    assert all(torch.equal(quantizers[k], expected[k]) for k in expected)


def test_finished_run_says_so_and_user_errors_are_one_line(straight, trained, tmp_path, capsys):
    capsys.readouterr()
    assert _tune(trained, straight, "--epochs", "2", "--resume") == 0
    assert "already finished (2 of 2 epochs done" in capsys.readouterr().out
    cases = [
        ([], straight, "already holds a run"),
        (["--resume", "--lr", "0.001"], straight, "lr=0.0001, not 0.001"),
        (["--resume"], tmp_path / "none", "last.pt not found"),
        (["--epochs", "0"], tmp_path / "a", "--epochs must be at least 1"),
        (["--distill", "-1"], tmp_path / "b", "--distill must be a finite number"),
        (["--size", "70"], tmp_path / "c", "--size: size 70 is not a multiple of 32"),
    ]
    for extra, out, message in cases:
        capsys.readouterr()
        assert _tune(trained, out, "--epochs", "2", *extra) == 1, extra
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1, err
    assert main(["finetune-int8", str(tmp_path / "missing.pt"), "--data", str(trained[0]), "--out",
                 str(tmp_path / "d")]) == 1
    assert "no such file" in capsys.readouterr().err
