"""Settings layers: defaults < config file < environment < flags, for every front end."""

from __future__ import annotations

import pytest

from dgterm.cli import build_parser, settings_from
from dgterm.config import load_settings
from dgterm.errors import DgtermError


def write(tmp_path, text: str):
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_layers_apply_in_order(tmp_path):
    path = write(tmp_path, 'model = "/models/a"\nquant = "int8"\nallow_offload = true\n[sampler]\nsteps = 24\n')
    s = load_settings(path, env={})
    assert (s.model, s.quant, s.allow_offload, s.sampler) == ("/models/a", "int8", True, {"steps": 24})
    s = load_settings(path, env={"DGTERM_QUANT": "nf4", "DGTERM_ALLOW_OFFLOAD": "0"})
    assert (s.model, s.quant, s.allow_offload) == ("/models/a", "nf4", False)
    assert load_settings(tmp_path / "absent.toml", env={"DGTERM_ALLOW_OFFLOAD": "yes"}).allow_offload


@pytest.mark.parametrize("text, words", [
    ("allow_offload = 1\n", "allow_offload must be true or false"),
    ("colour = 'red'\n", "unknown setting(s) colour"),
    ("model = \n", "not valid TOML"),
])
def test_bad_config_is_one_sentence(tmp_path, text, words):
    with pytest.raises(DgtermError, match=words.replace("(", r"\(").replace(")", r"\)")):
        load_settings(write(tmp_path, text), env={})


@pytest.mark.parametrize("command", ["open", "repl", "generate", "infill"])
def test_allow_offload_flag_reaches_the_settings_of_every_front_end(command, tmp_path, monkeypatch):
    monkeypatch.setenv("DGTERM_CONFIG", str(tmp_path / "none.toml"))
    monkeypatch.delenv("DGTERM_ALLOW_OFFLOAD", raising=False)
    extra = {"open": ["f.md"], "repl": [], "generate": ["hi"], "infill": ["f.md", "--span", "0:1"]}[command]
    parse = build_parser().parse_args
    assert settings_from(parse([command, *extra, "--allow-offload"])).allow_offload is True
    assert settings_from(parse([command, *extra])).allow_offload is False
