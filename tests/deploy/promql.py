"""Pull metric and label names out of PromQL without a PromQL parser.

Python has no maintained PromQL parser, and the checks here only need names. Every
identifier in an expression is a function, a keyword, a label or a metric; anything not
known as one of the first three counts as a metric, so an unknown function or a typo shows
up as an unexpected metric name rather than slipping through.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_FUNCTION_NAMES = """
    abs absent absent_over_time acos acosh asin asinh atan atanh avg_over_time ceil changes
    clamp clamp_max clamp_min cos cosh count_over_time day_of_month day_of_week day_of_year
    days_in_month deg delta deriv exp floor histogram_quantile holt_winters hour idelta
    increase irate label_join label_replace last_over_time ln log10 log2 max_over_time
    min_over_time minute month pi predict_linear present_over_time quantile_over_time rad
    rate resets round scalar sgn sin sinh sort sort_desc sqrt stddev_over_time
    stdvar_over_time sum_over_time tan tanh time timestamp vector year
    sum min max avg group stddev stdvar count count_values bottomk topk quantile
"""
_KEYWORD_NAMES = "and or unless bool offset inf nan"
FUNCTIONS = frozenset(_FUNCTION_NAMES.split())
KEYWORDS = frozenset(_KEYWORD_NAMES.split())
GROUPING = ("by", "without", "on", "ignoring", "group_left", "group_right")

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'|`[^`]*`')
_RANGE = re.compile(r"\[[^\]]*\]")
_OFFSET = re.compile(r"\boffset\s+-?[\w$]+")
_VARIABLE = re.compile(r"\$\{?\w+(?::\w+)?\}?")
_MATCHERS = re.compile(r"\{([^}]*)\}")
_MATCHER_LABEL = re.compile(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)")
_GROUP = re.compile(r"\b(" + "|".join(GROUPING) + r")\s*\(([^)]*)\)")
_NUMBER = re.compile(r"(?<![\w:])(?:0x[0-9a-fA-F]+|\d+(?:\.\d*)?(?:[eE][+-]?\d+)?|\.\d+)")
_IDENT = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")
_LABEL_VALUES = re.compile(r"^\s*label_values\(\s*(?:(.*?)\s*,\s*)?([A-Za-z_]\w*)\s*\)\s*$", re.S)


@dataclass
class Names:
    metrics: set[str] = field(default_factory=set)
    labels: set[str] = field(default_factory=set)


def names(expr: str) -> Names:
    """Metric and label names used by a PromQL expression or a Grafana label_values()."""
    found = Names()
    template = _LABEL_VALUES.match(expr)
    if template:
        selector, label = template.groups()
        found.labels.add(label)
        if selector:
            inner = names(selector)
            found.metrics |= inner.metrics
            found.labels |= inner.labels
        return found

    text = _STRING.sub('""', expr)
    text = _RANGE.sub(" ", text)
    text = _OFFSET.sub(" ", text)
    text = _VARIABLE.sub(" ", text)
    for body in _MATCHERS.findall(text):
        found.labels.update(_MATCHER_LABEL.findall(body))
    text = _MATCHERS.sub(" ", text)
    for _, body in _GROUP.findall(text):
        found.labels.update(label.strip() for label in body.split(",") if label.strip())
    text = _GROUP.sub(" ", text)
    text = _NUMBER.sub(" ", text)
    for ident in _IDENT.findall(text):
        if ident in FUNCTIONS or ident in KEYWORDS or ident in GROUPING:
            continue
        found.metrics.add(ident)
    return found
