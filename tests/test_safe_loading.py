"""Safe loading: weights as safetensors only, no pickle anywhere the kit reads or writes.

The source scan (repro/, docker/, noxfile.py) fails on: `trust_remote_code` set to anything, `torch.load(`
without `weights_only=True`, an import of pickle (or its wrappers), and pickled weights written
(`torch.save(`, `safe_serialization=False`). A MICRO run directory and its cache must hold no pickle
artefact (.bin .pt .pkl .pth .ckpt, or a file that starts like a pickle or a torch zip).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from small_model import MICRO

from repro.choices import load_profile
from repro.experiments.runner import run_protocol
from repro.experiments.store import cache_dir

ROOT = Path(__file__).resolve().parents[1]
PICKLE_MODULES = {"pickle", "cPickle", "_pickle", "dill", "cloudpickle", "joblib", "shelve"}
PICKLE_SUFFIXES = {".bin", ".pt", ".pkl", ".pth", ".ckpt", ".pickle"}
TEXT_RULES = [  # for files that are not Python (Dockerfiles, shell, requirements)
    (re.compile(r"trust[_-]remote[_-]code['\"]?\s*[=:]|--trust-remote-code"), "trust_remote_code is set"),
    (re.compile(r"torch\.load\((?![^)]*weights_only\s*=\s*True)"), "torch.load without weights_only=True"),
    (re.compile(r"torch\.save\("), "torch.save writes pickled weights"),
    (re.compile(r"safe_serialization\s*=\s*False"), "safe_serialization=False writes pickled weights"),
    (re.compile(r"^\s*(import|from)\s+(c?pickle|dill|cloudpickle|joblib)\b", re.MULTILINE), "pickle imported"),
]


def _dotted(node: ast.AST) -> str:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return f"{_dotted(node.value)}.{node.attr}"
    return ""


def scan_python(source: str, name: str = "<src>") -> list[str]:
    problems = []
    for node in ast.walk(ast.parse(source)):
        where = f"{name}:{getattr(node, 'lineno', '?')}"
        if isinstance(node, ast.Import):
            problems += [f"{where}: imports {a.name}" for a in node.names if a.name.split(".")[0] in PICKLE_MODULES]
        elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in PICKLE_MODULES:
            problems.append(f"{where}: imports from {node.module}")
        elif isinstance(node, ast.Call):
            func = _dotted(node.func)
            kwargs = {k.arg: k.value for k in node.keywords}
            if "trust_remote_code" in kwargs:
                problems.append(f"{where}: trust_remote_code= passed to {func}")
            if func.endswith("torch.load"):
                wo = kwargs.get("weights_only")
                if not (isinstance(wo, ast.Constant) and wo.value is True):
                    problems.append(f"{where}: torch.load without weights_only=True")
            if func.endswith("torch.save"):
                problems.append(f"{where}: torch.save writes pickled weights")
            sf = kwargs.get("safe_serialization")
            if sf is not None and not (isinstance(sf, ast.Constant) and sf.value is True):
                problems.append(f"{where}: safe_serialization not True")
        elif isinstance(node, ast.Dict):
            if any(isinstance(k, ast.Constant) and k.value == "trust_remote_code" for k in node.keys):
                problems.append(f"{where}: trust_remote_code set in a dict")
        elif isinstance(node, (ast.Assign, ast.AnnAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            if any(_dotted(t).endswith("trust_remote_code") for t in targets):
                problems.append(f"{where}: trust_remote_code assigned")
    return problems


def scan_text(text: str, name: str = "<text>") -> list[str]:
    return [f"{name}: {why}" for rule, why in TEXT_RULES if rule.search(text)]


def source_files() -> list[Path]:
    files = [p for p in (ROOT / "repro").rglob("*") if p.is_file() and p.suffix in (".py", ".toml")]
    files += [p for p in (ROOT / "docker").rglob("*") if p.is_file()]
    files += [ROOT / "noxfile.py"] + sorted(ROOT.glob("Dockerfile*"))
    return [p for p in files if p.exists() and "__pycache__" not in p.parts]


@pytest.mark.parametrize(("bad", "kind"), [
    ("from transformers import AutoModel\nAutoModel.from_pretrained('x', trust_remote_code=True)\n", "trust_remote_code"),
    ("kw = {'trust_remote_code': False}\n", "trust_remote_code"),
    ("import torch\nstate = torch.load('w.pt')\n", "torch.load"),
    ("import torch\nstate = torch.load('w.pt', weights_only=False)\n", "torch.load"),
    ("import pickle\n", "imports pickle"),
    ("from pickle import loads\n", "imports from pickle"),
    ("import joblib\n", "imports joblib"),
    ("import torch\ntorch.save({}, 'w.pt')\n", "torch.save"),
    ("model.save_pretrained('out', safe_serialization=False)\n", "safe_serialization"),
])
def test_the_scanner_catches_each_unsafe_pattern(bad, kind):
    problems = scan_python(bad)
    assert any(kind in p for p in problems), problems
    assert scan_text(bad), "the plain-text rules catch it too"


def test_the_scanner_allows_the_safe_forms():
    ok = ("import torch\nfrom safetensors.torch import load_file\nstate = torch.load('w', weights_only=True)\n"
          "# trust_remote_code is never passed\nmodel.save_pretrained('out')\n")
    assert scan_python(ok) == []


def test_the_source_never_loads_or_writes_pickle_nor_runs_remote_code():
    files = source_files()
    assert any(p.name == "factory.py" for p in files) and any(p.parent.name == "docker" for p in files)
    problems = []
    for path in files:
        rel = str(path.relative_to(ROOT))
        text = path.read_text(errors="replace")
        if path.suffix == ".py":
            problems += scan_python(text, rel)  # comments and docstrings may name the flag; code may not
        else:
            problems += scan_text(text, rel)
    assert problems == [], "\n".join(problems)


def _pickle_artefacts(root: Path) -> list[str]:
    bad = []
    for path in root.rglob("*"):
        if not path.is_file():
            continue
        head = path.read_bytes()[:4]
        pickled = len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5
        if path.suffix in PICKLE_SUFFIXES or pickled or head == b"PK\x03\x04":
            bad.append(str(path))
    return bad


@pytest.mark.slow
def test_a_micro_run_writes_no_pickle_artefact(tmp_path):
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a shared, small machine: one thread is faster than two fighting
    try:
        run_dir = tmp_path / "run"
        run_protocol(load_profile("tiny", MICRO), run_dir, run_dir / "units")
    finally:
        torch.set_num_threads(threads)
    assert list(run_dir.rglob("*.safetensors")), "the fine-tuned model is kept as safetensors"
    assert list(cache_dir().rglob("*.safetensors")), "the base model is cached as safetensors"
    assert _pickle_artefacts(run_dir) == []
    assert _pickle_artefacts(cache_dir()) == []
    (run_dir / "units" / "x.pt").write_bytes(b"\x80\x04K\x01.")
    assert _pickle_artefacts(run_dir), "the artefact check can fail"
