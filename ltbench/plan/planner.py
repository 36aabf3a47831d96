"""The planner: table rows -> (run, view) pairs, runs deduplicated by the hash of their resolved config.

``build_plan(targets=None, papers=None, scale="smoke", framework=None)`` resolves every row of the
selected tables (docs/CONTRACTS.md, "Resolved run config"):

- rows of ``reproduce`` tables get one run per seed (two for stage-2 rows: the stage-1 run and the
  stage-2 run that starts from it) and one view; identical configs anywhere, in any paper, are one run;
- cited rows are served by the run of the row named in ``cited.served_by`` when that row's resolved run
  and view equal the cited row's own; otherwise they are reported only;
- rows of out-of-scope, qualitative and statistics tables, and rows whose every cell is on a closed
  test server, get no run.
"""

from __future__ import annotations

import copy
import re
from pathlib import Path
from typing import Any

from ltbench.errors import LtbenchError, did_you_mean
from ltbench.plan import cost, scales
from ltbench.plan.canonical import normalize_numbers, normalize_run, normalize_view, run_id, view_id
from ltbench.spec import vocab
from ltbench.spec.model import PaperSpec, Row, Table, merge_run

TARGET_RE = re.compile(r"^(?:.*/)?(?P<paper>[a-z0-9]+?)(?:_table(?P<table>[0-9A-Za-z]+))?\.(?:md|tex|csv|html|json)$")

from ltbench.plan.model import (  # noqa: F401  (the plan's types, importable from here too)
    NOT_REPRODUCIBLE,
    PLANNED,
    REPORTED_ONLY,
    SERVED,
    Plan,
    PlanRow,
    RunPlan,
    ViewPlan,
)


def parse_target(target: str) -> tuple[str | None, str | None]:
    """``tables/pcb_table2.md`` -> ("pcb", "2"); ``tables/pcb.md`` -> ("pcb", None); ``tables/audit.md`` -> (None, None)."""
    match = TARGET_RE.match(target.strip())
    if match:
        paper, table = match.group("paper"), match.group("table")
        if paper == "audit" and table is None:
            return None, None
        if paper in vocab.PAPERS:
            return paper, table
        raise LtbenchError(f"unknown paper {paper!r} in target {target!r}{did_you_mean(paper, vocab.PAPERS)}",
                           key="TARGET", expected="one of " + ", ".join(vocab.PAPERS))
    raise LtbenchError(f"cannot read target {target!r}", key="TARGET",
                       expected="tables/<paper>_table<N>.md, tables/<paper>.md or tables/audit.md (.tex also)")


class _SpecSource:
    """Loads paper specs on demand (a cited row may point into a paper that was not selected)."""

    def __init__(self, specs: dict[str, PaperSpec] | None, directory: str | Path | None) -> None:
        self.specs = dict(specs or {})
        self.directory = directory
        self._preloaded = specs is not None

    def get(self, paper: str) -> PaperSpec:
        if paper not in self.specs:
            if self._preloaded and self.directory is None:
                raise LtbenchError(f"no spec for paper {paper!r}", expected="one of " + ", ".join(sorted(self.specs)))
            from ltbench.spec import load_all

            self.specs.update(load_all(self.directory, [paper]))
        return self.specs[paper]

    def available(self) -> list[str]:
        if self._preloaded and self.directory is None:
            return sorted(self.specs, key=vocab.PAPERS.index)
        from ltbench.spec.loader import papers_dir

        root = Path(self.directory) if self.directory is not None else papers_dir()
        return [p for p in vocab.PAPERS if (root / f"{p}.yaml").is_file()]


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for key in sorted(set(a) | set(b)):
            if key == "id":
                continue
            out += _diff(a.get(key), b.get(key), f"{prefix}.{key}" if prefix else key)
        return out
    return [] if a == b else [prefix]


def _get(obj: Any, dotted: str) -> Any:
    for part in dotted.split("."):
        obj = obj.get(part) if isinstance(obj, dict) else None
    return obj


def _short(value: Any, limit: int = 40) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


# AP-fixed / AP-pool (Dave et al. 2021) need a second prediction: the top k detections of every category
# over the whole val set with no per-image cap (k: scales.ap_fixed_k). The view of every row of a table with
# such a column says `ap_fixed: {k}`; the workflow then predicts the view twice (as planned, for the standard
# columns, and in the adapters' per_class_top_k mode) and evaluates AP-fixed on the second
# (`ltbench.workflow.top_k_view`, `ltbench evaluate --ap-fixed-detections`).
def ap_fixed_request(scale: str) -> dict[str, Any]:
    return {"k": scales.ap_fixed_k(scale)}


def wants_ap_fixed(table: Table) -> bool:
    """Does a table have an AP-fixed / AP-pool column (``segm.APfixed``, ``bbox.APpool_r``, ...)?"""
    return any(c.key.split(".", 1)[-1] in vocab.AP_FIXED_SUFFIXES for g in table.column_groups for c in g.columns)


class _Planner:
    def __init__(self, plan: Plan, source: _SpecSource, seeds: int | None = None) -> None:
        self.plan = plan
        self.seeds = seeds  # overrides every row's spec seeds (the workflow's `seeds` config)
        self.source = source
        self.scale = plan.scale
        self.framework = plan.framework
        self._resolved: dict[tuple[str, str, str], tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]] = {}
        self._resolving: list[tuple[str, str, str]] = []  # rows being resolved (pretrain cycles)
        self._dependencies: list[dict[str, Any]] = []  # configs of pretrain source runs met while resolving
        # run id -> ids of scales.HARNESS_ASSUMPTIONS its config rests on (listed on the rows it serves)
        self.harness_assumptions: dict[str, list[str]] = {}

    def pretrain_source(self, ref: dict[str, str], seed: int) -> tuple[str, str]:
        """``pretrain: {from: {paper, table, row, group}}`` -> (kind, id of the run whose checkpoint initialises
        this one). The source row's runs (and their stage-1 runs) join the plan as dependencies; seed k is
        initialised from the source's seed k (its last seed if it has fewer)."""
        where = "pretrain.from"
        try:
            source_spec = self.source.get(ref["paper"])
            table = source_spec.table(ref["table"])
        except LtbenchError as exc:
            raise LtbenchError(f"pretrain.from names {ref.get('paper')!r} table {ref.get('table')!r}: {exc.message}",
                               key=where, expected=exc.expected or "an existing paper and table") from None
        source_row = table.find_row(ref["row"], ref.get("group"))
        if source_row is None:
            labels = [r.label for r in table.rows]
            raise LtbenchError(f"pretrain.from row {ref['row']!r} not found in {ref['paper']} table {ref['table']}"
                               f"{did_you_mean(ref['row'], labels)}", key=where,
                               expected="a row id or label of that table (and `group:` for grouped tables)")
        if table.scope != "reproduce" or (source_row.cited and not source_row.cited.reproduce):
            raise LtbenchError(f"pretrain.from row {source_row.display_label!r} has no run of its own", key=where,
                               expected="a planned row of a reproduced table")
        finals, every, _ = self.resolve(source_spec, source_row)
        self._dependencies += every
        init = finals[min(seed, len(finals) - 1)]
        kind = "lvis" if init["dataset"].startswith("lvis") else "coco" if init["dataset"].startswith("coco") else "none"
        return kind, init["id"]

    # resolution ----------------------------------------------------------------------------------
    def make_config(self, run: dict[str, Any], seed: int, stage1: str | None) -> dict[str, Any]:
        if self.scale == "paper":
            framework = self.framework or run["framework"]
        else:  # the override, else torchvision, whichever builds the detector first (mmdet: cascade, HTC)
            framework = scales.smoke_framework(run["detector"], self.framework)
        # the schedule follows the paper's framework whatever framework trains it (forced-framework-schedule)
        convention = run["framework"] if self.scale == "paper" else framework
        stage2 = copy.deepcopy(run.get("stage2"))
        train_schedule = scales.resolve_schedule(run["schedule"], self.scale, convention, run["dataset"], run.get("sampler"))
        schedule = train_schedule
        if stage2 and stage2.get("name") in vocab.POST_HOC_STAGE2:
            if "schedule" in stage2:
                raise LtbenchError(f"stage-2 method {stage2['name']!r} trains nothing but states a schedule",
                                   key="stage2.schedule",
                                   expected="no schedule (post-hoc: " + ", ".join(vocab.POST_HOC_STAGE2) + ")")
            schedule = scales.post_hoc_schedule(self.scale)
        elif stage2:
            schedule = scales.resolve_schedule(stage2.pop("schedule", "1x"), self.scale, convention, run["dataset"],
                                               stage2.get("sampler", run.get("sampler")))
        pretrain, init_from = run.get("pretrain", "imagenet"), None
        if isinstance(pretrain, dict):
            pretrain, init_from = self.pretrain_source(pretrain["from"], seed)
        regularizer = copy.deepcopy(run.get("regularizer"))
        if regularizer and regularizer.get("name") == "pcb":
            regularizer["start_iteration"] = scales.regularizer_start_iteration(regularizer, train_schedule)
        config = {
            "scale": self.scale, "framework": framework,
            # mini scale: a v0.5 row trains on the v1.0 data (its schedule stays the row's own: the run is shared
            # with the v1.0 row where both resolve to the same config)
            "detector": run["detector"], "backbone": run["backbone"],
            "dataset": scales.MINI_SHARED_DATASETS.get(run["dataset"], run["dataset"]) if self.scale == "mini" else run["dataset"],
            "pretrain": pretrain,
            "sampler": run.get("sampler"), "classifier": run.get("classifier"), "loss": run.get("loss"),
            "head": run.get("head"), "regularizer": regularizer, "mask_head": run.get("mask_head"),
            "class_agnostic": bool(run.get("class_agnostic", False)), "fp16": bool(run.get("fp16", False)) and self.scale == "paper",  # CPU smoke/mini runs train in fp32
            "stage2": stage2, "stage1": stage1, "seed": seed,
            "schedule": schedule, "model": scales.model_block(self.scale, run["backbone"], framework, run.get("train_scales")),
        }
        scaled_rfs = False
        if self.scale == "mini":  # RFS's threshold in images, not as a fraction of the 600 synthetic ones
            for block in (config, config["stage2"] or {}):
                if block.get("sampler") is not None:
                    scaled = scales.mini_sampler(block["sampler"], config["dataset"])
                    scaled_rfs |= scaled != block["sampler"]
                    block["sampler"] = scaled
        # only on the run that loads the checkpoint (a stage-2 run starts from its stage-1 run), and only when
        # set, so the configs (and ids) of every other run are unchanged
        if init_from is not None and not stage2:
            config["init_from"] = init_from
        for key in ("detector", "backbone", "dataset", "schedule"):
            if config[key] is None:
                raise LtbenchError(f"resolved run has no {key}", key=key, expected=f"`{key}:` in defaults.run")
        config = normalize_numbers(config)
        config["id"] = run_id(config)
        harness = []
        if any(s.get("epoch_images", 0) > scales.train_images(run["dataset"]) for s in (train_schedule, schedule)):
            harness.append("rfs-epoch-size")
        if self.scale == "paper" and framework != convention:
            harness.append("forced-framework-schedule")
        if self.scale == "mini" and config["dataset"] in scales.MINI_SHARED_DATASETS.values():
            harness.append("mini-one-dataset")  # on the shared run whichever row planned it first
        if scaled_rfs:
            harness.append("mini-rfs-threshold")
        harness += [*scales.FRAMEWORK_ASSUMPTIONS["*"], *scales.FRAMEWORK_ASSUMPTIONS.get(framework, ())]
        self.harness_assumptions[config["id"]] = harness
        return config

    def chain(self, run: dict[str, Any], stage1: dict[str, Any] | None, seed: int) -> list[dict[str, Any]]:
        """Configs of every training stage of ``run``, first stage first; the last is the row's run.

        A run with ``stage2`` starts from its stage-1 run: the run without ``stage2``, with the row's
        ``stage1:`` overrides. Those overrides may themselves add a ``stage2`` (BAGS Table 5 (3)/(4) fine-tune
        a BAGS model), so the stage-1 run is resolved the same way, recursively (without further overrides;
        every level removes one ``stage2``, so the recursion ends).
        """
        if not run.get("stage2"):
            return [self.make_config(run, seed, None)]
        stage1_run = normalize_run(merge_run({**run, "stage2": None}, stage1))
        before = self.chain(stage1_run, None, seed)
        return [*before, self.make_config(run, seed, before[-1]["id"])]

    def resolve(self, spec: PaperSpec, row: Row) -> tuple[list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]:
        """(final configs per seed, all configs incl. stage-1 ones, view config) of a row."""
        key = (spec.paper, row.table_id, f"{row.group.id}/{row.id}")
        if key in self._resolved:
            return self._resolved[key]
        if key in self._resolving:
            cycle = " -> ".join(f"{p} table {t} row {r}" for p, t, r in [*self._resolving[self._resolving.index(key):], key])
            raise LtbenchError(f"pretrain.from cycle: {cycle}", path=spec.path, key="pretrain.from",
                               expected="a chain of initialisations that ends in imagenet/coco/none")
        self._resolving.append(key)
        outer_dependencies, self._dependencies = self._dependencies, []
        try:
            paper_run = normalize_run(spec.row_run(row))
            finals: list[dict[str, Any]] = []
            every: list[dict[str, Any]] = []
            for seed in range(self.seeds or spec.row_seeds(row)):
                chain = self.chain(paper_run, row.stage1, seed)
                every += chain
                finals.append(chain[-1])
            view = normalize_view(spec.row_view(row), paper_run)
            if wants_ap_fixed(spec.table(row.table_id)):
                view = {**view, "ap_fixed": ap_fixed_request(self.scale)}
        except LtbenchError as exc:
            if exc.key and exc.key.startswith("table "):  # already placed by a nested resolve (pretrain source)
                raise
            raise LtbenchError(exc.message, path=spec.path,
                               key=f"table {row.table_id}, row {row.display_label!r}: {exc.key or ''}".rstrip(": "),
                               expected=exc.expected, hint=exc.hint) from None
        finally:
            self._resolving.pop()
            dependencies, self._dependencies = self._dependencies, outer_dependencies
        every = list({c["id"]: c for c in [*dependencies, *every]}.values())  # pretrain sources first, each once
        view_config = normalize_numbers({"id": view_id(view), **view})
        self._resolved[key] = (finals, every, view_config)
        return self._resolved[key]

    # rows ----------------------------------------------------------------------------------------
    def add_row(self, spec: PaperSpec, table: Table, row: Row) -> None:
        cells = dict(row.reported)
        prow = PlanRow(paper=spec.paper, table=table.id, row_id=row.id, label=row.display_label, group=row.group.id,
                       status=PLANNED, run_ids=[], view_id=None, cells=cells, assumptions=list(row.assumptions),
                       seed_aggregate=spec.row_seed_aggregate(row))
        if row.cited:
            prow.cited = {"source": row.cited.source, "note": row.cited.note, "served_by": row.cited.served_by,
                          "reproduce": row.cited.reproduce}
        self.plan.rows.append(prow)
        if table.scope != "reproduce":
            prow.status = table.scope
            prow.reason = table.reason or f"{table.scope} table: no training"
            return
        closed = self._not_reproducible(table, row)
        if closed is not None:
            prow.status = NOT_REPRODUCIBLE
            prow.reason = closed
            return
        source_spec, source_row = spec, row
        if row.cited and row.cited.reproduce:
            # the citing paper states the whole recipe: plan the row's own run (the row stays cited)
            prow.reason = (f"cited from {row.cited.source}; reproduced with {spec.paper}'s own recipe "
                           "for this row")
        elif row.cited:
            served = row.cited.served_by
            if not served:
                prow.status = REPORTED_ONLY
                prow.reason = f"cited from {row.cited.source}; no served_by row"
                return
            target_spec, target_row = self.find_served(spec, row, served)
            if target_row.cited and not target_row.cited.reproduce:
                prow.status = REPORTED_ONLY
                prow.reason = (f"served_by row {target_row.display_label!r} is itself a cited row; "
                               "point served_by at the row that was actually run (or a cited row with "
                               "`reproduce: true`)")
                return
            differences = self.cited_differences(spec, table, row, target_spec, target_row)
            if differences:
                prow.status = REPORTED_ONLY
                prow.reason = (f"served_by {target_spec.paper} table {target_row.table_id} row {target_row.display_label!r}"
                               f" differs in " + ", ".join(differences[:8]))
                return
            prow.status = SERVED
            prow.served_by = f"{target_spec.paper}/{target_row.table_id}/{target_row.display_label}"
            source_spec, source_row = target_spec, target_row
        finals, every, view_config = self.resolve(source_spec, source_row)
        cell_ref = {"paper": spec.paper, "table": table.id, "row": row.display_label, "view": view_config["id"],
                    "columns": list(cells)}
        for config in every:
            run = self.plan.runs.get(config["id"])
            if run is None:
                run = self.plan.runs[config["id"]] = RunPlan(config)
            run.cells.append(cell_ref)
        bins = scales.instance_bins(finals[0]["dataset"], table.instance_bins)
        prow.instance_bins = bins
        needed = {c.key.split(".", 1)[0] for c in row.group.columns}  # bbox / segm (PwB, cls.*: no IoU type)
        for config in finals:
            view = self._view(config["id"], view_config)
            if view.instance_bins is None:
                view.instance_bins = bins
            elif view.instance_bins != bins:
                raise LtbenchError(
                    f"run {config['id']} view {view.view_id} is read with instance bins {view.instance_bins} by "
                    f"{view.cells[0]['paper']} table {view.cells[0]['table']} and {bins} by this row",
                    path=spec.path, key=f"table {table.id}, row {row.display_label!r}: instance_bins",
                    expected="one set of AP1..AP4 edges per evaluated (run, view)")
            view.cells.append(cell_ref)
            view.needed_iou_types = [t for t in vocab.IOU_TYPES if t in view.needed_iou_types or t in needed]
        prow.run_ids = [c["id"] for c in finals]
        prow.view_id = view_config["id"]
        for config in every:
            prow.assumptions += [a for a in self.harness_assumptions.get(config["id"], []) if a not in prow.assumptions]

    @staticmethod
    def cited_differences(spec: PaperSpec, table: Table, row: Row, target_spec: PaperSpec, target_row: Row) -> list[str]:
        """What the cited row states (its table's, column group's and own run/view/stage1) that the served
        row's resolved run and view do not agree with, as ``key: stated != served`` strings.

        The citing paper's ``defaults`` are not applied: the cited numbers were produced under the cited
        paper's recipe, so only what the citing table says about the row is checked against it.
        """
        from ltbench.spec.model import merge_view

        served_run = normalize_run(target_spec.row_run(target_row))
        stated = merge_run(merge_run(table.run or {}, row.group.run), row.run)
        checked = normalize_run(merge_run(served_run, stated))
        out = [f"{k}: {_short(_get(checked, k))} != {_short(_get(served_run, k))}" for k in _diff(checked, served_run)]
        if row.stage1 is not None:
            served_stage1 = normalize_run(merge_run({**served_run, "stage2": None}, target_row.stage1))
            checked1 = normalize_run(merge_run(served_stage1, row.stage1))
            out += [f"stage1.{k}" for k in _diff(checked1, served_stage1)]
        served_view = target_spec.row_view(target_row)
        stated_view = merge_view(merge_view(table.view, row.group.view), row.view) if (table.view or row.group.view or row.view) else None
        if stated_view is not None:
            checked_view = merge_view(served_view, stated_view)
            out += [f"view.{k}: {_short(_get(checked_view, k))} != {_short(_get(served_view, k))}"
                    for k in _diff(checked_view, served_view)]
        return out

    def _view(self, rid: str, view_config: dict[str, Any]) -> ViewPlan:
        for v in self.plan.views:
            if v.run_id == rid and v.view_id == view_config["id"]:
                # a view shared by a table with an AP-fixed column and one without: the request wins
                # (ap_fixed is not part of the view id: it adds a prediction, it changes none)
                if "ap_fixed" in view_config and "ap_fixed" not in v.view_config:
                    v.view_config = {**v.view_config, "ap_fixed": view_config["ap_fixed"]}
                return v
        view = ViewPlan(rid, view_config["id"], view_config)
        self.plan.views.append(view)
        return view

    def find_served(self, spec: PaperSpec, row: Row, served: dict[str, str]) -> tuple[PaperSpec, Row]:
        where = f"table {row.table_id}, row {row.display_label!r}: cited.served_by"
        try:
            target_spec = self.source.get(served["paper"])
        except LtbenchError as exc:
            raise LtbenchError(f"served_by names paper {served['paper']!r}, which has no spec ({exc.message})",
                               path=spec.path, key=where, expected="an existing workflows/papers/<paper>.yaml") from None
        try:
            target_table = target_spec.table(served["table"])
        except LtbenchError:
            raise LtbenchError(f"served_by names table {served['table']!r} of {served['paper']}, which does not exist",
                               path=spec.path, key=where,
                               expected="one of " + ", ".join(t.id for t in target_spec.tables)) from None
        target_row = target_table.find_row(served["row"], served.get("group"))
        if target_row is None:
            labels = [r.label for r in target_table.rows] + [r.id for r in target_table.rows]
            raise LtbenchError(
                f"served_by row {served['row']!r} not found in {served['paper']} table {served['table']}"
                f"{did_you_mean(served['row'], labels)}",
                path=spec.path, key=where, expected="a row id or label of that table (and `group:` for grouped tables)")
        if target_row is row:
            raise LtbenchError("a cited row cannot be served by itself", path=spec.path, key=where)
        return target_spec, target_row

    @staticmethod
    def _not_reproducible(table: Table, row: Row) -> str | None:
        for entry in table.not_reproducible:
            if "group" in entry and entry["group"] != row.group.id:
                continue
            if "rows" in entry and not ({row.id, row.label} & set(entry["rows"])):
                continue
            columns = entry.get("columns")
            if columns and not set(row.reported) <= set(columns):
                continue
            return entry["reason"]
        return None

    def finish(self) -> None:
        views_per_run: dict[str, int] = {}
        for v in self.plan.views:
            views_per_run[v.run_id] = views_per_run.get(v.run_id, 0) + 1
            # evaluate what the columns need and the detector produces (a box-only detector: bbox; a column
            # needing masks from one is a spec error at load time, ltbench.spec.checks)
            produced = vocab.detector_iou_types(self.plan.runs[v.run_id].config["detector"])
            v.iou_types = [t for t in produced if t in v.needed_iou_types] or [produced[0]]
        for run in self.plan.runs.values():
            est = cost.estimate(run.config, max(1, views_per_run.get(run.id, 0)))
            run.gpu_hours, run.cpu_hours = est["gpu_hours"], est["cpu_hours"]


def build_plan(
    targets: list[str] | tuple[str, ...] | None = None,
    papers: list[str] | tuple[str, ...] | None = None,
    scale: str = "smoke",
    framework: str | None = None,
    *,
    specs: dict[str, PaperSpec] | None = None,
    directory: str | Path | None = None,
    seeds: int | None = None,
) -> Plan:
    """Plan the runs and views that the selected tables need.

    Args:
        targets: table files (``tables/pcb_table2.md``, ``tables/pcb.md``, ``tables/audit.md``).
        papers: whole papers. With neither targets nor papers: every paper that has a spec.
        scale: ``smoke`` (CPU) or ``paper``.
        framework: override every run's framework (default: the paper's at paper scale, torchvision at smoke).
        specs: already-loaded specs (tests); directory: where the YAMLs are (default workflows/papers).
        seeds: N seeds for every planned row (seed 0..N-1; one run per seed), overriding the specs'
            ``seeds:``; None keeps the specs'. Seed k of a run is the same run whatever N is (same id).
    """
    scales.check_scale(scale)
    if seeds is not None and (isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1):
        raise LtbenchError(f"seeds {seeds!r} is not a positive integer", key="seeds", expected="seeds=3")
    if framework is not None and framework not in vocab.FRAMEWORKS:
        raise LtbenchError(f"unknown framework {framework!r}{did_you_mean(framework, vocab.FRAMEWORKS)}",
                           key="--framework", expected="one of " + ", ".join(vocab.FRAMEWORKS))
    source = _SpecSource(specs, directory)
    selection: dict[str, set[str] | None] = {}

    def select(paper: str | None, table: str | None) -> None:
        names = [paper] if paper else source.available()
        for name in names:
            if table is None:
                selection[name] = None
            elif selection.get(name, set()) is not None:
                selection.setdefault(name, set()).add(table)  # type: ignore[union-attr]

    for target in targets or []:
        select(*parse_target(target))
    for paper in papers or []:
        if paper not in vocab.PAPERS:
            raise LtbenchError(f"unknown paper {paper!r}{did_you_mean(paper, vocab.PAPERS)}", key="--paper",
                               expected="one of " + ", ".join(vocab.PAPERS))
        select(paper, None)
    if not targets and not papers:
        select(None, None)
    ordered = sorted(selection, key=vocab.PAPERS.index)
    plan = Plan(scale=scale, framework=framework, targets=list(targets or []), papers=ordered, seeds=seeds)
    planner = _Planner(plan, source, seeds)
    for paper in ordered:
        spec = source.get(paper)
        wanted = selection[paper]
        if wanted is not None:
            for table_id in sorted(wanted):
                spec.table(table_id)  # a clear error for a table that does not exist
        for table in spec.tables:
            if wanted is None or table.id in wanted:
                for row in table.rows:
                    planner.add_row(spec, table, row)
    planner.finish()
    return plan
