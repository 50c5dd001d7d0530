"""The second run's kernels really are other kernels: PyTorch under scripts/other_kernels.env computes other numbers
than this machine's defaults (else the second run proves nothing). LiteRT under qemu: tests/test_export.py."""
from __future__ import annotations

import json
import os
import subprocess
import sys

from conftest import REFERENCE_DIR
from kernels import torch_env

_TORCH_CHILD = """
import hashlib, json, sys, numpy as np, torch, egeunet
torch.set_num_threads(1)
model = egeunet.load_model(sys.argv[1])
x = torch.from_numpy(np.random.default_rng(0).uniform(0, 255, (1, 3, 64, 64)).astype(np.float32))
with torch.no_grad():
    out = model(x).numpy()
model.train()
logit, _ = model.forward_logits(x)
logit.square().mean().backward()
grads = np.concatenate([p.grad.numpy().ravel() for p in model.parameters() if p.grad is not None])
print(json.dumps({"capability": torch.backends.cpu.get_cpu_capability(),
                  "output": hashlib.sha256(out.tobytes()).hexdigest(), "grads": hashlib.sha256(grads.tobytes()).hexdigest()}))
"""


def _torch_hashes(env: dict[str, str]) -> dict:
    """Hashes of the authors' model's output and of one backward pass's gradients, in a child with ``env``."""
    clean = {k: v for k, v in os.environ.items() if k not in torch_env()}
    done = subprocess.run([sys.executable, "-c", _TORCH_CHILD, str(REFERENCE_DIR / "best.pth")], capture_output=True,
                          text=True, timeout=300, env={**clean, **env})
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_other_torch_kernels_change_outputs_and_gradients():
    here, other = _torch_hashes({}), _torch_hashes(torch_env())
    assert other["capability"] == "DEFAULT" and here["capability"] != "DEFAULT", (here, other)
    assert here["output"] != other["output"] and here["grads"] != other["grads"], (here, other)
