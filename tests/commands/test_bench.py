"""`dgterm bench speed|quality|memory|serve` take the model flags through EngineArgs: config,
DGTERM_* and flags reach the model a benchmark loads (checked without running one)."""

from __future__ import annotations

import pytest

from dgterm import cli
from dgterm.commands import bench
from dgterm.engine.args import EngineArgs
from dgterm.errors import InputError

KINDS = ["speed", "quality", "memory", "serve"]


@pytest.fixture
def layers(tmp_path, monkeypatch):
    """A config file (quant), the environment (model, a server to ignore); flags come on top."""
    config = tmp_path / "config.toml"
    config.write_text('quant = "int8"\ndtype = "fp32"\n', encoding="utf-8")
    monkeypatch.setenv("DGTERM_CONFIG", str(config))
    monkeypatch.setenv("DGTERM_MODEL", "/models/from-env")
    monkeypatch.setenv("DGTERM_SERVER", "http://127.0.0.1:9")  # a benchmark measures the model in this process
    for name in ("DGTERM_DEVICE", "DGTERM_QUANT", "DGTERM_DTYPE", "DGTERM_ALLOW_OFFLOAD"):
        monkeypatch.delenv(name, raising=False)


@pytest.mark.parametrize("kind", KINDS)
def test_the_layers_reach_the_engine_args_of_every_benchmark(layers, kind):
    engine = bench.local_engine_args(cli.build_parser().parse_args(["bench", kind, "--device", "cpu"]))
    s = engine.settings
    assert (s.model, s.device, s.quant, s.dtype, s.server) == ("/models/from-env", "cpu", "int8", "fp32", "")


@pytest.mark.parametrize("kind", KINDS)
def test_every_benchmark_loads_its_model_through_engine_args(layers, kind, monkeypatch):
    loaded = []

    def load(self):
        loaded.append(self.settings)
        raise InputError("stopped before the benchmark")

    monkeypatch.setattr(EngineArgs, "load", load)
    assert cli.main(["bench", kind, "--device", "cpu", "--quant", "nf4"]) == 2
    assert [(s.model, s.device, s.quant, s.server) for s in loaded] == [("/models/from-env", "cpu", "nf4", "")]


def test_the_served_benchmark_starts_the_server_on_the_same_model(layers):
    from dgterm.bench.serve import serve_flags

    parse = cli.build_parser().parse_args
    engine = bench.local_engine_args(parse(["bench", "serve", "--device", "cpu", "--allow-offload"]))
    served = EngineArgs.from_cli_args(parse(["serve", *serve_flags(engine)])).settings
    assert served.model == "/models/from-env" and served.allow_offload
    assert (served.device, served.dtype, served.quant) == (engine.settings.device, "fp32", "int8")
