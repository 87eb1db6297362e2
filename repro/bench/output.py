"""The bench's result as one JSON object, or as tables."""

from __future__ import annotations

import json

from tabulate import tabulate

MB = 1024 * 1024


def _f(x, digits: int = 2):
    return "-" if x is None else f"{x:.{digits}f}"


def to_json(result: dict) -> str:
    return json.dumps(result, indent=2, sort_keys=True)


def to_tables(result: dict) -> str:
    r = result
    mfu = r.get("mfu") or {}
    train_mfu = mfu.get("train", {})
    out = [f"pulse-repro bench: profile {r['profile']}"
           + (f", shape {r['shape']}" if r["shape"] else "") + f", device {r['device']}", ""]
    out.append(tabulate(
        [["letter, batched first token (kit)", _f(r["eval_qps"]), _f(mfu.get("eval"), 4)],
         ["letter, generate at batch size 1 (baseline)", _f(r["eval_qps_baseline"]), "-"],
         [f"{r['eval_profile_scoring']} (profile's scoring)", _f(r["eval_qps_profile_scoring"]), "-"]],
        headers=[f"evaluation, {r['items']} questions", "questions/s", "MFU"]))
    out.append(f"speedup {_f(r['eval_speedup'])}x, agreement {_f(r['agreement'], 4)} "
               f"(answers starting with A-D: {_f(r['eval_answered'], 3)})")
    out.append(f"attention: {r['attention']}; padding: {_f(100 * r['eval_padding_share'], 1)}% of the scorer's input "
               f"positions in its batches (grouped by images shown and length), "
               f"{_f(100 * r['eval_padding_share_in_question_order'], 1)}% in question order")
    c = r["eval_ceiling"]
    out.append(f"ceiling on this device: {_f(c['qps_ceiling'])} questions/s, speedup {_f(r['eval_speedup_ceiling'])}x "
               f"(decoder matrix products alone, at the {c['matmul_flops_per_s'] / 1e9:.1f} GFLOP/s they reach "
               f"here; they are {_f(100 * c['kit_matmul_share'], 1)}% of the kit's time)\n")
    padding = r.get("train_padding_share", {})
    out.append(tabulate(
        [[s, _f(v), _f(r["train_tokens_per_s"][s], 1), _f(train_mfu.get(s), 4),
          _f(100 * padding[s] if padding.get(s) is not None else None, 1)]
         for s, v in r["train_samples_per_s"].items()],
        headers=[f"training, {r['steps']} steps", "samples/s", "tokens/s", "MFU", "padding %"]))
    out.append("")
    ga = r["peak_mem_bytes"].get("ga")
    out.append(tabulate(
        [[m, _f(v and v / MB, 1), _f(v / ga if v and ga else None, 3)] for m, v in r["peak_mem_bytes"].items()],
        headers=["method", "peak MiB", "vs GA"]))
    if r.get("train_out_of_memory"):
        out.append(f"out of memory (not measured): {', '.join(r['train_out_of_memory'])}")
    out.append(f"ref_mem_overhead (GA+KLR / GA) {_f(r['ref_mem_overhead'], 3)}, "
               f"deep-copied reference (GA+KLR deepcopy / GA) {_f(r['deepcopy_mem_overhead'], 3)}, "
               f"deep copy / kit's GA+KLR {_f(r['deepcopy_vs_kit_mem'], 3)}\n")
    grid = r.get("paper_grid_projection")
    if grid:
        out.append(tabulate(list(grid["seconds_by_stage"].items()) + [["total (hours)", grid["hours"]],
                                                                     ["three seeds (hours)", grid["hours_three_seeds"]]],
                            headers=["paper grid, projected", "seconds"]))
        out.append("")
    other = r.get("other_checkpointing")
    if other:
        on = "on" if other["gradient_checkpointing"] else "off"
        peaks, mfu_other = other["peak_mem_bytes"] or {}, other["mfu"] or {}
        out.append(tabulate(
            [[s, _f(v), _f(other["train_tokens_per_s"][s], 1), _f(mfu_other.get(s), 4),
              _f(peaks[s] / MB if peaks.get(s) else None, 1)] for s, v in other["train_samples_per_s"].items()],
            headers=[f"training, checkpointing {on}", "samples/s", "tokens/s", "MFU", "peak MiB"]))
        grid_other = other.get("paper_grid_projection")
        if grid_other:
            out.append(f"paper grid with checkpointing {on}: {grid_other['hours']} hours, three seeds "
                       f"{grid_other['hours_three_seeds']} hours")
        out.append("")
    traces = r.get("trace")
    if traces:
        for stage, t in traces.items():
            if t is None:
                out.append(f"trace {stage}: stage ended before its traced batches")
                continue
            busy = ("" if t["device_busy_share"] is None
                    else f", GPU busy {_f(100 * t['device_busy_share'], 1)}% of it")
            out.append(f"trace {stage}: {t['batches']} batches in {_f(t['wall_s'], 3)} s{busy}; {t['trace']}")
            out.append(tabulate(t["top_ops_ms"], headers=["operator", "self ms"]))
        out.append("")
    if r["stage_seconds"] is not None:
        out.append(tabulate(list(r["stage_seconds"].items()), headers=["stage of `all`", "seconds"]))
        out.append("")
    out.append("notes:")
    out.extend(f"  {k}: {v}" for k, v in r["method_notes"].items())
    return "\n".join(out)
