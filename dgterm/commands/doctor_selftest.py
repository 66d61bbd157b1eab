"""``dgterm doctor --selftest``: every kernel on every device here against its reference.

On a CUDA device the Triton kernels are checked in this process. On the CPU: the CPU paths
(the torch twin of the nf4 matmul, the sampler's CPU pass) against plain torch, and where
Triton is installed its kernels under Triton's interpreter in a child process (the
interpreter is chosen when Triton is first imported).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

_CHILD = ("import json, torch; from dgterm.engine.local.kernels import selfcheck; "
          "print(json.dumps(selfcheck.selftest([torch.device('cpu')])))")


def selftest_rows() -> list[dict]:
    import torch

    from dgterm.engine.local.kernels import cpu_paths, selfcheck

    cuda = [torch.device(f"cuda:{i}") for i in range(torch.cuda.device_count())] if torch.cuda.is_available() else []
    rows = selfcheck.selftest(cuda) + [cpu_paths.cpu_row(k) for k in cpu_paths.CPU_PATHS]
    if selfcheck.interpreted():
        return rows + selfcheck.selftest([torch.device("cpu")])
    if not selfcheck.triton_available():
        return rows
    env = {**os.environ, "TRITON_INTERPRET": "1"}
    proc = subprocess.run([sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, timeout=600)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1][:160]
        return rows + [{"kernel": k, "device": "cpu", "ok": False, "path": "reference", "seconds": 0.0,
                        "detail": f"the interpreter did not run ({last})"} for k in selfcheck.KERNELS]
    return rows + [{**r, "device": "cpu (interpreter)"} for r in json.loads(proc.stdout.strip().splitlines()[-1])]


def format_rows(rows: list[dict]) -> str:
    lines = ["kernel self-check (each kernel against its reference, on every device here)",
             f"  {'kernel':<20}{'device':<20}{'verdict':<10}{'runs as':<11}{'time':>8}  detail"]
    for r in rows:
        verdict = {True: "ok", False: "FAILED", None: "-"}[r["ok"]]
        lines.append(f"  {r['kernel']:<20}{r['device']:<20}{verdict:<10}{r['path']:<11}"
                     f"{r['seconds'] * 1000:>6.0f}ms  {r['detail']}")
    failed = [r for r in rows if r["ok"] is False]
    lines.append(f"problem: {len(failed)} kernel check(s) failed; those kernels run on their PyTorch reference path "
                 "(slower, same results). Please report it with this table." if failed
                 else "ok: every kernel that runs here agrees with its reference.")
    return "\n".join(lines)
