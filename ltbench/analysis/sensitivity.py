"""Framework sensitivity: the same resolved runs through several frameworks, side by side.

Rows are a table's methods and their baselines (e.g. PCB Table 2: "Softmax" and "Softmax + PCB"); for each
framework the table shows the metric over seeds (mean ± std (n)) and, on method rows, the gain over the
baseline (mean difference, with the 95 % Welch interval when both sides have >= 2 seeds). The last column
answers the users' first question: does the gain survive a change of framework?

- ``yes``: the gain is positive in every framework that has values (beyond the seed spread where there is one)
- ``no``: the gain is negative beyond the spread in some framework, or its sign differs between frameworks
- ``unclear``: positive everywhere but within the seed spread somewhere
- ``—``: fewer than two frameworks have values

Input values are keyed (row label, framework) -> one value per seed (AP points; -1 = undefined, dropped).

``tables/<paper>_table<N>_sensitivity.md`` (``render_sensitivity``): the rows and their baselines come from a
``compare`` claim of the table (PCB Table 2: ``pcb-improves-every-base``: "X + PCB" vs "X"); each framework
has its own runs (the framework is part of the run hash), planned with ``build_plan(framework=fw)``; one
block per metric of the claim.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ltbench import io, paths
from ltbench.analysis.seeds import aggregate, difference_stats
from ltbench.errors import LtbenchError, did_you_mean

if TYPE_CHECKING:
    import pandas as pd

SURVIVES, BROKEN, UNCLEAR, TOO_FEW = "yes", "no", "unclear", "—"


def _gain_verdict(intervals: list[tuple[float, float, float]]) -> str:
    if len(intervals) < 2:
        return TOO_FEW
    signs = {d > 0 for d, _, _ in intervals}
    if len(signs) > 1 or any(high < 0 for _, _, high in intervals):
        return BROKEN
    if signs == {False}:
        return BROKEN  # no gain anywhere (every framework at or below its baseline)
    return SURVIVES if all(low > 0 for _, low, _ in intervals) else UNCLEAR


def sensitivity_frame(
    values: Mapping[tuple[str, str], Sequence[float]],
    pairs: Sequence[tuple[str, str]],
    frameworks: Sequence[str],
    *,
    metric: str = "segm.AP",
) -> pd.DataFrame:
    """Method × framework table.

    Args:
        values: (row label, framework) -> the metric's values, one per seed.
        pairs: (method row, baseline row) in display order; a baseline shared by several methods appears once.
        frameworks: column order, e.g. ``["torchvision", "mmdet"]``.
    Returns:
        A DataFrame indexed by row label with, per framework ``fw``: ``fw mean``, ``fw std``, ``fw n``,
        ``fw gain``, ``fw gain low``, ``fw gain high`` (NaN where not applicable), plus ``baseline``,
        ``role`` (baseline | method) and ``gain survives``. ``attrs["metric"]`` names the metric.
    """
    import math

    import pandas as pd

    if not frameworks:
        raise LtbenchError("a sensitivity table needs at least one framework", expected="e.g. ['torchvision', 'mmdet']")
    order: list[tuple[str, str, str | None]] = []  # (label, role, baseline)
    seen: set[str] = set()
    for method, baseline in pairs:
        if baseline not in seen:
            order.append((baseline, "baseline", None))
            seen.add(baseline)
        if method in seen:
            raise LtbenchError(f"row {method!r} appears twice in the sensitivity pairs", expected="each method once")
        order.append((method, "method", baseline))
        seen.add(method)
    records: list[dict[str, Any]] = []
    nan = math.nan
    for label, role, baseline in order:
        rec: dict[str, Any] = {"row": label, "role": role, "baseline": baseline or ""}
        intervals = []
        for fw in frameworks:
            stats = aggregate(values.get((label, fw), []))
            rec[f"{fw} mean"] = nan if stats is None else stats.mean
            rec[f"{fw} std"] = nan if stats is None or stats.std is None else stats.std
            rec[f"{fw} n"] = 0 if stats is None else stats.n
            gain = None if baseline is None else difference_stats(values.get((label, fw), []), values.get((baseline, fw), []))
            rec[f"{fw} gain"], rec[f"{fw} gain low"], rec[f"{fw} gain high"] = gain if gain is not None else (nan, nan, nan)
            if gain is not None:
                intervals.append(gain)
        rec["gain survives"] = "" if role == "baseline" else _gain_verdict(intervals)
        records.append(rec)
    frame = pd.DataFrame.from_records(records).set_index("row")
    frame.attrs["metric"] = metric
    frame.attrs["frameworks"] = list(frameworks)
    return frame


def to_markdown(frame: pd.DataFrame, *, precision: int = 1) -> str:
    """Markdown (tabulate ``pipe``): one value and one gain column per framework, then ``gain survives``."""
    import math

    from tabulate import tabulate

    frameworks = frame.attrs.get("frameworks") or sorted({c.rsplit(" ", 1)[0] for c in frame.columns if c.endswith(" mean")})
    metric = frame.attrs.get("metric", "")
    headers = ["method"]
    for fw in frameworks:
        headers += [f"{fw} {metric}".strip(), f"{fw} gain"]
    headers.append("gain survives")
    rows = []
    for label, rec in frame.iterrows():
        line = [label if rec["role"] == "baseline" else f"  {label}"]
        for fw in frameworks:
            mean, std, n = rec[f"{fw} mean"], rec[f"{fw} std"], int(rec[f"{fw} n"])
            if math.isnan(mean):
                line.append("pending")
            elif math.isnan(std):
                line.append(f"{mean:.{precision}f} (n={n})")
            else:
                line.append(f"{mean:.{precision}f} ± {std:.{precision}f} (n={n})")
            gain, low, high = rec[f"{fw} gain"], rec[f"{fw} gain low"], rec[f"{fw} gain high"]
            if rec["role"] == "baseline" or math.isnan(gain):
                line.append("")
            elif low != high:
                line.append(f"{gain:+.{precision}f} [{low:+.{precision}f}, {high:+.{precision}f}]")
            else:
                line.append(f"{gain:+.{precision}f}")
        line.append(rec["gain survives"])
        rows.append(line)
    note = (f"\nGain = mean(method) − mean(baseline) in {metric} points; [low, high] = 95 % Welch interval over seeds "
            "(shown when both rows have ≥ 2 seeds). gain survives: yes = positive in every framework (beyond the seed "
            "spread where known), unclear = positive but within the spread somewhere, no = negative or sign differs, "
            "— = fewer than two frameworks measured.\n")
    return tabulate(rows, headers=headers, tablefmt="pipe", disable_numparse=True) + "\n" + note


def pairs_from_claim(spec: Any, claim_id: str) -> list[tuple[str, str]]:
    """(method, baseline) display labels from a ``compare`` claim's pairs (e.g. PCB ``pcb-improves-every-base``)."""
    from ltbench.spec.claims import resolve_ref

    claim = next((c for c in spec.claims if c["id"] == claim_id), None)
    if claim is None:
        raise LtbenchError(f"paper {spec.paper!r} has no claim {claim_id!r}", path=spec.path, key="claims",
                           expected="one of " + ", ".join(c["id"] for c in spec.claims))
    predicate = claim["predicate"]
    if predicate.get("kind") != "compare":
        raise LtbenchError(f"claim {claim_id!r} is a {predicate.get('kind')} predicate", expected="a compare predicate with pairs")
    return [(resolve_ref(spec, a).display_label, resolve_ref(spec, b).display_label) for a, b in predicate["pairs"]]


def values_from_store(
    spec: Any,
    table_id: str,
    frameworks: Sequence[str],
    *,
    scale: str,
    metric: str = "segm.AP",
    results_dir: str | Path | None = None,
    seeds: int | None = None,
    results: Mapping[tuple[str, str], Mapping[str, float]] | None = None,
) -> dict[tuple[str, str], list[float]]:
    """(row display label, framework) -> the metric per seed, from the plan (per framework) and the store.

    ``seeds``: the plan's seeds override (as ``build_plan``); ``results``: the store's (run, view) -> metrics
    when already read."""
    from ltbench.claims.results import plan_serves
    from ltbench.render.tables import read_store

    if results is None:  # already read (several metrics from one store)
        results = read_store(results_dir).results
    table = spec.table(table_id)
    out: dict[tuple[str, str], list[float]] = {}
    for fw in frameworks:
        serves = plan_serves(spec, [table.id], scale=scale, framework=fw, seeds=seeds)
        for row in table.rows:
            for pair in serves.get((table.id, row.group.id, row.id), ()):
                value = (results.get(tuple(pair)) or {}).get(metric)
                if value is not None:
                    out.setdefault((row.display_label, fw), []).append(float(value))
    return out


# Frameworks compared when none are given: the choice per scale (torchvision is the CPU smoke
# framework; mmdet and detectron2 are the papers' own).
DEFAULT_FRAMEWORKS = {"smoke": ("torchvision", "mmdet"), "mini": ("torchvision", "mmdet"), "paper": ("mmdet", "detectron2")}


def parse_frameworks(text: str | Sequence[str] | None, scale: str) -> list[str]:
    """``"torchvision,mmdet"`` (or a list) -> checked, de-duplicated list; None -> the scale's default."""
    from ltbench.spec import vocab

    if text is None or (isinstance(text, str) and not text.strip()):
        return list(DEFAULT_FRAMEWORKS[scale])
    items = [t.strip() for t in text.split(",")] if isinstance(text, str) else [str(t).strip() for t in text]
    items = [t for t in items if t]
    for name in items:
        if name not in vocab.FRAMEWORKS:
            raise LtbenchError(f"unknown framework {name!r}{did_you_mean(name, vocab.FRAMEWORKS)}", key="--frameworks",
                               expected="a comma-separated list of " + ", ".join(vocab.FRAMEWORKS))
    out = list(dict.fromkeys(items))
    if not out:
        raise LtbenchError("no framework given", key="--frameworks", expected="e.g. torchvision,mmdet")
    return out


def sensitivity_claim(spec: Any, table_id: str, claim_id: str | None = None) -> dict[str, Any]:
    """The ``compare`` claim whose (method, baseline) pairs give the rows: ``claim_id``, else the first
    compare claim of the spec whose pairs all lie in ``table_id``."""
    if claim_id is not None:
        claim = next((c for c in spec.claims if c["id"] == claim_id), None)
        if claim is None:
            raise LtbenchError(f"paper {spec.paper!r} has no claim {claim_id!r}"
                               + did_you_mean(claim_id, [c["id"] for c in spec.claims]), path=spec.path, key="--claim",
                               expected="one of " + ", ".join(c["id"] for c in spec.claims))
        if claim["predicate"].get("kind") != "compare":
            raise LtbenchError(f"claim {claim_id!r} is a {claim['predicate'].get('kind')} predicate", key="--claim",
                               expected="a compare claim with (method, baseline) pairs")
        return claim
    spec.table(table_id)  # a clear error for a table that does not exist
    for claim in spec.claims:
        p = claim["predicate"]
        if p.get("kind") == "compare" and p.get("op") in (">", ">=") and p["pairs"] and all(
                str(ref.get("table")) == str(table_id) for pair in p["pairs"] for ref in pair):
            return claim
    raise LtbenchError(f"{spec.paper} table {table_id} has no compare claim (method > baseline) to take rows from",
                       path=spec.path, key="claims", expected="a compare claim on that table, or --claim ID")


def render_sensitivity(
    paper: str,
    table_id: str,
    *,
    frameworks: Sequence[str] | str | None = None,
    scale: str = "smoke",
    seeds: int | None = None,
    claim_id: str | None = None,
    metrics: Sequence[str] | None = None,
    results_dir: str | Path | None = None,
) -> str:
    """Markdown of the sensitivity table (renders with zero results: every value pending)."""
    from ltbench.render.tables import read_store
    from ltbench.spec import load_paper

    fws = parse_frameworks(frameworks, scale)
    spec = load_paper(paths.PAPER_SPECS_DIR / f"{paper}.yaml")
    claim = sensitivity_claim(spec, table_id, claim_id)
    pairs = pairs_from_claim(spec, claim["id"])
    keys = list(metrics or claim["predicate"]["metrics"])
    from ltbench.spec import vocab

    for key in keys:
        if key not in vocab.METRIC_KEYS:
            raise LtbenchError(f"unknown metric key {key!r}{did_you_mean(key, vocab.METRIC_KEYS)}", key="--metric",
                               expected="a canonical metric key, e.g. segm.AP")
    results = read_store(results_dir).results
    precision = int(spec.raw.get("precision", 1) or 1)
    lines = [
        f"# {paper.upper()} Table {table_id}: framework sensitivity ({', '.join(fws)}, {scale} scale)", "",
        f"Rows from claim `{claim['id']}` ({claim.get('where', '')}): \"{' '.join(str(claim.get('text', '')).split())}\"",
        "",
        "Every framework trains its own runs from the same resolved configs (the framework is part of the run hash)"
        + (f"; {seeds} seed(s) per row." if seeds else "; seeds as the spec states."),
        "",
    ]
    if scale == "smoke":
        lines += ["Smoke scale: tiny models on synthetic data; a directional sanity check, not evidence about the paper.", ""]
    elif scale == "mini":
        lines += ["Mini scale: converged tiny models on synthetic data; the effects in miniature, not the paper's numbers.", ""]
    for key in keys:
        values = values_from_store(spec, table_id, fws, scale=scale, metric=key, seeds=seeds, results=results)
        frame = sensitivity_frame(values, pairs, fws, metric=key)
        lines += [f"## {key}", "", to_markdown(frame, precision=precision).rstrip(), ""]
    return "\n".join(lines).rstrip() + "\n"


def write_sensitivity(paper: str, table_id: str, *, md: Path, **kwargs: Any) -> str:
    text = render_sensitivity(paper, table_id, **kwargs)
    io.write_text(md, text)
    return text
