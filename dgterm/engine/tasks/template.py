"""The one chat-template renderer: every conversation (chat, rewrite, continue --chat, the
server's chat completions) goes through the checkpoint's own template here."""

from __future__ import annotations

from dgterm.errors import DgtermError, InputError


def render_chat(tokenizer, messages: list[dict], generation_prompt: bool = True) -> str:
    """The conversation through the checkpoint's chat template (with ``generation_prompt``, up to
    the model's turn); a template that is broken or raises is one sentence."""
    try:
        return tokenizer.apply_chat_template(messages, add_generation_prompt=generation_prompt, tokenize=False)
    except DgtermError:  # a remote engine's own sentence
        raise
    except Exception as e:  # noqa: BLE001 - jinja errors, raise_exception(), bad output types
        raise InputError(f"The model's chat template fails ({type(e).__name__}: {str(e)[:120]}); fix the template "
                         "or use plain mode.") from None
