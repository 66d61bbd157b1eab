"""The Engine protocol is what callers use: the local engine and the remote one (on a real
`dgterm serve`) both satisfy it, member by member, and no code asks which one it has."""

from __future__ import annotations

import inspect
import re
import types
import typing
from pathlib import Path

import pytest

from dgterm.engine import backend
from dgterm.engine.backend import Engine

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(params=["local", "remote"])
def engine(request):
    """The tiny model in this process, and the bundled one behind `dgterm serve` (the ``served`` fixture)."""
    if request.param == "local":
        return request.getfixturevalue("tiny")
    from dgterm.engine.remote.client import RemoteEngine

    served = request.getfixturevalue("served")
    remote = RemoteEngine(served.url, served.key)
    request.addfinalizer(remote.close)
    return remote


def _members() -> tuple[dict[str, object], dict[str, typing.Callable]]:
    """The protocol's data members (properties: name -> type) and its methods (name -> function)."""
    import torch

    from dgterm.engine.events import Run, RunResult, Window
    from dgterm.engine.params import SamplerParams
    from dgterm.engine.tasks.lens import LensToken

    names = {**vars(backend), "torch": torch, "SamplerParams": SamplerParams, "Run": Run, "RunResult": RunResult,
             "Window": Window, "LensToken": LensToken}
    data, methods = {}, {}
    for name, value in vars(Engine).items():
        if isinstance(value, property):
            data[name] = typing.get_type_hints(value.fget, globalns=names)["return"]
        elif inspect.isfunction(value) and not name.startswith("_"):
            methods[name] = value
    return data, methods


def _holds(value, hint) -> bool:
    """``value`` is of the type ``hint`` as far as a run-time check can tell (generics by their origin)."""
    if hint is typing.Any:
        return True
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        return any(_holds(value, h) for h in typing.get_args(hint))
    origin = typing.get_origin(hint)
    if origin is list:
        return isinstance(value, list) and all(_holds(v, typing.get_args(hint)[0]) for v in value)
    return isinstance(value, origin or hint)


def _compatible(wanted: inspect.Signature, got: inspect.Signature) -> list[str]:
    """Why a method with signature ``got`` cannot stand for ``wanted`` (empty: it can). Every
    parameter is there with the same name, kind and default; an extra one has a default."""
    problems = []
    params = dict(got.parameters)
    positional = [p.name for p in got.parameters.values() if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    wanted_positional = [p.name for p in wanted.parameters.values()
                         if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if positional[: len(wanted_positional)] != wanted_positional:
        problems.append(f"positional parameters {positional}, the protocol has {wanted_positional}")
    for p in wanted.parameters.values():
        q = params.pop(p.name, None)
        if q is None:
            problems.append(f"no parameter {p.name}")
        elif q.kind != p.kind:
            problems.append(f"{p.name} is {q.kind.description}, the protocol has {p.kind.description}")
        elif p.default is not p.empty and q.default != p.default:
            problems.append(f"{p.name} defaults to {q.default!r}, the protocol to {p.default!r}")
    problems += [f"extra parameter {q.name} without a default" for q in params.values()
                 if q.default is q.empty and q.kind not in (q.VAR_POSITIONAL, q.VAR_KEYWORD)]
    return problems


def test_both_engines_satisfy_the_protocol(engine):
    assert isinstance(engine, Engine)
    data, methods = _members()
    assert data and methods
    values = {name: getattr(engine, name) for name in data}
    wrong = {name: (values[name], hint) for name, hint in data.items() if not _holds(values[name], hint)}
    assert not wrong, wrong
    for name, method in methods.items():
        wanted = inspect.signature(method)
        wanted = wanted.replace(parameters=list(wanted.parameters.values())[1:])  # less self
        problems = _compatible(wanted, inspect.signature(getattr(engine, name)))
        assert not problems, f"{type(engine).__name__}.{name}: {problems}"


def test_the_signature_check_catches_a_gap():
    """The check above is not vacuous: a missing keyword, a changed default and an extra required
    parameter each fail it."""
    def wanted(windows, params, *, candidates: int = 1, cancel=None): ...
    def missing(windows, params, *, candidates: int = 1): ...
    def default(windows, params, *, candidates: int = 2, cancel=None): ...
    def extra(windows, params, more, *, candidates: int = 1, cancel=None): ...
    def fine(windows, params, *, candidates: int = 1, cancel=None, trace: bool = False): ...

    sig = inspect.signature
    assert _compatible(sig(wanted), sig(fine)) == []
    for other in (missing, default, extra):
        assert _compatible(sig(wanted), sig(other)), other.__name__


ASKS_WHICH = [
    re.compile(r"""\b(?:lm|engine)\.kind\b"""),  # an engine's kind, read anywhere
    re.compile(r"""kind\s*[!=]=\s*["'](?:local|remote|vLLM|dgterm serve)["']"""),
    re.compile(r"""["'](?:local|remote|vLLM|dgterm serve)["']\s*[!=]=\s*\w*\.?kind\b"""),
    re.compile(r"""getattr\([^)]*["'](?:is_remote|kind)["']"""),
    re.compile(r"""\.is_remote\b"""),
]


def test_no_code_asks_which_engine_it_has():
    """What differs between engines is said by the protocol (capability flags, methods), never by their kind."""
    found = [f"{path.relative_to(ROOT)}:{n}: {line.strip()}"
             for path in sorted((ROOT / "dgterm").rglob("*.py"))
             for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1)
             if any(p.search(line) for p in ASKS_WHICH)]
    assert not found, "\n".join(found)


def test_the_source_check_finds_what_it_looks_for():
    for line in ('if lm.kind == "local":', 'if self.lm.kind != "vLLM":', 'if getattr(lm, "is_remote", False):',
                 'remote = engine.is_remote', 'if "local" == lm.kind:'):
        assert any(p.search(line) for p in ASKS_WHICH), line
    for line in ('if kind == "canvas":', 'if job.kind == "lens":', 'if layout.kind == "stream":'):
        assert not any(p.search(line) for p in ASKS_WHICH), line
