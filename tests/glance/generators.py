"""Hypothesis strategies for location lists and store preferences, every scheme included."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

KNOWN_SCHEMES = [
    "file",
    "filesystem",
    "http",
    "https",
    "rbd",
    "swift",
    "swift+http",
    "swift+https",
    "swift+config",
    "s3",
    "s3+http",
    "s3+https",
    "cinder",
    "vsphere",
]
UNKNOWN_SCHEMES = ["ftp", "gopher", "vmware", "sheepdog", "glance", "x-custom", "git+ssh", "a"]
STORE_NAMES = ["file", "http", "rbd", "swift", "s3", "cinder", "vmware"]
LEGACY_ALIASES = {"filesystem": "file", "vmware_datastore": "vmware"}

#: White space that ``str.strip`` removes, ASCII and not.
SPACE = " \t\n\r\x0b\x0c\xa0\u2003\u3000"
#: URL body characters; no ``[``/``]`` (urllib raises on a broken IPv6 host: tested apart).
URL_BODY = "abcXYZ019-._~:/@?#%=&+ "
#: Store names as they could appear in glance-api.conf: no comma, quote, ``$`` or newline.
NAME_CHARS = "abcdefrsvwxyzFRS019-_.+ \t"


@st.composite
def mixed_case(draw: st.DrawFn, text: str) -> str:
    flips = draw(st.lists(st.booleans(), min_size=len(text), max_size=len(text)))
    return "".join(c.upper() if flip else c for c, flip in zip(text, flips, strict=True))


@st.composite
def schemes(draw: st.DrawFn) -> str:
    scheme = draw(st.sampled_from(KNOWN_SCHEMES + UNKNOWN_SCHEMES))
    return draw(st.one_of(st.just(scheme), mixed_case(scheme)))


@st.composite
def urls(draw: st.DrawFn) -> str:
    """A location URL, mostly well formed, sometimes odd, maybe wrapped in white space."""
    body = draw(st.text(alphabet=URL_BODY, max_size=24))
    shape = draw(st.sampled_from(["authority", "authority", "authority", "opaque", "odd"]))
    if shape == "authority":
        url = f"{draw(schemes())}://{body}"
    elif shape == "opaque":
        url = f"{draw(schemes())}:{body}"
    else:
        url = draw(
            st.sampled_from(
                [
                    f"//{body}",
                    f"/{body}",
                    body,
                    f"1rbd://{body}",
                    f"rbd ://{body}",
                    f"r_bd://{body}",
                    f"C:\\{body}",
                    "",
                ]
            )
        )
    pad = st.text(alphabet=SPACE, max_size=3)
    return draw(pad) + url + draw(pad)


@st.composite
def locations(draw: st.DrawFn, uri_key: str = "url", url_less: bool = True) -> list[dict[str, Any]]:
    """A location list; unless ``url_less`` is false, some have no URL (missing, None, "")."""
    result = []
    kinds = ["url"] * 12 + ["blank"] + (["missing", "none", "empty"] if url_less else [])
    for index in range(draw(st.integers(min_value=0, max_value=8))):
        location: dict[str, Any] = {"metadata": {"n": index}}
        kind = draw(st.sampled_from(kinds))
        if kind == "url":
            location[uri_key] = draw(urls() if url_less else urls().filter(bool))
        elif kind == "none":
            location[uri_key] = None
        elif kind == "empty":
            location[uri_key] = ""
        elif kind == "blank":
            location[uri_key] = draw(st.text(alphabet=SPACE, min_size=1, max_size=3))
        if draw(st.booleans()):
            location.update(id=index + 1, status="active")
        result.append(location)
    return result


@st.composite
def store_names(draw: st.DrawFn) -> str:
    """One preference item: a store, an alias, a case variant, an unknown name, or empty."""
    name = draw(
        st.one_of(
            st.sampled_from(STORE_NAMES),
            st.sampled_from(STORE_NAMES).flatmap(mixed_case),
            st.sampled_from(sorted(LEGACY_ALIASES)),
            st.text(alphabet=NAME_CHARS, max_size=10),
            st.just(""),
        )
    )
    pad = st.text(alphabet=" \t", max_size=2)
    return draw(pad) + name + draw(pad)


preferences = st.lists(store_names(), max_size=6)


@st.composite
def plain_preferences(draw: st.DrawFn) -> list[str]:
    """Preferences where no improvement applies: no repeats, no aliases, no ``s3``."""
    stores = st.sampled_from([n for n in STORE_NAMES if n != "s3"])
    names = draw(
        st.lists(st.one_of(stores, stores, stores, st.text(alphabet=NAME_CHARS, max_size=10)))
    )
    result: list[str] = []
    seen: set[str] = set()
    pad = st.text(alphabet=" \t", max_size=2)
    for name in names:
        key = name.strip()
        if key in seen or key in LEGACY_ALIASES or key == "s3":
            continue
        seen.add(key)
        result.append(draw(pad) + name + draw(pad))
    return result
