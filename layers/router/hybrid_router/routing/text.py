"""Prompt clean-up and truncation before tokenising: never crash on odd input, never spend long on huge input."""

from __future__ import annotations

# Texts longer than this are cut to their head and tail before tokenising (the tokenizer cost grows with length).
MAX_CHARS = 20_000


def clean_prompt(prompt: str | bytes) -> str:
    """Returns valid Unicode: invalid UTF-8 bytes and lone surrogates become U+FFFD."""
    if isinstance(prompt, (bytes, bytearray, memoryview)):
        return bytes(prompt).decode("utf-8", errors="replace")
    if not isinstance(prompt, str):
        raise TypeError(f"a prompt must be str or bytes, not {type(prompt).__name__}")
    try:
        prompt.encode("utf-8")
        return prompt
    except UnicodeEncodeError:
        # surrogatepass keeps valid surrogate pairs together; lone ones are replaced on decode.
        return prompt.encode("utf-16-le", errors="surrogatepass").decode("utf-16-le", errors="replace")


def cut_chars(text: str, max_chars: int = MAX_CHARS) -> str:
    """Keeps the first and last max_chars/2 characters of a long text (the question is often at the end)."""
    if len(text) <= max_chars:
        return text
    half = max_chars // 2
    return text[:half] + " … " + text[-half:]
