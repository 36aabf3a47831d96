"""Load and validate paper specs; every problem is a ``LtbenchError`` naming file, table, row and key.

Validation runs in three passes, each defensive against what the previous one has not checked yet:
1. vocabulary: every run/view/metric name is known (with a "did you mean"),
2. the JSON schema (structure and types), reported as the single most relevant error,
3. cross-references: column groups, duplicate rows, reported keys vs. columns, assumption ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ltbench.errors import LtbenchError, did_you_mean
from ltbench.spec import vocab
from ltbench.spec.checks import _Checker, describe_path  # noqa: F401  (describe_path: the loader's public helper)
from ltbench.spec.model import PaperSpec
from ltbench.spec.schema_validation import _schema_digest, cache_dir  # noqa: F401  (cache_dir: used by tests)
from ltbench.spec.yaml_text import parse_spec_yaml, read_spec_yaml

def validate_spec(data: Any, path: str | Path = "<spec>", *, cache_key: str | None = None,
                  text: str | None = None) -> PaperSpec:
    """Validate an already-parsed spec (dict) and return the model; raise ``LtbenchError`` otherwise.

    ``cache_key``: a digest of the exact source text; a document whose key passed the schema before skips
    the schema pass (``load_paper`` sets it; the vocabulary and cross-reference passes always run).
    ``text``: the YAML ``data`` was parsed from (``load_paper`` passes it): errors then name the line too.
    """
    path = Path(path)
    if not isinstance(data, dict):
        raise LtbenchError(f"the spec is a {type(data).__name__}, not a mapping", path=path,
                           expected="a YAML mapping with paper, title, source, defaults, tables")
    checker = _Checker(data, path, text)
    checker.vocabulary_pass()
    checker.schema_pass(cache_key)
    spec = checker.build()
    stem = path.stem
    if path.suffix in (".yaml", ".yml") and stem in vocab.PAPERS and stem != spec.paper:
        raise LtbenchError(f"file is named {path.name} but says paper: {spec.paper}", path=path, key="paper",
                           expected=f"paper: {stem}")
    return spec


def load_paper(path: str | Path) -> PaperSpec:
    """Read and validate one ``workflows/papers/<paper>.yaml`` (plus the columns of
    ``$LTBENCH_EXTRA_COLUMNS``: ``ltbench.spec.extra_columns``)."""
    import hashlib

    p = Path(path)
    if not p.is_file():
        return validate_spec(read_spec_yaml(p), path)  # read_spec_yaml names the missing file
    raw = p.read_bytes()  # one read: the cache key is the digest of exactly the text that is validated
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise LtbenchError(f"not UTF-8 text ({exc.reason} at byte {exc.start})", path=p, expected="a UTF-8 YAML file") from None
    key = hashlib.sha256(raw + _schema_digest().encode()).hexdigest()
    from ltbench.spec import extra_columns

    spec = validate_spec(parse_spec_yaml(text, p), path, cache_key=key, text=text)
    return extra_columns.apply(spec, extra_columns.from_env())


def papers_dir() -> Path:
    from ltbench.paths import PAPER_SPECS_DIR

    return PAPER_SPECS_DIR


def load_all(directory: str | Path | None = None, papers: Sequence[str] | None = None) -> dict[str, PaperSpec]:
    """Every paper spec in ``directory`` (default ``workflows/papers``), keyed by paper name.

    ``papers`` restricts (and checks) which ones: an unknown or absent paper is an error.
    """
    root = Path(directory) if directory is not None else papers_dir()
    found = {p.stem: p for p in sorted(root.glob("*.yaml")) if p.stem in vocab.PAPERS}
    wanted = list(papers) if papers else list(found)
    out: dict[str, PaperSpec] = {}
    for name in wanted:
        if name not in found:
            choices = list(vocab.PAPERS)
            raise LtbenchError(
                f"no spec for paper {name!r}{did_you_mean(name, choices)}",
                path=root / f"{name}.yaml",
                expected="one of " + ", ".join(sorted(found) or ["(none yet)"]),
            )
        out[name] = load_paper(found[name])
    return out
