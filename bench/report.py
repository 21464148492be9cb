"""The figures (measured, baseline, ratio, target, met?) and their markdown."""

from __future__ import annotations

from typing import Any


def _fig(name: str, value: Any, unit: str, baseline: Any, ratio: Any, target: str, met: bool | None,
         note: str = "") -> dict[str, Any]:
    return {"figure": name, "value": value, "unit": unit, "baseline": baseline, "ratio": ratio,
            "target": target, "met": met, "note": note}


def figures(r: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    if "latency" in r:
        lat = r["latency"]
        out.append(_fig("warm in-process action latency, p50 (1-file alert, store write included)",
                        lat["action"]["p50_ms"], "ms", f"{lat['baseline']['p50_ms']} ms same GET, same session",
                        lat["overhead_ratio_p50"], "ratio <= 1.15", lat["overhead_ratio_p50"] <= 1.15))
        out.append(_fig("warm in-process action latency, p99", lat["action"]["p99_ms"], "ms",
                        f"{lat['baseline']['p99_ms']} ms same GET, same session", lat["overhead_ratio_p99"],
                        "ratio <= 1.5", lat["overhead_ratio_p99"] <= 1.5))
    if "cli" in r:
        cli = r["cli"]
        out.append(_fig("one CLI run end to end, cached token, p50 (editable install, root)", cli["cli"]["p50_ms"],
                        "ms", f"{cli['baseline_script']['p50_ms']} ms same-work script, same trust",
                        cli["ratio_p50"], "ratio <= 1.3", cli["ratio_p50"] <= 1.3,
                        f"median of round ratios {cli['pair_ratio_median']}; "
                        f"sign-in requests per run: {cli['sign_in_requests_per_cli_run']}"))
        get_only = cli["baseline_script_get_only"]["p50_ms"]
        out.append(_fig("one CLI run, p50, against a script that only GETs and prints (same trust)",
                        cli["cli"]["p50_ms"], "ms", f"{get_only} ms GET-only script",
                        cli["ratio_p50_vs_get_only"], "(reported)", None))
    if "install" in r and "skipped" not in r["install"]:
        ins = r["install"]
        for kind, label in (("writable", "installed wheel, run by its owner (root)"),
                            ("read_only", "installed wheel, read-only to the user running it (nobody)")):
            k = ins[kind]
            out.append(_fig(f"one CLI run, p50, {label}", k["cli"]["p50_ms"], "ms",
                            f"{k['baseline_script']['p50_ms']} ms same-work script, same user and interpreter",
                            k["ratio_p50"], "ratio <= 1.3", k["ratio_p50"] <= 1.3,
                            f"median of round ratios {k['pair_ratio_median']}"))
        written = ins["files_written_into_the_package"]
        out.append(_fig("files written inside the installed package by those runs", len(written), "files", None,
                        None, "0", not written, ", ".join(written[:5])))
    if "budget" in r:
        bud = r["budget"]
        for name, v in bud["variants"].items():
            acq = v["acquire"]["p50_us"]
            out.append(_fig(f"rate budget at production occupancy ({bud['slots_in_hour_window']} slots in the "
                            f"hour): {name.replace('_', ' ')}, acquire p50", acq, "us", None, None,
                            "<= 30 us" + (" (kept)" if name == bud["winner"] else ""),
                            acq <= 30 if name == bud["winner"] else None,
                            f"settle p50 {v['settle']['p50_us']} us; acquire p99 {v['acquire']['p99_us']} us"))
    if "syncs" in r and "skipped" not in r["syncs"]:
        sy = r["syncs"]
        out.append(_fig(f"disk syncs of one warm CLI run (strace, Python {sy['python']})",
                        sy["syncs_per_run_p50"], "fsync/fdatasync", None, None, "(counted)", None,
                        ", ".join(sy["last_run"]["synced_files"])))
        out.append(_fig(f"WAL file created and deleted by every CLI run (Python {sy['python']})",
                        "yes" if sy["wal_deleted_per_run"] else "no", "", None, None, "no",
                        not sy["wal_deleted_per_run"],
                        "deleted: " + (", ".join(sy["last_run"]["deleted_in_state_dir"]) or "nothing")))
    if "imports" in r:
        imp = r["imports"]
        out.append(_fig("import time of connector.cli.main (-X importtime)", imp["import_connector_cli_ms"], "ms",
                        None, None, "(reported)", None))
        out.append(_fig("import time of everything one run imports (-X importtime)",
                        imp["imports_of_one_run_ms"], "ms", f"{imp['import_requests_alone_ms']} ms requests alone",
                        round(imp["imports_of_one_run_ms"] / imp["import_requests_alone_ms"], 3)
                        if imp["import_requests_alone_ms"] else None, "(reported)", None))
    if "tokens" in r:
        tok = r["tokens"]
        out.append(_fig(f"token requests for {tok['runs']} sequential CLI runs", tok["token_requests"], "requests",
                        f"{tok['naive_token_requests']} (one per run, naive)",
                        round(tok["token_requests"] / tok["naive_token_requests"], 3), "exactly 1",
                        tok["token_requests"] == 1, f"other sign-in requests: {tok['other_sign_in_requests']}"))
    if "large" in r:
        lg = r["large"]
        out.append(_fig("10,000-file alert: mapping alone", lg["mapping_files_per_s"], "files/s", None, None,
                        ">= 50,000 files/s", lg["mapping_files_per_s"] >= 50_000,
                        f"p50 {lg['mapping']['p50_ms']} ms"))
        whole = lg["action_first_run"]["p50_ms"]
        out.append(_fig("10,000-file alert: whole action (first run, fresh store), p50", whole, "ms", None, None,
                        "< 2,000 ms", whole < 2000,
                        f"max {lg['action_first_run']['max_ms']} ms; re-run unchanged p50 "
                        f"{lg['action_rerun_unchanged']['p50_ms']} ms"))
        growth = lg["rss"]["rss_growth_mb"]
        out.append(_fig("10,000-file alert: peak RSS growth of one action", growth, "MB", None, None, "< 100 MB",
                        growth < 100, f"peak {lg['rss']['rss_peak_mb']} MB"))
    if "drain" in r:
        dr = r["drain"]
        ok = dr["ratio_to_limit"] >= 0.95 and dr["responses_429"] == 0
        out.append(_fig(f"backlog drain of {dr['alerts']} alerts (time scale {dr['time_scale']:g})",
                        dr["achieved_calls_per_s"], "calls/s", f"{dr['limit_calls_per_s']} calls/s limit",
                        dr["ratio_to_limit"], ">= 0.95 of the limit, zero 429", ok,
                        f"429s: {dr['responses_429']}; wall {dr['wall_s']} s"))
    if "shared" in r:
        sh = r["shared"]
        ok = 0.9 <= sh["ratio_to_limit"] <= 1.0 and sh["responses_429"] == 0
        out.append(_fig(f"{sh['processes']} processes sharing the budget: sum of rates",
                        sh["sum_calls_per_s"], "calls/s", f"{sh['limit_calls_per_s']} calls/s limit",
                        sh["ratio_to_limit"], "0.9 <= ratio <= 1, zero 429", ok,
                        f"429s: {sh['responses_429']}; per process "
                        + ", ".join(str(p["calls_per_s"]) for p in sh["per_process"])))
    return out


def _cell(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "yes" if value else "**no**"
    if isinstance(value, float):
        return f"{value:,.3f}".rstrip("0").rstrip(".") if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value).replace("|", "\\|")


def markdown(doc: dict[str, Any]) -> str:
    m = doc["machine"]
    lines = [
        "# mde-connector benchmark results",
        "",
        f"`{doc['command']}` — {doc['started_at']}, {doc['duration_s']} s; "
        f"{m.get('cpu_count')} CPUs ({m.get('cpu_model', m.get('machine'))}), Python {m.get('python')}, "
        f"requests {m.get('requests')}, msal {m.get('msal')}, SQLite {m.get('sqlite')}; "
        f"git {doc['git']['head']}{' + local changes' if doc['git']['connector_modified'] else ''}.",
        "",
        "Every ratio is against a baseline measured in the same run on the same machine "
        "(see [NOTES.md](NOTES.md) for how each figure is measured and what moved it). "
        f"Load average when the run started: {', '.join(str(x) for x in m.get('loadavg_at_start', []))} "
        f"on {m.get('cpu_count')} CPUs: read the absolute times with that in mind, the ratios less so.",
        "",
        "| figure | measured | baseline (same run) | ratio | target | met |",
        "|---|---|---|---|---|---|",
    ]
    for f in doc["figures"]:
        value = f"{_cell(f['value'])} {f['unit']}"
        if f["note"]:
            value += f" ({f['note']})"
        lines.append(f"| {f['figure']} | {value} | {_cell(f['baseline'])} | {_cell(f['ratio'])} | "
                     f"{f['target']} | {_cell(f['met'])} |")
    for name, error in (doc.get("errors") or {}).items():
        lines.append(f"| {name}: FAILED ({_cell(error)}) | - | - | - | - | **no** |")
    r = doc["results"]
    if "latency" in r:
        lat = r["latency"]
        lines += ["", "## Latency detail (ms)", "",
                  "| | p50 | p90 | p99 | min | max | n |", "|---|---|---|---|---|---|---|"]
        for label, s in (("same GET, same session", lat["baseline"]), ("run_action", lat["action"])):
            lines.append(f"| {label} | {s['p50_ms']} | {s['p90_ms']} | {s['p99_ms']} | {s['min_ms']} | "
                         f"{s['max_ms']} | {s['n']} |")
    if "cli" in r:
        cli = r["cli"]
        lines += ["", "## CLI detail (ms, wall clock of the whole process)", "",
                  "| | p50 | p90 | p99 | min | max | n |", "|---|---|---|---|---|---|---|"]
        for label, s in (("same-work script (GET, SQLite, print; public CAs + simulator CA)",
                          cli["baseline_script"]),
                         ("GET-only script (same trust)", cli["baseline_script_get_only"]),
                         ("mde-connector run", cli["cli"])):
            lines.append(f"| {label} | {s['p50_ms']} | {s['p90_ms']} | {s['p99_ms']} | {s['min_ms']} | "
                         f"{s['max_ms']} | {s['n']} |")
    if "imports" in r:
        imp = r["imports"]
        lines += ["", "## Heaviest imports of one CLI run (ms, -X importtime, median)", "",
                  "| module | ms |", "|---|---|"]
        lines += [f"| {k} | {v} |" for k, v in imp["heaviest_in_a_run_ms"].items()]
    if "large" in r:
        lg = r["large"]
        lines += ["", "## 10,000-file alert: where the whole action goes (ms, p50)", "",
                  "| piece | p50 | max |", "|---|---|---|"]
        for label, s in lg["pieces"].items():
            lines.append(f"| {label.replace('_', ' ')} | {s['p50_ms']} | {s['max_ms']} |")
    lines.append("")
    return "\n".join(lines)
