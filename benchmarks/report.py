"""The results: a console table, `latest.md` (markdown), `latest.json` and `latest.png` (chart)
in the results folder, with the machine they ran on."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import asyncpg

from benchmarks.loadgen import wrk_path
from benchmarks.scenarios.base import Result

MD, JSON, PNG = "latest.md", "latest.json", "latest.png"


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) / 1024 / 1024
    except OSError:
        pass
    return 0.0


def _wrk_version() -> str:
    wrk = wrk_path()
    if wrk is None:
        return "not installed"
    out = subprocess.run([wrk, "-v"], capture_output=True, text=True, check=False)  # noqa: S603
    return (out.stdout or out.stderr).splitlines()[0].strip() if (out.stdout or out.stderr) else "?"


def _git_commit() -> str:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,  # noqa: S607
            cwd=Path(__file__).parent,
        )
        return out.stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


async def machine_info(admin_dsn: str) -> dict[str, Any]:
    conn = await asyncpg.connect(admin_dsn)
    try:
        pg = await conn.fetchval("SHOW server_version")
    finally:
        await conn.close()
    return {
        "cpu": _cpu_model(),
        "cores": os.cpu_count(),
        "memory_gib": round(_memory_gib(), 1),
        "postgresql": pg,
        "python": platform.python_version(),
        "os": platform.platform(terse=True),
        "wrk": _wrk_version(),
        "commit": _git_commit(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "load_start": [round(x, 2) for x in os.getloadavg()],
    }


def _status(r: Result) -> str:
    if r.skipped:
        return "pending"
    if r.passed is None:
        return "-"
    return "met" if r.passed else "MISSED"


def _table(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    headers: list[str] = []
    for row in rows:
        headers += [k for k in row if k not in headers]
    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for row in rows:
        lines.append("| " + " | ".join(str(row.get(h, "")) for h in headers) + " |")
    return lines


def summary_rows(results: list[Result]) -> list[dict[str, str]]:
    return [
        {
            "Scenario": r.title,
            "Target": r.target,
            "Result": r.skipped or r.summary,
            "Status": _status(r),
        }
        for r in results
    ]


def console(results: list[Result]) -> str:
    rows = summary_rows(results)
    widths = {k: max(len(k), *(len(r[k]) for r in rows)) for k in rows[0]} if rows else {}
    cols = ("Scenario", "Status", "Target", "Result")
    line = "  ".join(f"{c:{min(widths.get(c, 0), 60)}}" for c in cols)
    out = [line, "-" * len(line)]
    for r in rows:
        out.append(
            "  ".join(f"{r[c][:60]:{min(widths[c], 60)}}" for c in cols[:-1]) + "  " + r["Result"]
        )
    return "\n".join(out)


def markdown(
    results: list[Result],
    machine: dict[str, Any],
    options: dict[str, Any],
    comparison: list[dict[str, str]] | None = None,
) -> str:
    load = machine.get("load_start"), machine.get("load_end")
    lines = [
        f"# Warden benchmarks, {machine['started']}",
        "",
        f"Machine: {machine['cpu']}, {machine['cores']} cores, {machine['memory_gib']} GiB; "
        f"PostgreSQL {machine['postgresql']}; Python {machine['python']}; {machine['os']}; "
        f"{machine['wrk']}; commit `{machine['commit']}`.",
        f"Load average (1/5/15 min) at start {load[0]}, at end {load[1]}"
        + (
            " — the machine was busy with other work: absolute numbers are noisy; the ratios "
            "(same run, alternating rounds) are what to read."
            if _busy(machine)
            else "."
        ),
        "",
        "Options: " + ", ".join(f"`{k}={v}`" for k, v in options.items()),
        "",
        "## Summary",
        "",
        *_table(summary_rows(results)),
        "",
        f"![benchmark chart]({PNG})",
        "",
    ]
    if comparison:
        lines += [
            "## Against the previous run",
            "",
            *_table(comparison),
            "",
        ]
    for r in results:
        lines += [f"## {r.title}", "", f"Target: {r.target}. Status: **{_status(r)}**.", ""]
        if r.skipped:
            lines += [f"Not run: {r.skipped}.", ""]
            continue
        lines += [*_table(r.rows), "", r.markdown, ""]
    return "\n".join(lines).rstrip() + "\n"


def _busy(machine: dict[str, Any]) -> bool:
    cores = machine.get("cores") or 1
    loads = [machine.get("load_start") or [0], machine.get("load_end") or [0]]
    return any(load[0] > 0.5 * cores for load in loads)


def _throughput(ax: Any, r: Result) -> None:
    m = r.metrics
    names = ["warden", "bare"]
    ax.bar(names, [m[n]["rps"] for n in names], color=["#3b6ea8", "#9aa5b1"])
    ax.set_title(f"Scoped list: req/s (median), Warden/bare = {m['ratio']:.2f}x")
    ax.set_ylabel("req/s")


def _latency(ax: Any, r: Result) -> None:
    m = r.metrics
    names = ["warden", "bare"]
    x = range(2)
    ax.bar([i - 0.2 for i in x], [m[n]["p50_ms"] for n in names], 0.4, label="p50")
    ax.bar([i + 0.2 for i in x], [m[n]["p99_ms"] for n in names], 0.4, label="p99")
    ax.set_xticks(list(x), names)
    ax.set_ylabel("ms")
    ax.set_title("Scoped list latency")
    ax.legend()


def _rls(ax: Any, r: Result) -> None:
    q = r.metrics["queries"]
    names = list(q)
    x = range(len(names))
    series = [("ratio", "client latency"), ("server_ratio", "server execution")]
    if all(q[n].get("backend_cpu_ratio") for n in names):
        series.append(("backend_cpu_ratio", "backend CPU"))
    width = 0.8 / len(series)
    for k, (metric, label) in enumerate(series):
        offset = (k - (len(series) - 1) / 2) * width
        ax.bar([i + offset for i in x], [q[n][metric] for n in names], width, label=label)
    ax.axhline(1.05, color="red", linestyle="--", linewidth=1, label="target 1.05")
    ax.axhline(1.0, color="black", linewidth=0.5)
    ax.set_xticks(list(x), [n.replace(" ", "\n", 1) for n in names])
    ax.set_title("RLS / BYPASSRLS time ratio")
    ax.legend(fontsize=8)


def _concurrency(ax: Any, r: Result) -> None:
    m = r.metrics
    ax.bar(["p50", "p99", "max"], [m["p50_ms"], m["p99_ms"], m["max_ms"]], color="#3b6ea8")
    ax.set_ylabel("ms")
    ax.set_title(
        f"Concurrency: {m['rps']:.0f} req/s, {m['errors']} errors, {m['bad_rows']} cross-ws rows"
    )


def _scale(ax: Any, r: Result) -> None:
    for name in dict.fromkeys(row["list"] for row in r.rows):
        points = [(row["findings"], row["p50 ms"]) for row in r.rows if row["list"] == name]
        ax.plot([f for f, _ in points], [v for _, v in points], marker="o", label=name)
    ax.set_xscale("log")
    ax.set_ylim(bottom=0)
    ax.set_xlabel("findings in the table (all workspaces)")
    ax.set_ylabel("p50 ms")
    ax.set_title("Scale: one tenant's lists as the table grows")
    ax.legend(fontsize=8)


def _ingest(ax: Any, r: Result) -> None:
    m = r.metrics
    ax.bar(
        ["job path", "baseline\n(superuser, same SQL)"],
        [m["job_findings_per_s"], m["baseline_findings_per_s"]],
        color=["#3b6ea8", "#9aa5b1"],
    )
    ax.axhline(50_000, color="red", linestyle="--", linewidth=1, label="target 50k/s")
    ax.set_ylabel("findings/s")
    ax.set_title(f"Ingest: {m['findings']:,} findings, job/baseline = {m['ratio']:.2f}x")
    ax.legend(fontsize=8)


def _citus(ax: Any, r: Result) -> None:
    m = r.metrics
    single, cluster = "single node", "citus"
    lists, imports = m["lists"], m["imports"]
    x = range(2)
    ax.bar([i - 0.2 for i in x], [1.0, 1.0], 0.4, label=single, color="#9aa5b1")
    ax.bar([i + 0.2 for i in x], [m["list_ratio"], m["import_ratio"]], 0.4, label=cluster)
    ax.set_xticks(
        list(x),
        [
            f"list\n{lists[cluster]['rps']:.0f} vs {lists[single]['rps']:.0f} req/s",
            f"import\n{imports[cluster]:.0f} vs {imports[single]:.0f} findings/s",
        ],
    )
    ax.set_ylabel("relative to single node")
    ax.set_title("Scale-out: 3-node Citus cluster on the same machine")
    ax.legend(fontsize=8)


def _login_spam(ax: Any, r: Result) -> None:
    m = r.metrics
    x = range(2)
    ax.bar([i - 0.2 for i in x], [m["p50_rest_ms"], m["p50_spam_ms"]], 0.4, label="p50")
    ax.bar([i + 0.2 for i in x], [m["p95_rest_ms"], m["p95_spam_ms"]], 0.4, label="p95")
    ax.set_xticks(list(x), ["at rest", f"{m['logins_hashed_per_s']:.1f} logins hashed/s"])
    ax.set_ylabel("ms")
    ax.set_title(f"Tenant latency under login spam: p50 {m['p50_ratio']:.2f}x")
    ax.legend(fontsize=8)


# The chart's panels, row by row: the scenario each draws, and how.
PANELS: tuple[tuple[str, Callable[[Any, Result], None]], ...] = (
    ("throughput", _throughput),
    ("throughput", _latency),
    ("rls", _rls),
    ("concurrency", _concurrency),
    ("scale", _scale),
    ("ingest", _ingest),
    ("login_spam", _login_spam),
    ("citus", _citus),
)


def chart(results: list[Result], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_key = {r.key: r for r in results if not r.skipped}
    asked = {r.key for r in results}  # a scenario left out with --only gets no panel
    panels = [(key, draw) for key, draw in PANELS if key in asked]
    rows = max(1, (len(panels) + 1) // 2)
    fig, axes = plt.subplots(rows, 2, figsize=(11, 4 * rows), squeeze=False)
    for ax in list(axes.flat)[len(panels) :]:
        ax.axis("off")
    for ax, (key, draw) in zip(axes.flat, panels, strict=False):
        result = by_key.get(key)
        if result is not None and (result.metrics or result.rows):
            draw(ax, result)
        else:
            ax.text(0.5, 0.5, f"{key} not run", ha="center")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write(
    directory: Path,
    results: list[Result],
    machine: dict[str, Any],
    options: dict[str, Any],
    comparison: list[dict[str, str]] | None = None,
) -> list[Path]:
    directory.mkdir(parents=True, exist_ok=True)
    machine["load_end"] = [round(x, 2) for x in os.getloadavg()]
    md, js, png = directory / MD, directory / JSON, directory / PNG
    md.write_text(markdown(results, machine, options, comparison))
    js.write_text(
        json.dumps(
            {"machine": machine, "options": options, "results": [asdict(r) for r in results]},
            indent=2,
            default=str,
        )
    )
    chart(results, png)
    return [md, js, png]
