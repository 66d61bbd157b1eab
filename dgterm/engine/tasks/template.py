"""The one chat-template renderer: every conversation (chat, rewrite, continue --chat, the
server's chat completions) goes through the checkpoint's own template here.

Thinking: Gemma 4's template opens a thinking channel when ``enable_thinking`` is true, and a
thought can fill the whole canvas. ``thinking`` (``--thinking on|off``, ``thinking =`` in the
config, ``DGTERM_THINKING``) is passed as ``enable_thinking`` to a template that reads it; left
unset, rewrites send it off and chat leaves the template's default."""

from __future__ import annotations

from dgterm.errors import DgtermError, InputError


def thinking_of(setting: str | None, default: bool | None) -> bool | None:
    """The ``thinking`` setting ('on', 'off', '' or None) as a task takes it, ``default`` when unset."""
    return {"on": True, "off": False}.get(setting or "", default)


def has_thinking_switch(tokenizer) -> bool:
    template = getattr(tokenizer, "chat_template", None)
    templates = template.values() if isinstance(template, dict) else [template]
    return any(isinstance(t, str) and "enable_thinking" in t for t in templates)


def render_chat(tokenizer, messages: list[dict], generation_prompt: bool = True, thinking: bool | None = None) -> str:
    """The conversation through the checkpoint's chat template (with ``generation_prompt``, up to
    the model's turn; ``thinking`` as its ``enable_thinking`` where it has one); a template that
    is broken or raises is one sentence."""
    extra = {"enable_thinking": thinking} if thinking is not None and has_thinking_switch(tokenizer) else {}
    try:
        return tokenizer.apply_chat_template(messages, add_generation_prompt=generation_prompt, tokenize=False,
                                             **extra)
    except DgtermError:  # a remote engine's own sentence
        raise
    except Exception as e:  # noqa: BLE001 - jinja errors, raise_exception(), bad output types
        raise InputError(f"The model's chat template fails ({type(e).__name__}: {str(e)[:120]}); fix the template "
                         "or use plain mode.") from None
