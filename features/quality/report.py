"""The report artifact: per suite GE's JSON result and a short Markdown page of what failed and where;
an index.md and summary.json over all suites.
"""

from __future__ import annotations

import json
from pathlib import Path

from features.quality.validate import SUITES, Failure, Result

EXAMPLES_SHOWN = 10
LONG_LIST = 8  # value sets longer than this are shortened in the Markdown (the JSON has them whole)


def write_reports(results: dict[str, Result], missing: list[str], data_dir: Path, out_dir: Path,
                  seconds: dict[str, float]) -> dict:
    """Write NAME.json and NAME.md per suite, index.md and summary.json; returns the summary."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, result in results.items():
        (out_dir / f"{name}.json").write_text(json.dumps(result.gx_result, indent=1, default=str) + "\n")
        (out_dir / f"{name}.md").write_text(suite_markdown(result))
    summary = {
        "success": not missing and all(r.success for r in results.values()),
        "data_dir": str(data_dir), "report": str(out_dir / "index.md"),
        "seconds": {k: round(v, 3) for k, v in seconds.items()},
        "suites": {name: {"success": r.success, "rows": r.rows, "evaluated": r.evaluated,
                          "failed": [describe(f) for f in r.failures]} for name, r in results.items()},
        "missing": missing, "skipped": [s for s in SUITES if s not in results and s not in missing],
    }
    (out_dir / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    (out_dir / "index.md").write_text(index_markdown(summary))
    return summary


def describe(failure: Failure) -> str:
    """expect_x(column=a, min_value=0) where b == 1: the expectation as one line."""
    arguments = dict(failure.arguments)
    condition = arguments.pop("row_condition", None)
    text = ", ".join(f"{k}={_short(v)}" for k, v in arguments.items()
                     if v is not None and k not in ("condition_parser", "ignore_row_if"))
    return f"{failure.expectation}({text})" + (f" where {_condition(condition)}" if condition else "")


def _condition(condition: object) -> str:
    """GE serialises a Column comparison as {column: {name}, operator, parameter}."""
    if isinstance(condition, dict) and {"column", "operator"} <= set(condition):
        return f"{condition['column'].get('name')} {condition['operator']} {condition.get('parameter')}"
    return str(condition)


def _short(value: object) -> str:
    if isinstance(value, list) and len(value) > LONG_LIST:
        return f"[{', '.join(map(str, value[:3]))}, ... {len(value)} values]"
    return str(value)


def suite_markdown(result: Result) -> str:
    """The suite's page: verdict, then each failed expectation with why and the offending rows."""
    spec = SUITES[result.suite]
    met = result.evaluated - len(result.failures)
    lines = [f"# Data quality: {result.suite}: {'passed' if result.success else 'FAILED'}", "",
             f"Table `{spec.table}`, {result.rows:,} rows; {met} of {result.evaluated} expectations met. "
             f"Great Expectations result: `{result.suite}.json`.", ""]
    if result.failures:
        lines += ["## Failed expectations", ""]
    for failure in result.failures:
        lines += _failure_markdown(failure, spec.id_columns)
    return "\n".join(lines)


def _failure_markdown(failure: Failure, id_columns: tuple[str, ...]) -> list[str]:
    lines = [f"### `{describe(failure)}`", ""]
    if failure.why:
        lines.append(f"Why: {failure.why}.")
    if failure.error:
        lines.append(f"Could not be evaluated: {failure.error}")
    elif failure.unexpected_count is not None:
        lines.append(f"{failure.unexpected_count:,} of {failure.element_count:,} rows unexpected; "
                     f"offending rows (first {min(EXAMPLES_SHOWN, len(failure.examples))}):")
    elif failure.observed is not None:
        lines.append(f"Observed: {failure.observed}")
    lines.append("")
    if failure.examples and not failure.error:
        lines += [*_table(failure.examples[:EXAMPLES_SHOWN], id_columns), ""]
    return lines


def _table(rows: list[dict], first: tuple[str, ...]) -> list[str]:
    """A Markdown table of the rows, the columns that name a row first."""
    present = list(dict.fromkeys(k for row in rows for k in row))
    columns = [c for c in first if c in present] + [c for c in present if c not in first]
    cell = lambda v: str(v).replace("|", "\\|").replace("\n", " ")  # noqa: E731
    return [f"| {' | '.join(columns)} |", f"|{'---|' * len(columns)}",
            *[f"| {' | '.join(cell(row.get(c, '')) for c in columns)} |" for row in rows]]


def index_markdown(summary: dict) -> str:
    """One line per suite: verdict, rows, failed expectations, link to its page."""
    suites = summary["suites"]
    failed = [n for n, s in suites.items() if not s["success"]] + summary["missing"]
    lines = [f"# Data quality report: {'passed' if summary['success'] else 'FAILED'}", "",
             f"Data: `{summary['data_dir']}`; {len(suites)} suites run, {len(failed)} failed"
             + (f" ({', '.join(failed)})" if failed else "") + ".", "",
             "| suite | verdict | rows | expectations | failed | page |", "|---|---|---|---|---|---|"]
    for name, s in suites.items():
        verdict = "passed" if s["success"] else "**FAILED**"
        lines.append(f"| {name} | {verdict} | {s['rows']:,} | {s['evaluated']} | {len(s['failed'])} | "
                     f"[{name}.md]({name}.md) |")
    lines += [f"| {name} | **MISSING** | | | | the table is absent |" for name in summary["missing"]]
    if summary["skipped"]:
        lines += ["", f"Not checked (absent, not required): {', '.join(summary['skipped'])}."]
    return "\n".join(lines) + "\n"
