"""The config check, fuzzed (hypothesis): params.yaml with one value replaced by something hostile (NaN, infinity, huge
or tiny numbers, wrong types, newlines, Unicode) or datasets with hostile names (numbers as keys, newlines, names that
flatten to one file). Every override is either refused with a ConfigError naming the key, one line per problem, or
accepted, and then Snakemake builds its jobs without an exception. Never a traceback of another kind."""

import copy
import math
from pathlib import Path

import pytest
import yaml

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from threedsr import config  # noqa: E402
from threedsr.errors import ConfigError  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
PARAMS = yaml.safe_load((REPO / "params.yaml").read_text())


def _leaves(node, path=()):
    if isinstance(node, dict) and node:
        for k, v in node.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(node, list) and node:
        for i, v in enumerate(node):
            yield from _leaves(v, (*path, i))
    else:
        yield path


LEAVES = sorted(_leaves(PARAMS), key=str)
HOSTILE = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e308, 1e-300, 0, -1, 10**18, -(10**18), "", "\n", None, True, False]),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(min_value=-(10**20), max_value=10**20),
    st.text(max_size=8),  # Unicode, newlines, separators
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=1),
)
NAMES = st.one_of(
    st.integers(-5, 5),
    st.sampled_from(["a_b", "a", "b_c", "c", "room\n", "ok", "..", "-x", "a b", "é", "a/b", "x" * 300]),
    st.text(max_size=6),
)


def _get(cfg: dict, path: tuple):
    for k in path:
        cfg = cfg[k]
    return cfg


def _near(value):
    """Values of the leaf's own type, from the smallest to the huge: most pass the schema, so the checks after it and
    the workflow are what they reach."""
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return st.one_of(st.integers(0, 4), st.integers(0, 10**9))
    if isinstance(value, float):
        return st.floats(0, 1e6, allow_nan=False)
    return st.just(value)


def _set(cfg: dict, path: tuple, value):
    node = cfg
    for k in path[:-1]:
        node = node[k]
    node[path[-1]] = value


@st.composite
def overrides(draw):
    """(config, the key changed) with one leaf replaced, or with one to three datasets of hostile names added."""
    cfg = copy.deepcopy(PARAMS)
    if draw(st.integers(0, 3)):
        path = draw(st.sampled_from(LEAVES))
        _set(cfg, path, draw(st.one_of(HOSTILE, _near(_get(PARAMS, path)))))
        return cfg, ".".join(str(p) for p in path[:2])
    for _ in range(draw(st.integers(1, 3))):
        name = draw(NAMES)
        cfg["datasets"][name] = {"root": str(REPO / "results" / "raw"), "scenes": draw(st.lists(NAMES, min_size=1, max_size=2))}
    return cfg, "datasets"


def _verdict(cfg: dict, key: str) -> str:
    """'accepted', or 'refused' after checking the refusal: one ConfigError whose lines each name a key."""
    try:
        config.validate(cfg)
    except ConfigError as e:
        lines = [ln.strip() for ln in str(e).splitlines() if ln.strip() and ln.strip() != "params invalid:"]
        assert lines, str(e)
        head = key.split(".")[0]
        assert any(head in ln for ln in lines), (key, str(e))
        return "refused"
    return "accepted"


VERDICTS: dict[str, int] = {}


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow], derandomize=True)
@given(overrides())
def test_every_hostile_override_is_refused_naming_its_key_or_accepted(case):
    cfg, key = case
    verdict = _verdict(cfg, key)  # any exception but a ConfigError fails here
    VERDICTS[verdict] = VERDICTS.get(verdict, 0) + 1


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much], derandomize=True)
@given(overrides())
def test_every_accepted_override_builds_its_jobs(case):
    """What the check accepts, Snakemake plans: the same DAG code `snakemake -n` runs, in this process."""
    from threedsr.dvc_stages import workflow_jobs

    cfg, key = case
    hypothesis.assume(_verdict(cfg, key) == "accepted")
    jobs = workflow_jobs(REPO, cfg)
    assert jobs and any(job.rule == "aggregate_metrics" for job in jobs.values())
