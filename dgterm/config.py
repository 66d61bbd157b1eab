"""Settings: defaults < config file < environment (DGTERM_*) < command-line flags.

The config file is TOML at ``$DGTERM_CONFIG`` or ``<user config dir>/dgterm/config.toml``::

    model = "bundled"        # or a directory, or a Hugging Face id
    device = "auto"          # cpu, cuda, cuda:N
    dtype = "auto"           # bf16, fp16, fp32
    quant = "none"           # int8, nf4
    allow_offload = false    # or DGTERM_ALLOW_OFFLOAD=1, or --allow-offload
    offload_experts = "0"    # "auto" or N layers' experts in host RAM (DGTERM_OFFLOAD_EXPERTS, --offload-experts)
    kernels = "auto"         # triton, reference (or DGTERM_KERNELS, --kernels)
    thinking = ""            # on, off; "": off for rewrites and infill, the template's default for chat
    compile = false          # the decoder step compiled (torch.compile); or DGTERM_COMPILE=1, or --compile
    theme = "dgterm-dark"
    server = ""              # a URL: drive `dgterm serve` or vLLM there (or DGTERM_SERVER, --server)
    api_key = ""             # the server's key (or DGTERM_API_KEY; never a flag)

    [sampler]                # any SamplerParams field
    steps = 24

    [keymap]                 # binding id = keys (Textual's App.set_keymap)
    "dgterm.rewrite" = "ctrl+r"

Settings are passed to the front ends through their constructors, never read from
a global.
"""

from __future__ import annotations

import codecs
import dataclasses
import os
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from dgterm.errors import DgtermError
from dgterm.paths import read_limited

ENV_PREFIX = "DGTERM_"
STRINGS = ("model", "device", "dtype", "quant", "theme", "server", "api_key", "offload_experts", "kernels", "thinking")
# settings with a fixed set of values (offload_experts: "auto" or a whole number)
CHOICES = {"kernels": ("auto", "triton", "reference", "torch"), "thinking": ("", "on", "off")}
CONFIG_LIMIT = 1 << 20  # a config file is a few lines; anything bigger is a mistake
YES, NO = ("1", "true", "yes", "on"), ("0", "false", "no", "off")
DEFAULT_CANDIDATES = 2  # candidates per run, in the editor and on the command line alike


@dataclass
class Settings:
    model: str = "bundled"
    device: str = "auto"
    dtype: str = "auto"
    quant: str = "none"
    theme: str = "dgterm-dark"
    allow_offload: bool = False  # a quantized model may keep experts in host RAM when the GPU is too small
    offload_experts: str = "0"  # "auto" or N: the experts of N layers stay in host RAM
    kernels: str = "auto"  # auto (self-checked Triton where it runs), triton, reference ("torch": the same)
    thinking: str = ""  # on | off | "" (off for rewrites and infill; the chat template's default for chat)
    compile: bool = False  # the decoder step compiled with torch.compile over a static context
    server: str = ""  # a URL: the engine runs there (docs/serve.md)
    api_key: str = ""
    require_valid: int = 0  # editor: draw infill candidates until one parses, at most this many (0: off)
    sampler: dict = field(default_factory=dict)
    keymap: dict = field(default_factory=dict)

    def override(self, **flags) -> Settings:
        """A copy with every flag that is not None applied (the last layer)."""
        return dataclasses.replace(self, **{k: v for k, v in flags.items() if v is not None})


def config_path() -> Path:
    if os.environ.get("DGTERM_CONFIG"):
        return Path(os.environ["DGTERM_CONFIG"])
    from platformdirs import user_config_dir

    return Path(user_config_dir("dgterm")) / "config.toml"


def config_dir() -> Path:
    return config_path().parent


def state_dir() -> Path:
    """Where the recovery journal and the REPL history live (``$DGTERM_STATE_DIR`` overrides)."""
    if os.environ.get("DGTERM_STATE_DIR"):
        return Path(os.environ["DGTERM_STATE_DIR"])
    from platformdirs import user_state_dir

    return Path(user_state_dir("dgterm"))


def load_settings(path: Path | None = None, env=None) -> Settings:
    env = os.environ if env is None else env
    path = path or config_path()
    values: dict = {}
    try:
        raw = read_limited(path, CONFIG_LIMIT)
    except FileNotFoundError:
        raw = None
    except OSError as e:
        raise DgtermError(f"Cannot read the config file {path} ({e.strerror}); "
                          "point DGTERM_CONFIG at a TOML file.") from None
    if raw is not None and raw.startswith(codecs.BOM_UTF8):
        raise DgtermError(f"Config file {path} starts with a UTF-8 byte order mark, which TOML does not allow; "
                          "save it as UTF-8 without a BOM.")
    if raw is not None:
        try:
            values = tomllib.loads(raw.decode("utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise DgtermError(f"Config file {path} is not valid TOML ({e}); fix or remove it.") from None
    known = {f.name for f in dataclasses.fields(Settings)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise DgtermError(f"Config file {path} has unknown setting(s) {', '.join(unknown)}; remove them.")
    for name in STRINGS:
        if env.get(ENV_PREFIX + name.upper()):
            values[name] = env[ENV_PREFIX + name.upper()]
    for name in ("allow_offload", "compile"):  # yes-or-no settings
        flag = env.get(ENV_PREFIX + name.upper(), "").strip().lower()
        if flag:
            if flag not in YES + NO:
                raise DgtermError(f"{ENV_PREFIX + name.upper()}={env[ENV_PREFIX + name.upper()]!r} is not a yes or "
                                  "no; set it to 1 or 0.")
            values[name] = flag in YES
        if not isinstance(values.get(name, False), bool):
            raise DgtermError(f"Config file {path}: {name} must be true or false.")
    for name in STRINGS:
        if not isinstance(values.get(name, ""), str):
            raise DgtermError(f"Config file {path}: {name} must be a string in quotes, like {name} = \"...\".")
    for name, allowed in CHOICES.items():
        if values.get(name, allowed[0]) not in allowed:
            raise DgtermError(f"Setting {name} = {values[name]!r} (config file {path} or DGTERM_{name.upper()}) is "
                              f"not one of {', '.join(repr(a) for a in allowed if a)}; use one of those.")
    offload = str(values.get("offload_experts", "0")).strip().lower()
    if offload != "auto" and not offload.isdigit():
        raise DgtermError(f"Setting offload_experts = {offload!r} (config file {path} or DGTERM_OFFLOAD_EXPERTS) is "
                          "not 'auto' or a whole number of layers; use e.g. \"auto\" or \"4\".")
    limit = values.get("require_valid", 0)
    if isinstance(limit, bool) or not isinstance(limit, int) or not 0 <= limit <= 1024:
        raise DgtermError(f"Config file {path}: require_valid must be a whole number of candidates from 0 (off) "
                          "to 1024, like require_valid = 16.")
    for name in ("sampler", "keymap"):
        if not isinstance(values.get(name, {}), dict):
            raise DgtermError(f"Config file {path}: {name} must be a table, [{name}] with one setting per line.")
    bad = [k for k, v in values.get("keymap", {}).items() if not isinstance(v, str) or not v.strip()]
    if bad:
        raise DgtermError(f"Config file {path}: [keymap] {bad[0]} must be keys in quotes, like "
                          f"\"{bad[0]}\" = \"ctrl+r\".")
    return Settings(**values)
