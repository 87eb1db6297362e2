"""The report's "What was run" section, from RUN_DIR/units.jsonl: each model the run measured, what it was
made from, whom it was trained to forget and retain, with which method parameters and seeds."""

from __future__ import annotations

from tabulate import tabulate


def _people(ids: list[str]) -> str:
    return f"{len(ids)}: {', '.join(ids)}" if len(ids) <= 6 else f"{len(ids)}: {', '.join(ids[:5])}, ..."


def _made(unit: dict) -> str:
    return f"made, {unit['wall_s']:.0f} s" if unit.get("made") and "wall_s" in unit else (
        "made" if unit.get("made") else "found in the unit store")


def render_what_was_run(units: list[dict]) -> str:
    """Markdown: the base and fine-tuned models, then every unlearning request in the order it was run."""
    if not units:
        return "## What was run\n\nNo units.jsonl in this run directory (a run of an older kit).\n"
    models = [u for u in units if u["kind"] in ("base", "finetuned")]
    requests = [u for u in units if u["kind"] == "request"]
    predictions = [u for u in units if u["kind"] == "predictions"]
    rows = [[u["kind"], u["key"][:12], str(u.get("start", ""))[:24], _people(u.get("people", [])),
             u.get("seed", ""), u.get("torch_seed", ""), u.get("steps", ""), _made(u)] for u in models]
    rows += [[f"request: {u['method']} {u['target']}", u["key"][:12], u["start"][:12],
              f"forget {_people(u['forget'])}; retain {_people(u['retain'])}"
              + ("" if u.get("retain_used", True) else " (not read by the method)"),
              u.get("seed", ""), u.get("torch_seed", ""), u.get("steps", ""), _made(u)] for u in requests]
    made = sum(bool(u.get("made")) for u in predictions)
    table = tabulate(rows, ["unit", "key", "started from", "people", "seed", "torch seed", "steps", ""],
                     tablefmt="github", disable_numparse=True)
    params = sorted({(u["method"], tuple(sorted(u.get("params", {}).items())), u.get("reference"))
                     for u in requests})
    lines = [f"- {method}: " + (", ".join(f"{k} = {v}" for k, v in p) or "no parameters")
             + (f"; reference: {ref}" if ref else "") for method, p, ref in params]
    return ("## What was run\n\nFrom units.jsonl: every model this run measured and what it was made from "
            "(keys shortened; a results record's `model` is the full key).\n\n" + table + "\n\n"
            + ("Method parameters:\n\n" + "\n".join(lines) + "\n\n" if lines else "")
            + f"Predictions: {len(predictions)} sets ({made} made by this run, {len(predictions) - made} "
              "found in the unit store).\n")
