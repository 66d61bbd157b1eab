"""Fixtures shared by every test: isolated user dirs, the bundled model, a tiny model."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def isolated_user_dirs(tmp_path_factory, monkeypatch):
    """No test reads the developer's config or writes their state (journal, history)."""
    root = tmp_path_factory.mktemp("user")
    monkeypatch.setenv("DGTERM_CONFIG", str(root / "config.toml"))
    monkeypatch.setenv("DGTERM_STATE_DIR", str(root / "state"))
    for name in ("DGTERM_MODEL", "DGTERM_DEVICE", "DGTERM_DTYPE", "DGTERM_QUANT", "DGTERM_THEME",
                 "DGTERM_ALLOW_OFFLOAD", "DGTERM_SERVER", "DGTERM_API_KEY", "DGTERM_KERNELS",
                 "DGTERM_OFFLOAD_EXPERTS", "DGTERM_THINKING", "DGTERM_COMPILE"):
        monkeypatch.delenv(name, raising=False)
    return root


@pytest.fixture(autouse=True)
def kernel_mode_unset(monkeypatch):
    """A model load sets the process's kernel mode; each test starts with none set."""
    monkeypatch.setattr("dgterm.engine.local.kernels.selfcheck._mode", [])


@pytest.fixture
def continue_runs_out_of_memory(monkeypatch):
    """Every continuation task dies of a CUDA out-of-memory error at its first step."""
    import torch

    from dgterm.engine import tasks

    real = tasks.continue_text

    def raising():
        yield from ()
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    def out_of_memory(*args, **kwargs):
        task = real(*args, **kwargs)
        task._run = raising()
        return task

    monkeypatch.setattr(tasks, "continue_text", out_of_memory)


@pytest.fixture(scope="session")
def bundled():
    """The real bundled checkpoint, loaded once."""
    from dgterm.engine.local import loading

    return loading.load("bundled")


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory):
    """A tiny random DiffusionGemmaForBlockDiffusion checkpoint (canvas 16) with the bundled tokenizer."""
    import torch
    from transformers import AutoTokenizer, DiffusionGemmaForBlockDiffusion

    from dgterm.engine.local import checkpoint
    from dgterm.training import recipe as train

    recipe = train.Recipe(hidden_size=64, layers=2, heads=2, kv_heads=1, head_dim=32, intermediate_size=128,
                          expert_size=64, canvas_length=16)
    torch.manual_seed(0)
    model = DiffusionGemmaForBlockDiffusion(train.model_config(recipe))
    tokenizer = AutoTokenizer.from_pretrained(checkpoint.bundled_dir())
    path = tmp_path_factory.mktemp("tiny") / "tiny16"
    train.export(model, tokenizer, path, dict(steps=8, max_new_tokens=48))
    return path


@pytest.fixture(scope="session")
def tiny(tiny_dir):
    from dgterm.engine.local import loading

    return loading.load(str(tiny_dir))


# ------------------------------------------------------------------ `dgterm serve`, a real subprocess

KEY = "test-key-123"


@pytest.fixture(scope="session")
def served():
    """The bundled model behind `dgterm serve` (max batch 4, queue 24, a key), stopped at the end."""
    from dgterm.server.spawn import spawn

    server = spawn("--max-batch", "4", "--max-queue", "24", "--max-tokens", "512", env={"DGTERM_API_KEY": KEY})
    server.key = KEY
    yield server
    server.stop()


@pytest.fixture
def anyio_backend():
    return "asyncio"


@pytest.fixture
def remote(served):
    """dgterm's own remote engine on the served model (``served``)."""
    from dgterm.engine.remote.client import RemoteEngine

    engine = RemoteEngine(served.url, served.key)
    yield engine
    engine.close()


@pytest.fixture
def run_repl():
    """The real REPL on prompt-toolkit's pipe input, rich capturing what it prints.
    run_repl(lines, *argv, lm=..., terminal=False): type each line + Enter, then Ctrl-D."""
    from io import StringIO
    from types import SimpleNamespace

    from prompt_toolkit.input import create_pipe_input
    from prompt_toolkit.output import DummyOutput
    from rich.console import Console

    from dgterm.cli import build_parser
    from dgterm.engine.args import EngineArgs
    from dgterm.repl.loop import Repl

    def run(lines, *argv, lm=None, terminal=False, width=80, height=24, setup=None):
        args = build_parser().parse_args(["repl", *argv])
        out, err = StringIO(), StringIO()
        console = Console(file=out, width=width, height=height, force_terminal=terminal,
                          color_system="truecolor" if terminal else None)
        notes = Console(file=err, width=400)
        with create_pipe_input() as keys:
            keys.send_text("".join(line + "\r" for line in lines) + "\x04")  # Enter after each, then Ctrl-D
            repl = Repl(EngineArgs.from_cli_args(args), mode=args.mode, keys=args.keys, lm=lm, console=console,
                        notes=notes, input=keys, output=DummyOutput())
            if setup:
                setup(repl)
            rc = repl.run()
        return SimpleNamespace(repl=repl, rc=rc, out=out.getvalue(), err=err.getvalue())

    return run
