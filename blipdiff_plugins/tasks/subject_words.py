"""Whether the model knows a subject's category word: a word its tokenizer splits into pieces (or reads as unknown)
was never one token of its vocabulary, so the model has no category for it and renders the subject poorly."""

from __future__ import annotations

# Category words offered as an example, the first one the model's tokenizer knows (real models and the toy world).
EXAMPLE_WORDS = ("dog", "cat", "teapot", "circle", "square", "triangle", "star", "heart", "crescent", "diamond", "cross")


def word_tokenizer(pipe):
    """The tokenizer that reads the subject word: the subject encoder's if the model has one, else the text one."""
    return getattr(pipe, "subject_tokenizer", None) or pipe.tokenizer


def _pieces(tokenizer, word: str) -> list[str]:
    return tokenizer.tokenize(word)


def _known(tokenizer, word: str) -> bool:
    pieces = _pieces(tokenizer, word)
    return len(pieces) == 1 and pieces[0] != tokenizer.unk_token


def unknown_word_notice(pipe, word: str | None, *, argument: str) -> str | None:
    """A one-line warning naming ``argument`` when ``word`` holds a word the model's tokenizer does not know, else
    `None`. Several words (``teddy bear``) are checked one by one."""
    if not word:
        return None
    tokenizer = word_tokenizer(pipe)
    unknown = [part for part in word.split() if not _known(tokenizer, part)]
    if not unknown:
        return None
    example = next((candidate for candidate in EXAMPLE_WORDS if _known(tokenizer, candidate)), None)
    hint = f", e.g. {example!r}" if example else ""
    pieces = " ".join(_pieces(tokenizer, unknown[0]))
    return (
        f"warning: `{argument}` {word!r}: the model does not know the word {unknown[0]!r} (its tokenizer reads "
        f"'{pieces}'), so the subject may come out wrong; use a category word the model knows{hint}."
    )
