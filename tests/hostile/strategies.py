"""Hypothesis strategies for what an attacker (or a careless producer) sends: any Unicode including lone
surrogates, NUL and every kind of line break; numbers JSON cannot carry; deep nesting."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from tests.hostile.support import nested

#: Characters that broke something once, or could: NUL, CR/LF and other line breaks, lone surrogates,
#: a bidi override, a BOM, half an emoji.
NASTY = [
    "\x00",
    "\r",
    "\n",
    "\r\n",
    "\x0b",
    "\x85",
    "\u2028",
    "\u202e",
    "\ufeff",
    "\ud83d",
    "\ude00",
    "\udfff",
]

characters = st.one_of(
    st.characters(codec=None, exclude_categories=()),
    st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF),  # lone surrogates: rare otherwise
    st.sampled_from([c for c in NASTY if len(c) == 1]),
)
text = st.text(characters, max_size=40)
#: Mostly plausible text with something nasty inside.
spiked = st.builds(
    lambda head, bad, tail: head + bad + tail,
    st.text(max_size=10),
    st.sampled_from(NASTY),
    st.text(max_size=10),
)
numbers = st.one_of(
    st.integers(min_value=-(2**70), max_value=2**70),
    st.sampled_from([2**53, -(2**53), 10**400]),
    st.floats(allow_nan=True, allow_infinity=True),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, text, spiked)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.one_of(text, spiked), children, max_size=4)
    ),
    max_leaves=12,
)
#: Nesting around and beyond every limit: 32 (a field), 64 (a body), 255 (pydantic), ~1000 (Python).
deep = st.builds(nested, st.sampled_from([31, 32, 33, 63, 64, 65, 255, 256, 300, 900]), scalars)
anything = st.one_of(json_values, deep, spiked, numbers)


def field(valid: Any) -> st.SearchStrategy[Any]:
    """A field's value: usually the valid one, else anything at all."""
    return st.one_of(st.just(valid), st.just(valid), anything)


def body(valid: dict[str, Any], *, extra: bool = True) -> st.SearchStrategy[dict[str, Any]]:
    """A body built from a valid one, each field maybe replaced, maybe with extra keys."""
    fields = st.fixed_dictionaries({key: field(value) for key, value in valid.items()})
    if not extra:
        return fields
    return st.builds(
        lambda base, more: {**base, **more},
        fields,
        st.dictionaries(st.one_of(text, spiked), anything, max_size=2),
    )
