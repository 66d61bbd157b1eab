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
    path = write(tmp_path, 'model = "/models/a"\nquant = "int8"\nallow_offload = true\nrequire_valid = 8\n'
                           '[sampler]\nsteps = 24\n')
    s = load_settings(path, env={})
    assert (s.model, s.quant, s.allow_offload, s.sampler) == ("/models/a", "int8", True, {"steps": 24})
    assert s.require_valid == 8
    s = load_settings(path, env={"DGTERM_QUANT": "nf4", "DGTERM_ALLOW_OFFLOAD": "0"})
    assert (s.model, s.quant, s.allow_offload) == ("/models/a", "nf4", False)
    assert load_settings(tmp_path / "absent.toml", env={"DGTERM_ALLOW_OFFLOAD": "yes"}).allow_offload


@pytest.mark.parametrize("text, words", [
    ("allow_offload = 1\n", "allow_offload must be true or false"),
    ("colour = 'red'\n", "unknown setting(s) colour"),
    ("model = \n", "not valid TOML"),
    ("require_valid = true\n", "require_valid must be a whole number of candidates from 0"),
    ("require_valid = -1\n", "require_valid must be a whole number"),
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


@pytest.mark.parametrize("text, words", [
    ("model = 5\n", "model must be a string in quotes"),
    ("sampler = 5\n", "sampler must be a table"),
])
def test_settings_of_the_wrong_type_are_one_sentence(tmp_path, text, words):
    with pytest.raises(DgtermError, match=words):
        load_settings(write(tmp_path, text), env={})


def test_a_config_path_that_is_a_folder_is_one_sentence(tmp_path):
    with pytest.raises(DgtermError, match="Cannot read the config file"):
        load_settings(tmp_path, env={})


@pytest.mark.parametrize("overrides, words", [
    ({"steps": 10**20}, "steps must be at most 100000"),
    ({"seed": 10**23}, "seed must be at most"),
    ({"seed": 1.5}, "seed must be a whole number, not 1.5"),
    ({"steps": True}, "steps must be a whole number, not True"),
    ({"steps": "abc"}, "steps must be a whole number, not 'abc'"),
    ({"entropy_bound": float("nan")}, "entropy_bound must be a number, not nan"),
    ({"bogus": 1}, "unknown setting\\(s\\) bogus"),
])
def test_sampler_settings_are_checked_before_they_reach_torch(overrides, words):
    from dgterm.engine.params import SamplerParams

    with pytest.raises(ValueError, match=words):
        SamplerParams().replace(**overrides)
