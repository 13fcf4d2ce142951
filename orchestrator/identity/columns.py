"""What a text column of PostgreSQL holds: no U+0000, and nothing UTF-8 cannot encode (a lone surrogate,
which JSON's "\\ud800" and argv's undecodable bytes give). Anything else fails the write, or its log line."""


def fits_a_text_column(text: str) -> bool:
    return "\x00" not in text and storable(text) == text


def storable(text: str) -> str:
    """`text` without what no text column holds."""
    return text.replace("\x00", "").encode("utf-8", "ignore").decode("utf-8")
