"""Settings layers: defaults < config file < environment < flags, for every front end."""

from __future__ import annotations

import pytest

from dgterm.cli import build_parser
from dgterm.config import load_settings
from dgterm.engine.args import EngineArgs
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
    assert not load_settings(write(tmp_path, "compile = true\n"), env={"DGTERM_COMPILE": "off"}).compile
    assert load_settings(tmp_path / "absent.toml", env={"DGTERM_COMPILE": "1"}).compile


@pytest.mark.parametrize("text, words", [
    ("allow_offload = 1\n", "allow_offload must be true or false"),
    ("compile = 'yes'\n", "compile must be true or false"),
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
    assert EngineArgs.from_cli_args(parse([command, *extra, "--allow-offload"])).settings.allow_offload is True
    assert EngineArgs.from_cli_args(parse([command, *extra])).settings.allow_offload is False
    assert EngineArgs.from_cli_args(parse([command, *extra, "--compile"])).settings.compile is True


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


def test_one_way_in_layers_sampler_settings(tmp_path, monkeypatch):
    """EngineArgs: the model's defaults < the config's [sampler] < flags, the same for every front end."""
    from types import SimpleNamespace

    monkeypatch.setenv("DGTERM_CONFIG", str(write(tmp_path, 'quant = "int8"\n[sampler]\nsteps = 24\nseed = 3\n')))
    monkeypatch.setenv("DGTERM_QUANT", "nf4")
    parse = build_parser().parse_args
    engine = EngineArgs.from_cli_args(parse(["generate", "x", "--steps", "5", "--candidates", "3"]))
    assert (engine.settings.quant, engine.candidates) == ("nf4", 3)
    model = SimpleNamespace(defaults=engine.sampler_params().replace(steps=99, t_min=0.1))
    assert (engine.sampler_params(model).steps, engine.sampler_params(model).seed) == (5, 3)
    assert engine.sampler_params(model).t_min == 0.1  # the model's default where no layer sets it
    assert EngineArgs.from_cli_args(parse(["generate", "x"])).sampler_params(model).steps == 24
    assert EngineArgs.from_settings(load_settings()).replace(model="/m").settings.model == "/m"


def test_one_way_in_refuses_bad_sampler_settings_in_one_sentence(tmp_path):
    bad = EngineArgs.from_settings(load_settings(write(tmp_path, "[sampler]\nsteps = 0\n"), env={}))
    with pytest.raises(DgtermError, match=r"^Bad sampler setting: steps must be at least 1; fix the \[sampler\] table"):
        bad.check()
    with pytest.raises(DgtermError, match="fix the flag or the"):
        EngineArgs.from_settings(sampler={"t_min": 0.9}).check()
    with pytest.raises(DgtermError, match="--candidates must be at least 1"):
        EngineArgs.from_settings(candidates=0).check()


def test_a_bad_sampler_setting_is_a_setting_error_that_is_also_a_value_error():
    """huggingface_hub's style: the error refines both the user-input error and the builtin."""
    from dgterm.engine.params import SamplerParams
    from dgterm.errors import InputError, SettingError

    with pytest.raises(SettingError) as err:
        SamplerParams(steps=0)
    assert isinstance(err.value, InputError) and isinstance(err.value, ValueError)
    with pytest.raises(SettingError, match="unknown setting"):
        SamplerParams().replace(bogus=1)


def test_the_sampler_fields_are_written_once():
    """The command-line flags, the server's dgterm.sampler and the remote engine's requests
    name the same sampler fields, from dgterm.engine.params."""
    from types import SimpleNamespace

    from dgterm.engine.args import SAMPLER_FLAGS
    from dgterm.engine.params import SAMPLER_FIELDS, SamplerParams
    from dgterm.engine.remote.client import RemoteEngine
    from dgterm.server.protocol import ApiError, Limits, parse

    assert SAMPLER_FLAGS[: len(SAMPLER_FIELDS)] == SAMPLER_FIELDS
    engine = SimpleNamespace(name="m", speaks_dgterm=True)
    body = RemoteEngine.request(engine, [1, 2], 8, SamplerParams(steps=7), 0, frames=False, ignore_eos=False)
    assert body["dgterm"]["sampler"] == {name: getattr(SamplerParams(steps=7), name) for name in SAMPLER_FIELDS}
    check = dict(chat=False, model_names=["m"], canvas_length=16, vocab=100, limits=Limits())
    assert parse(body, **check).sampler == body["dgterm"]["sampler"]  # the server takes what the client sends
    with pytest.raises(ApiError, match="dgterm.sampler takes " + ", ".join(SAMPLER_FIELDS)):
        parse({**body, "dgterm": {"sampler": {"seed": 1}}}, **check)
