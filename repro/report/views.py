"""The paper's views of a results file: Figure 3's normalised scores, Figure 4's curves, Table B."""

from __future__ import annotations

from collections.abc import Iterable

METHOD_NAMES = {"ga": "GA", "ga_klr": "GA+KLR", "npo": "NPO"}
TARGET_NAMES = {"proj+llm": "Proj, LLM", "llm": "LLM"}


def lookup(records: Iterable[dict], **match) -> float | None:
    """The accuracy of the one record matching every field given, or None."""
    for r in records:
        if all(r.get(k) == v for k, v in match.items()):
            return r["accuracy"]
    return None


def methods_in(records: list[dict], experiment: str) -> list[str]:
    found = {r["method"] for r in records if r["experiment"] == experiment}
    return [m for m in METHOD_NAMES if m in found] + sorted(found - set(METHOD_NAMES))


def figure3(records: list[dict]) -> dict[str, dict[str, dict[str, float | None]]]:
    """{source: {method: {"forgotten_unlearn", "retained_retain", "retained_mmbench"}}}, in percent:
    forgotten = 100 (1 - after/before) on D_unlearn; retained = 100 after/before (docs/design.md, "The protocol")."""
    out: dict[str, dict[str, dict[str, float | None]]] = {}
    for experiment in ("finetuned", "pretrained"):
        per_method = {}
        for method in methods_in(records, experiment):
            row = {}
            for split, name in (("unlearn", "forgotten_unlearn"), ("retain", "retained_retain"),
                                ("mmbench", "retained_mmbench")):
                common = {"experiment": experiment, "method": method, "target": "proj+llm", "split": split,
                          "modality": "all"}
                before, after = lookup(records, step=0, **common), lookup(records, step=1, **common)
                if before is None or after is None or before == 0:
                    row[name] = None
                else:
                    ratio = 100.0 * after / before
                    row[name] = 100.0 - ratio if split == "unlearn" else ratio
            per_method[method] = row
        if per_method:
            out[experiment] = per_method
    return out


def figure4(records: list[dict]) -> dict[str, dict[str, list[float | None]]]:
    """{split: {method: [accuracy after 0..5 requests]}} for the sustainability experiment."""
    steps = sorted({r["step"] for r in records if r["experiment"] == "sustainability"})
    out: dict[str, dict[str, list[float | None]]] = {}
    for split in ("unlearn", "retain", "mmbench"):
        out[split] = {m: [lookup(records, experiment="sustainability", method=m, target="proj+llm", step=s,
                                 split=split, modality="all") for s in steps]
                      for m in methods_in(records, "sustainability")}
    return out


TABLE_B_COLUMNS = (("unlearn", "multimodal"), ("unlearn", "text"), ("retain", "multimodal"),
                   ("retain", "text"), ("mmbench", "all"))


def table_b(records: list[dict]) -> list[tuple[str, list[float | None]]]:
    """Rows (label, [D_unlearn multi, text, D_retain multi, text, MMBench]): before, GA proj+llm, GA llm."""
    rows = []
    before = [lookup(records, experiment="modality", method="ga", step=0, split=s, modality=m)
              for s, m in TABLE_B_COLUMNS]
    rows.append(("before unlearning", before))
    for target in ("proj+llm", "llm"):
        rows.append((f"GA, {TARGET_NAMES[target]}",
                     [lookup(records, experiment="modality", method="ga", target=target, step=1, split=s,
                             modality=m) for s, m in TABLE_B_COLUMNS]))
    return rows
