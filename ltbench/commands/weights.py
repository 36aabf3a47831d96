"""``ltbench weights fetch``: the pretrained weight files a plan needs, downloaded and verified into one cache."""

from __future__ import annotations

import shlex

import click


@click.group(name="weights", help="Pretrained weights (ImageNet, COCO) that paper-scale runs start from.")
def command() -> None:
    pass


def _again(targets, papers, all_papers, framework, ids, cache_option) -> str:  # noqa: ANN001
    """The fetch command that repeats this selection."""
    words = ["ltbench", "weights", "fetch", *targets]
    words += [w for p in papers for w in ("--paper", p)] + (["--all"] if all_papers else [])
    words += ["--framework", framework] if framework else []
    words += [w for i in ids for w in ("--id", i)]
    words += ["--cache", cache_option] if cache_option else []
    return " ".join(shlex.quote(w) for w in words)


@command.command(name="fetch")
@click.argument("targets", nargs=-1)
@click.option("--paper", "papers", multiple=True, help="Every table of a paper (repeatable).")
@click.option("--all", "all_papers", is_flag=True, help="Every table of every paper.")
@click.option("--framework", type=click.Choice(["mmdet", "detectron2", "torchvision"]), default=None,
              help="Run everything through this framework (as `ltbench plan --framework`).")
@click.option("--id", "ids", multiple=True, metavar="WEIGHT_ID",
              help="A weight id, e.g. mmdet/imagenet/r50 (repeatable; what a missing-weights error names).")
@click.option("--dry-run", is_flag=True, help="List the files, their sources and whether they are here; download nothing.")
@click.option("--cache", "cache_option", default=None, metavar="DIR",
              help="Cache folder (default: $LTBENCH_WEIGHTS, weights.cache of the workflow config, <data root>/weights).")
@click.option("--mirror", default=None, metavar="URL", envvar="LTBENCH_WEIGHTS_MIRROR",
              help="Fetch from a copy of a cache served over HTTP (URL/<host>/<path>); checksums are unchanged.")
@click.option("--retries", type=click.IntRange(min=0), default=3, show_default=True,
              help="Tries after a network failure (each resumes the partial file).")
def fetch(targets, papers, all_papers, framework, ids, dry_run, cache_option, mirror, retries) -> None:  # noqa: ANN001
    """Download the pretrained weights the runs of TARGET... need at paper scale (tables/pcb_table2.md,
    tables/bags.md, ...), verify their checksums, and list each file with its source and status.

    Run it on a machine with internet access; training and prediction never download (they fail with this
    command when a file is missing). Smoke-scale runs need no weights (random init).
    """
    from ltbench.errors import LtbenchError
    from ltbench.weights import fetch as fetch_mod
    from ltbench.weights.cache import load_settings, read_lock

    if all_papers and (targets or papers):
        raise LtbenchError("--all fetches for every paper; do not combine it with targets or --paper", key="--all")
    if not (targets or papers or all_papers or ids):
        raise LtbenchError("nothing selected", key="TARGET",
                           expected="table targets (tables/pcb_table2.md), --paper P, --all or --id WEIGHT_ID")
    settings = load_settings(cache=cache_option)
    needs: dict = {}
    selection = []
    runs = 0
    if targets or papers or all_papers:
        from ltbench.plan import build_plan

        plan = build_plan(list(targets) or None, list(papers) or None, scale="paper", framework=framework)
        needs.update(fetch_mod.needs_of_plan(plan))
        runs = len(plan.runs)
        selection.append(" ".join(targets) or ("papers " + ", ".join(plan.papers)))
    if ids:
        for weight_id, need in fetch_mod.needs_of_ids(ids).items():
            needs.setdefault(weight_id, need)
        selection.append("--id " + " ".join(ids))
    items = fetch_mod.items_of(needs, settings)
    started = sum(len(n.runs) for n in needs.values())
    click.echo(f"weights for {'; '.join(selection)} at paper scale (framework: {framework or 'per paper'}): "
               f"{len(items)} file{'s' * (len(items) != 1)}"
               + (f" for {started} of {runs} runs" if runs else "")
               + (" (the others start from another run's checkpoint)" if started < runs else ""))
    click.echo(f"cache: {settings.cache} ({settings.cache_source})")
    lock = read_lock(settings.cache)
    failures: list[str] = []
    counts: dict[str, int] = {}
    for item in items:
        click.echo("")
        if dry_run or item.file is None:
            status = fetch_mod.quick_status(item, settings, lock)
        else:
            try:
                status = fetch_mod.download(item.file, item.ids[0], settings, mirror=mirror, retries=retries,
                                            log=lambda m: click.echo(m, err=True))
            except LtbenchError as exc:
                status = "failed"
                failures.append(str(exc))
            lock = read_lock(settings.cache)
        word = status.split(",")[0].split(" (")[0]
        counts[word] = counts.get(word, 0) + 1
        for line in fetch_mod.describe(item, settings, lock, status, mirror):
            click.echo(line)
    click.echo("")
    click.echo("summary: " + ", ".join(f"{n} {w}" for w, n in counts.items()) if counts else "summary: no file needed")
    missing = counts.get("missing", 0) + counts.get("failed", 0)
    if dry_run and missing:
        click.echo(f"fetch them (on a machine with internet access): "
                   f"{_again(targets, papers, all_papers, framework, ids, cache_option)}")
    unknown = [i.ids[0] for i in items if i.file is None and i.override is None]
    if failures or (unknown and not dry_run):
        problems = failures + [f"{u}: no known download; set your own file (weights.files / $LTBENCH_WEIGHT_FILES)"
                               for u in unknown]
        raise LtbenchError(f"{len(problems)} weight file(s) not fetched:\n  " + "\n  ".join(problems))
