"""Per-operator profile of an ExecuTorch program: an ETDump recorded over timed runs, read with ExecuTorch's Inspector.

``egeunet benchmark --etdump`` records one ``etdump/NAME.RUNTIME.etdp`` per ``.pte`` row into the report folder: the
``executorch`` runtime through ExecuTorch's Python runtime (``Runtime.load_program(enable_etdump=True)``),
``executorch-arm64`` through the kit's native runner (``executorch_run --etdump``) under qemu. Each event the runtime
logs is one operator call: an XNNPACK operator inside a delegated section (the wheel's XNNPACK logs its own operators,
named like ``Convolution (NHWC, F32) IGEMM #3``), a kernel outside any delegate, or the section's call itself
(``DELEGATE_CALL``); ``Method::execute`` is the whole run. The summary groups events by operator (the name without
its ``#N``) and gives each group's median milliseconds per run and its share of ``Method::execute``. The ``.etdp``
opens in ExecuTorch's Inspector as it is (``Inspector(etdump_path=...)``) for the full event list.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import numpy as np

RUNTIMES = ("executorch", "executorch-arm64")  # the runtimes whose rows get a profile
WHOLE_RUN = "Method::execute"
SECTION = "DELEGATE_CALL"
NOT_OPERATORS = (WHOLE_RUN, "Method::init", "Program::load_method")  # the run itself and loading


def record(path: str | Path, runtime: str, runs: int, dest: Path) -> Path:
    """Run ``path``'s ``forward`` ``runs`` times on random input of its own shape with ETDump on; write ``dest``."""
    from egeunet.runtime.contract import synthetic_input
    from egeunet.runtime.runners import open_runner

    runner = open_runner(path, runtime)
    spec = runner.input_spec()
    x = synthetic_input(spec.concrete(runner.input_size, 1), spec.dtype)
    dest.parent.mkdir(parents=True, exist_ok=True)
    if runtime == "executorch-arm64":
        runner.run_raw(np.repeat(x, runs, axis=0), options=("--etdump", str(dest)))
        return dest
    import torch
    from executorch.runtime import Runtime

    from egeunet.quiet import held

    with held("executorch", echo_on_error=False):
        program = Runtime.get().load_program(Path(path), enable_etdump=True)
        method = program.load_method("forward")
        tensor = torch.from_numpy(x)
        for _ in range(runs):
            method.execute([tensor])
        program.write_etdump_result_to_file(str(dest), str(dest.with_suffix(".debug.bin")))
    dest.with_suffix(".debug.bin").unlink(missing_ok=True)  # no debug buffer was asked for: nothing in it
    return dest


def summarize(etdp: Path) -> dict:
    """Median ms per run of ``Method::execute`` and, per operator, its calls per run, median ms per run, share of the
    run and whether it ran inside a delegate; operators slowest first."""
    from egeunet.quiet import held

    with held("executorch", echo_on_error=False):
        from executorch.devtools import Inspector

        inspector = Inspector(etdump_path=str(etdp))
    # one block per executed method: forward's is the one with the most events (the contract's method has none)
    blocks = [[e for e in block.events if e.perf_data is not None] for block in inspector.event_blocks]
    events = max((b for b in blocks if any(e.name == WHOLE_RUN for e in b)), key=len, default=[])
    whole = [e for e in events if e.name == WHOLE_RUN]
    if not whole:
        raise ValueError(f"{etdp.name} has no {WHOLE_RUN} event")
    runs = len(whole[0].perf_data.raw)
    groups: dict[str, list] = defaultdict(list)
    for event in events:
        if event.name not in NOT_OPERATORS and len(event.perf_data.raw) == runs:
            groups[event.name.rsplit(" #", 1)[0]].append(event)
    execute_ms = float(np.median(whole[0].perf_data.raw))
    operators = []
    for name, group in groups.items():
        ms = float(np.median(np.sum([e.perf_data.raw for e in group], axis=0)))
        operators.append({"operator": name, "delegated": bool(group[0].is_delegated_op), "calls": len(group),
                          "ms": ms, "share": ms / execute_ms if execute_ms else None})
    operators.sort(key=lambda op: (op["operator"] != SECTION, -op["ms"]))
    return {"runs": runs, "execute_ms": execute_ms, "operators": operators}


def profile_rows(results: dict, out: str | Path, runs: int, emulated_runs: int) -> None:
    """Record and summarize a profile for every .pte row that ran in an ExecuTorch runtime, into
    ``results["etdump"]`` (files under ``out/etdump/``); a row whose profile fails gets its one-line error instead."""
    import re

    from egeunet.errors import EGEUNetError

    profiles = []
    for row in results["rows"]:
        if row.get("runtime") not in RUNTIMES or row["status"] != "ok":
            continue
        name = re.sub(r"[^A-Za-z0-9_.-]+", "_", f"{Path(row['file']).stem}.{row['runtime']}")
        dest = Path(out) / "etdump" / f"{name}.etdp"
        entry = {"name": row["name"], "runtime": row["runtime"], "file": str(dest.relative_to(out))}
        try:
            record(row["file"], row["runtime"], emulated_runs if row.get("emulated") else runs, dest)
            entry.update(summarize(dest))
        except (EGEUNetError, ValueError, RuntimeError) as exc:
            entry["error"] = (str(exc).splitlines() or [type(exc).__name__])[0][:200]
        profiles.append(entry)
    results["etdump"] = profiles
