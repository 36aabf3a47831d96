"""The vocabulary and cross-reference checks of a paper spec (passes 1 and 3 of ``ltbench.spec.loader``):
every run/view/metric name is known (with a "did you mean"), reported numbers are finite and in their
metric's range, column groups, rows, reported keys and assumption ids refer to what exists. Every problem
is a ``LtbenchError`` naming file, table, row and key.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ltbench.errors import LtbenchError, did_you_mean
from ltbench.spec import vocab
from ltbench.spec.model import Assumption, Cited, Column, ColumnGroup, PaperSpec, Row, Table, slugify
from ltbench.spec.schema_validation import _schema, _schema_expected, _schema_message, _validated_marker
from ltbench.spec.yaml_text import printed_text

KeyPath = Sequence[str | int]


REQUIRED_RUN_KEYS = ("framework", "detector", "backbone", "dataset", "schedule")
# component parameters the planner computes with; they must be finite numbers when present
NUMERIC_PARAMS = (
    ("regularizer", "alpha"), ("regularizer", "momentum"), ("regularizer", "start_epoch"),
    ("sampler", "t"), ("head", "steps"),
)
NUMERIC_VIEW_PARAMS = ("step", "threshold", "gamma")


def _finite_number(value: Any) -> bool:
    import math

    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def describe_path(data: Any, path: KeyPath) -> str:
    """``["tables", 1, "rows", 3, "run"]`` -> ``tables[1] (table 2).rows[3] (row 'RFS').run``."""
    out = ""
    node = data
    parent_key: str | int | None = None
    for key in path:
        if isinstance(key, int):
            out += f"[{key}]"
            item = node[key] if isinstance(node, list) and 0 <= key < len(node) else None
            if isinstance(item, dict):
                if parent_key == "tables" and "id" in item:
                    out += f" (table {item['id']})"
                elif parent_key == "rows" and "label" in item:
                    out += f" (row {item['label']!r}" + (f", group {item['group']}" if "group" in item else "") + ")"
                elif parent_key in ("column_groups", "assumptions", "claims") and "id" in item:
                    out += f" ({item['id']})"
            node = item
        else:
            out += f".{key}" if out else str(key)
            node = node.get(key) if isinstance(node, dict) else None
        parent_key = key
    return out


class _Checker:
    def __init__(self, data: Any, path: Path, text: str | None = None) -> None:
        self.data = data
        self.path = path
        self.text = text  # the YAML ``data`` was parsed from, when known: errors then give the line

    def fail(self, message: str, keys: KeyPath, expected: str | None = None, hint: str | None = None) -> None:
        where = describe_path(self.data, keys) or None
        if where and self.text is not None:
            from ltbench.spec.provenance import LineIndex  # only on failure: loading pays nothing for lines

            located = LineIndex(self.text, self.path).locate(list(keys))
            where += f" (line {located.line})" if located is not None else ""
        raise LtbenchError(message, path=self.path, key=where, expected=expected, hint=hint)

    # pass 1 -----------------------------------------------------------------------------------------
    def check_run(self, run: Any, keys: list[str | int]) -> None:
        if not isinstance(run, dict):
            return
        for key, value in run.items():
            if key not in vocab.RUN_KEYS:
                self.fail(
                    f"unknown run key {key!r}{did_you_mean(str(key), vocab.RUN_KEYS)}",
                    [*keys, str(key)],
                    expected="one of " + ", ".join(vocab.RUN_KEYS),
                )
            if key in vocab.SCALAR_VOCAB and isinstance(value, str) and value not in vocab.SCALAR_VOCAB[key]:
                self.fail(
                    f"unknown {key} {value!r}{did_you_mean(value, vocab.SCALAR_VOCAB[key])}",
                    [*keys, key],
                    expected="one of " + ", ".join(vocab.SCALAR_VOCAB[key]),
                )
            if key == "schedule" and isinstance(value, str) and value not in vocab.SCHEDULES:
                self.fail(
                    f"unknown schedule {value!r}{did_you_mean(value, vocab.SCHEDULES)}",
                    [*keys, key],
                    expected="one of " + ", ".join(vocab.SCHEDULES) + " or an object with epochs/iterations",
                )
            if key == "schedule" and isinstance(value, dict) and "epochs" in value and "iterations" in value:
                self.fail(
                    "schedule states both epochs and iterations",
                    [*keys, key],
                    expected="either `epochs:` (epoch-based, steps in epochs) or `iterations:` (steps in iterations); "
                    "a schedule override replaces the whole schedule above it",
                )
            if key in vocab.COMPONENT_VOCAB and isinstance(value, dict):
                name = value.get("name")
                names = vocab.COMPONENT_VOCAB[key]
                if isinstance(name, str) and name not in names:
                    self.fail(
                        f"unknown {key} {name!r}{did_you_mean(name, names)}",
                        [*keys, key, "name"],
                        expected="one of " + ", ".join(names),
                    )

    def check_view(self, view: Any, keys: list[str | int]) -> None:
        if isinstance(view, dict) and isinstance(view.get("name"), str) and view["name"] not in vocab.VIEWS:
            name = view["name"]
            self.fail(
                f"unknown view {name!r}{did_you_mean(name, vocab.VIEWS)}",
                [*keys, "name"],
                expected="one of " + ", ".join(vocab.VIEWS),
            )

    def check_metric_key(self, key: Any, keys: list[str | int]) -> None:
        if not isinstance(key, str) or key in vocab.METRIC_KEYS or key.startswith(vocab.FREE_KEY_PREFIXES):
            return
        self.fail(
            f"unknown metric key {key!r}{did_you_mean(key, vocab.METRIC_KEYS)}",
            keys,
            expected="a canonical key (bbox./segm. + AP AP50 AP75 APs APm APl APr APc APf AP1..AP4, PwB, cls.ACC*) "
            "or stats.* / other.* in statistics and out-of-scope tables",
        )

    def vocabulary_pass(self) -> None:
        d = self.data
        if isinstance(d.get("paper"), str) and d["paper"] not in vocab.PAPERS:
            self.fail(f"unknown paper {d['paper']!r}{did_you_mean(d['paper'], vocab.PAPERS)}", ["paper"],
                      expected="one of " + ", ".join(vocab.PAPERS))
        defaults = d.get("defaults")
        if isinstance(defaults, dict):
            self.check_run(defaults.get("run"), ["defaults", "run"])
            self.check_view(defaults.get("view"), ["defaults", "view"])
        tables = d.get("tables")
        if not isinstance(tables, list):
            return
        for ti, table in enumerate(tables):
            if not isinstance(table, dict):
                continue
            self.check_run(table.get("run"), ["tables", ti, "run"])
            self.check_view(table.get("view"), ["tables", ti, "view"])
            groups = table.get("column_groups")
            for gi, group in enumerate(groups if isinstance(groups, list) else []):
                if not isinstance(group, dict):
                    continue
                self.check_run(group.get("run"), ["tables", ti, "column_groups", gi, "run"])
                self.check_view(group.get("view"), ["tables", ti, "column_groups", gi, "view"])
                columns = group.get("columns")
                for ci, column in enumerate(columns if isinstance(columns, list) else []):
                    if isinstance(column, dict):
                        self.check_metric_key(column.get("key"), ["tables", ti, "column_groups", gi, "columns", ci, "key"])
            rows = table.get("rows")
            for ri, row in enumerate(rows if isinstance(rows, list) else []):
                if not isinstance(row, dict):
                    continue
                for part in ("run", "stage1"):
                    self.check_run(row.get(part), ["tables", ti, "rows", ri, part])
                self.check_view(row.get("view"), ["tables", ti, "rows", ri, "view"])
                reported = row.get("reported")
                if isinstance(reported, dict):
                    for key in reported:
                        self.check_metric_key(key, ["tables", ti, "rows", ri, "reported", str(key)])

    # pass 2 -----------------------------------------------------------------------------------------
    def schema_pass(self, cache_key: str | None = None) -> None:
        """JSON-schema validation. ``cache_key`` (file bytes + schema hash) marks a document that has already
        passed: then the pass (and the ~0.2 s import of jsonschema) is skipped; a failing one is never marked."""
        marker = _validated_marker(cache_key) if cache_key else None
        if marker is not None and marker.is_file():
            return
        self._schema_pass()
        if marker is not None:
            try:
                from ltbench.io import write_text

                write_text(marker, str(self.path) + "\n")
            except OSError:  # a read-only cache only costs the validation next time
                pass

    def _schema_pass(self) -> None:
        import jsonschema

        validator = jsonschema.Draft202012Validator(_schema())
        error = jsonschema.exceptions.best_match(validator.iter_errors(self.data))
        if error is None:
            return
        keys = list(error.absolute_path)
        self.fail(_schema_message(error), keys, expected=_schema_expected(error))

    def check_resolved(self, defaults: dict, table_raw: dict, row: Row, keys: list[str | int]) -> None:
        """Every component of the row's resolved run and view has a name."""
        from ltbench.spec.model import merge_run, merge_view

        run = merge_run(merge_run(merge_run(defaults["run"], table_raw.get("run")), row.group.run), row.run)
        resolved: list[tuple[str, dict]] = [("run", run)]
        if row.stage1:
            if not run.get("stage2"):
                self.fail("`stage1:` overrides on a row whose run has no stage2", [*keys, "stage1"],
                          expected="a `stage2:` method in the row's run (or drop `stage1:`)")
            # the stage-1 run as the planner builds it (it may have a stage2 of its own: three stages)
            resolved.append(("stage1", merge_run({**run, "stage2": None}, row.stage1)))
        for part_name, part_run in resolved:
            self._check_resolved_run(part_run, [*keys, part_name])
        self._check_iou_types(run, row, keys)
        view = merge_view(merge_view(merge_view(defaults.get("view"), table_raw.get("view")), row.group.view), row.view)
        if "name" not in view:
            self.fail("the resolved view has no name", [*keys, "view"], expected="one of " + ", ".join(vocab.VIEWS))
        for param in NUMERIC_VIEW_PARAMS:
            if param in view and not _finite_number(view[param]):
                self.fail(f"view {param} is {view[param]!r}", [*keys, "view", param], expected="a finite number")

    def _check_iou_types(self, run: dict, row: Row, keys: list[str | int]) -> None:
        """A box-only detector (Faster R-CNN, Cascade R-CNN) cannot fill a column that needs masks (``segm.*``):
        the row's column group must not have one (else every such row would fail at evaluation)."""
        detector = run.get("detector")
        if detector not in vocab.DETECTORS or detector in vocab.MASK_DETECTORS:
            return
        produced = vocab.detector_iou_types(detector)
        needs = [c.key for c in row.group.columns if c.key.split(".", 1)[0] in vocab.IOU_TYPES and c.key.split(".", 1)[0] not in produced]
        if needs:
            self.fail(f"the row's detector {detector!r} predicts boxes only, but its column group {row.group.id!r} has "
                      + ", ".join(repr(k) for k in needs) + ", which need masks", keys,
                      expected="a mask detector (" + ", ".join(vocab.MASK_DETECTORS) + ") for this row, or the row in a "
                      "column group without segm.* columns")

    def _check_resolved_run(self, run: dict, keys: list[str | int]) -> None:
        """Required keys, finite numeric parameters, and a name for every component of one resolved run."""
        for key in REQUIRED_RUN_KEYS:
            if run.get(key) is None:
                self.fail(f"the resolved run has no {key}", keys,
                          expected=f"`{key}:` in defaults.run, the table, its column group or the row")
        for (part, param) in NUMERIC_PARAMS:
            value = (run.get(part) or {}).get(param) if isinstance(run.get(part), dict) else None
            if value is not None and not _finite_number(value):
                self.fail(f"{part}.{param} is {value!r}", [*keys, part, param], expected="a finite number")
        for key in vocab.COMPONENT_VOCAB:
            value = run.get(key)
            if isinstance(value, dict) and "name" not in value:
                self.fail(f"the resolved {key} has parameters but no name", [*keys, key],
                          expected=f"`{key}: {{name: ...}}` here or at a level above (" + ", ".join(vocab.COMPONENT_VOCAB[key]) + ")")

    # pass 3 -----------------------------------------------------------------------------------------
    def build(self) -> PaperSpec:
        d = self.data
        paper = d["paper"]
        assumptions = {}
        for ai, a in enumerate(d.get("assumptions", [])):
            if a["id"] in assumptions:
                self.fail(f"duplicate assumption id {a['id']!r}", ["assumptions", ai, "id"], expected="unique ids")
            assumptions[a["id"]] = Assumption(a["id"], a["text"], a.get("choice", ""), a.get("source", ""))

        def check_refs(ids: list[str], keys: list[str | int]) -> None:
            for i, aid in enumerate(ids):
                if aid not in assumptions:
                    self.fail(
                        f"assumption {aid!r} is not defined{did_you_mean(aid, assumptions)}",
                        [*keys, i],
                        expected="an id from the paper's top-level `assumptions:` list",
                    )

        tables: list[Table] = []
        seen_tables: set[str] = set()
        for ti, t in enumerate(d["tables"]):
            tid = t["id"]
            if tid in seen_tables:
                self.fail(f"duplicate table id {tid!r}", ["tables", ti, "id"], expected="each table once")
            seen_tables.add(tid)
            check_refs(t.get("assumptions", []), ["tables", ti, "assumptions"])
            scope = t["scope"]
            groups: list[ColumnGroup] = []
            for gi, g in enumerate(t.get("column_groups", [])):
                if any(x.id == g["id"] for x in groups):
                    self.fail(f"duplicate column group {g['id']!r}", ["tables", ti, "column_groups", gi, "id"])
                columns = [Column(c["header"], c["key"], bool(c.get("lower_is_better", False))) for c in g["columns"]]
                seen_keys: set[str] = set()
                for ci, c in enumerate(columns):
                    if c.key in seen_keys:
                        self.fail(f"metric key {c.key!r} appears twice in one column group",
                                  ["tables", ti, "column_groups", gi, "columns", ci, "key"],
                                  expected="one column per key (split side-by-side blocks into column groups)")
                    seen_keys.add(c.key)
                    if scope == "reproduce" and c.key.startswith(vocab.FREE_KEY_PREFIXES):
                        self.fail(f"free metric key {c.key!r} in a table that is reproduced",
                                  ["tables", ti, "column_groups", gi, "columns", ci, "key"],
                                  expected="a canonical metric key (stats.*/other.* only in statistics/out_of_scope tables)")
                groups.append(ColumnGroup(g["id"], g.get("label", g["id"]), columns, g.get("run", {}), g.get("view")))
            rows_raw = t.get("rows", [])
            if rows_raw and not groups:
                self.fail("table has rows but no column_groups", ["tables", ti],
                          expected="column_groups with at least one group of columns")
            table = Table(
                paper=paper, id=tid, caption=t["caption"], scope=scope, reason=t.get("reason", ""),
                text=t.get("text", ""), run=t.get("run", {}), view=t.get("view"), seeds=t.get("seeds"),
                column_groups=groups, attribute_columns=list(t.get("attribute_columns", [])), rows=[],
                missing=list(t.get("missing", [])), not_reproducible=list(t.get("not_reproducible", [])),
                assumptions=list(t.get("assumptions", [])), instance_bins=t.get("instance_bins"),
                seed_aggregate=t.get("seed_aggregate"),
            )
            edges = t.get("instance_bins")
            if edges is not None and any(b <= a for a, b in zip(edges, edges[1:])):
                self.fail(f"instance_bins {edges!r} are not increasing", ["tables", ti, "instance_bins"],
                          expected="strictly increasing training-instance edges, e.g. [20, 400, 8000]")
            seen_rows: set[tuple[str, str]] = set()
            seen_labels: set[tuple[str, str]] = set()
            for ri, r in enumerate(rows_raw):
                keys: list[str | int] = ["tables", ti, "rows", ri]
                if "group" in r:
                    match = [g for g in groups if g.id == r["group"]]
                    if not match:
                        self.fail(f"unknown column group {r['group']!r}{did_you_mean(r['group'], [g.id for g in groups])}",
                                  [*keys, "group"], expected="one of " + ", ".join(g.id for g in groups))
                    group = match[0]
                elif len(groups) == 1:
                    group = groups[0]
                else:
                    self.fail("row does not say which column group it belongs to", keys,
                              expected="`group:` one of " + ", ".join(g.id for g in groups))
                row_id = r.get("id") or slugify(r["label"])
                if (group.id, row_id) in seen_rows or (group.id, r["label"]) in seen_labels:
                    self.fail(f"duplicate row {r['label']!r} (id {row_id!r}) in column group {group.id!r}", keys,
                              expected="unique row labels per table and column group (set `id:` to disambiguate)")
                seen_rows.add((group.id, row_id))
                seen_labels.add((group.id, r["label"]))
                reported: dict[str, str] = {}
                for key, value in r.get("reported", {}).items():
                    if key not in group.keys:
                        self.fail(f"reported key {key!r} is not a column of group {group.id!r}{did_you_mean(key, group.keys)}",
                                  [*keys, "reported", key], expected="one of " + ", ".join(group.keys))
                    reported[key] = printed_text(value)
                    self.check_reported_value(key, value, reported[key], [*keys, "reported", key])
                if table.attribute_columns:
                    for name in r.get("attributes", {}):
                        if name not in table.attribute_columns:
                            self.fail(f"attribute {name!r} is not an attribute column{did_you_mean(name, table.attribute_columns)}",
                                      [*keys, "attributes", name], expected="one of " + ", ".join(table.attribute_columns))
                check_refs(r.get("assumptions", []), [*keys, "assumptions"])
                cited_raw = r.get("cited")
                cited = None
                if cited_raw is not None:
                    cited = Cited(cited_raw["source"], cited_raw.get("note", ""), cited_raw.get("served_by"),
                                  bool(cited_raw.get("reproduce", False)))
                    if cited.reproduce and cited.served_by:
                        self.fail("a cited row cannot both be reproduced and served by another row",
                                  [*keys, "cited"],
                                  expected="either `reproduce: true` (own run from this paper's recipe) or "
                                  "`served_by:` (another row's run)")
                table.rows.append(Row(
                    paper=paper, table_id=tid, index=ri, id=row_id, label=r["label"], group=group,
                    multi_group=len(groups) > 1, attributes=dict(r.get("attributes", {})), run=r.get("run", {}),
                    stage1=r.get("stage1"), view=r.get("view"), seeds=r.get("seeds"), reported=reported,
                    cited=cited, assumptions=list(r.get("assumptions", [])), note=r.get("note", ""),
                    seed_aggregate=r.get("seed_aggregate"), baseline=r.get("baseline"),
                ))
            self.resolve_baselines(table, ti)
            for mi, m in enumerate(t.get("missing", [])):
                if "group" in m and m["group"] not in [g.id for g in groups]:
                    self.fail(f"unknown column group {m['group']!r}", ["tables", ti, "missing", mi, "group"],
                              expected="one of " + ", ".join(g.id for g in groups))
            tables.append(table)
        spec_defaults = d["defaults"]
        for ti, table in enumerate(tables):
            for row in table.rows:
                if table.scope != "reproduce" or (row.cited and not row.cited.planned):
                    continue
                self.check_resolved(spec_defaults, d["tables"][ti], row, ["tables", ti, "rows", row.index])
        for ci, claim in enumerate(d.get("claims", [])):
            check_refs(claim.get("assumptions", []), ["claims", ci, "assumptions"])
        defaults = d["defaults"]
        spec = PaperSpec(
            paper=paper, title=d["title"], source=d["source"], path=self.path,
            defaults_run=defaults["run"], defaults_view=defaults.get("view") or {"name": "plain"},
            seeds=defaults.get("seeds", 1), assumptions=assumptions, tables=tables,
            claims=list(d.get("claims", [])), raw=d, seed_aggregate=defaults.get("seed_aggregate"),
        )
        self.check_claims(spec)
        return spec

    def check_reported_value(self, key: str, value: Any, text: str, keys: KeyPath) -> None:
        """A reported number is finite and inside its metric's range (``vocab.metric_range``): the schema
        admits any YAML number, and ``.nan``, ``.inf``, 250 or -3.0 would only fail later, in render/audit."""
        number = float(value)  # the schema admits numbers and decimal strings only
        low, high, what = vocab.metric_range(key) or (None, None, "")
        finite = math.isfinite(number)
        if finite and (low is None or number >= low) and (high is None or number <= high):
            return
        expected = ("a finite number" if low is None and high is None
                    else f"a finite number >= {low:g}" if high is None
                    else f"a finite number from {low:g} to {high:g}") + (f" ({key} is {what})" if what else "")
        self.fail(f"reported value {text!r} is not a finite number" if not finite else f"reported value {text} is out of range",
                  keys, expected=expected)

    def resolve_baselines(self, table: Table, ti: int) -> None:
        """``baseline:`` names a row of the same table and column group (id or label): store its id."""
        for row in table.rows:
            if row.baseline is None:
                continue
            keys: list[str | int] = ["tables", ti, "rows", row.index, "baseline"]
            candidates = [r for r in table.rows if r.group.id == row.group.id]
            target = table.find_row(row.baseline, row.group.id)
            if target is None:
                self.fail(f"baseline {row.baseline!r} is not a row of column group {row.group.id!r}"
                          + did_you_mean(row.baseline, [r.label for r in candidates]), keys,
                          expected="the id or label of another row in the same table and column group")
            if target is row:
                self.fail(f"row {row.label!r} names itself as its baseline", keys, expected="another row")
            row.baseline = target.id

    def check_claims(self, spec: PaperSpec) -> None:
        from ltbench.spec import claims

        seen: set[str] = set()
        for ci, claim in enumerate(spec.claims):
            if claim["id"] in seen:
                self.fail(f"duplicate claim id {claim['id']!r}", ["claims", ci, "id"], expected="unique ids")
            seen.add(claim["id"])
            try:
                claims.check(spec, claim["predicate"])
            except LtbenchError as exc:
                self.fail(exc.message, ["claims", ci, "predicate"], expected=exc.expected)
