"""The language server's settings: defaults < config file < DGTERM_* < ``initializationOptions`` < flags.

``initializationOptions`` (what an editor's LSP setup sends at ``initialize``) take the
config file's names: ``model``, ``server``, ``device``, ``dtype``, ``quant`` (strings), a
``sampler`` table (any sampler setting, e.g. ``{"steps": 24}``), ``candidates`` (per run)
and ``insert_tokens`` (the length an inline completion's search is centred on).
"""

from __future__ import annotations

import argparse
import dataclasses
from dataclasses import dataclass

from dgterm.config import DEFAULT_CANDIDATES, load_settings
from dgterm.engine.args import EngineArgs
from dgterm.engine.params import DEFAULT_INSERT_TOKENS
from dgterm.errors import InputError

STRINGS = ("model", "server", "device", "dtype", "quant")
WHOLE = ("candidates", "insert_tokens")


@dataclass(frozen=True)
class Options:
    """What the server needs beyond the engine: the engine's arguments and the run sizes."""

    engine_args: EngineArgs
    insert_tokens: int = DEFAULT_INSERT_TOKENS


def options(flags: argparse.Namespace, init: object) -> Options:
    """The layers merged; a bad value is one :class:`InputError` sentence."""
    given = _checked(init)
    settings = load_settings().override(**{k: given[k] for k in STRINGS if k in given})
    settings = dataclasses.replace(settings, sampler={**settings.sampler, **given.get("sampler", {})})
    engine_args = EngineArgs.from_cli_args(flags, settings)
    if flags.candidates is None:  # no --candidates: the editor's setting, else the default
        engine_args.candidates = given.get("candidates", DEFAULT_CANDIDATES)
    engine_args.check()
    return Options(engine_args, given.get("insert_tokens", DEFAULT_INSERT_TOKENS))


def _checked(init: object) -> dict:
    if init is None:
        return {}
    if not isinstance(init, dict):
        raise InputError("initializationOptions must be an object, like {\"sampler\": {\"steps\": 24}}.")
    unknown = sorted(set(init) - {*STRINGS, *WHOLE, "sampler"})
    if unknown:
        raise InputError(f"initializationOptions has unknown setting(s) {', '.join(unknown)}; remove them "
                         f"(known: {', '.join((*STRINGS, 'sampler', *WHOLE))}).")
    for name in STRINGS:
        if not isinstance(init.get(name, ""), str):
            raise InputError(f"initializationOptions.{name} must be a string.")
    for name in WHOLE:
        value = init.get(name, 1)
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise InputError(f"initializationOptions.{name} must be a whole number, 1 or more.")
    if not isinstance(init.get("sampler", {}), dict):
        raise InputError("initializationOptions.sampler must be an object, like {\"steps\": 24}.")
    return init
