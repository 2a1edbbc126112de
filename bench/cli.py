"""``python -m bench``: argument parsing only; every command calls into the modules.

Exit codes (DESIGN.md): 0 ok, 2 bad input with a one-line reason, 3 a gate exceeded, 4 a gate inconclusive.
``--json`` output goes to stdout alone; progress and logs go to stderr.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path

from bench import __version__
from bench.data.calibration import CALIBRATIONS
from bench.data.preprocess import MASK_CONVENTIONS
from bench.errors import BadInput, BenchError, Interrupted
from bench.paths import cache_dir, results_dir
from bench.progress import close_bars


def _categories(value: str) -> list[str]:
    names = [v.strip() for v in value.split(",") if v.strip()]
    if not names:
        raise argparse.ArgumentTypeError("expected a comma-separated list of categories")
    return names


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise argparse.ArgumentTypeError("must be at least 1")
    return number


CALIBRATION_HELP = ("INT8 representative set (IMX500): train-synthetic (default: normal training images and "
                    "synthetic anomalies made from them), train-normal, or paper-test (the TinyGLASS paper's 10 test "
                    "images and TPC v1; leaks the test set)")


def _emit(rows: list[dict], as_json: bool, line: Callable[[dict], str]) -> int:
    """Rows as JSON on stdout alone, or one formatted line each."""
    print(json.dumps(rows, indent=2) if as_json else "\n".join(line(row) for row in rows))
    return 0


def _model_arg(spec: str) -> str:
    """A card name as given; a model file or folder as an absolute path, so ``--resume`` finds it from anywhere."""
    from bench.models.cards import is_model_path

    path = Path(spec).expanduser()
    return str(path.resolve()) if is_model_path(spec) and path.exists() else spec


def cmd_run(args: argparse.Namespace) -> int:
    from bench.run.benchmark import execute
    from bench.run.request import RunRequest

    request = None
    if args.resume is None:
        if args.data_root is None:
            raise BadInput("--data-root is required (or try 'python -m bench demo' for generated data)")
        request = RunRequest(
            device=args.device, model=_model_arg(args.model), dataset=args.dataset, data_root=args.data_root,
            checkpoint=args.checkpoint, categories=args.categories,
            limit=args.limit, backbone_weights=args.backbone_weights, skip_bad=args.skip_bad,
            tensor_cache=args.tensor_cache, emulate=args.emulate, mask_convention=args.mask_convention,
            calibration=args.calibration, note=args.note,
        )
    measurement = {"warmup": args.warmup, "min_count": args.min_count, "min_duration_s": args.min_duration}
    run_dir = execute(request, out=args.out, resume=args.resume, measurement=measurement)
    print(f"run record: {run_dir}")
    return 0


def cmd_compile(args: argparse.Namespace) -> int:
    from bench.run.plan import compile_models
    from bench.run.request import RunRequest

    if args.data_root is None:
        raise BadInput("--data-root is required: the export's parity check and INT8 calibration read its images")
    request = RunRequest(device=args.device, model=_model_arg(args.model), dataset=args.dataset,
                         data_root=args.data_root, checkpoint=args.checkpoint,
                         categories=args.categories, backbone_weights=args.backbone_weights, emulate=args.emulate,
                         calibration=args.calibration)
    rows = compile_models(request)
    return _emit(rows, args.json, lambda r: f"{r['category']}: {r['artifact']} "
                 f"({'cached' if r['cached'] else 'built'}, sha256 {r['sha256'][:12]})")


def cmd_report(args: argparse.Namespace) -> int:
    from bench.comparison import resolve_run
    from bench.reports.html import write_report

    references = [resolve_run(name) for name in args.reference]
    out = write_report(args.results or [results_dir()], args.out, args.max_drift, references)
    print(f"report: {out}")
    return 0


def cmd_nightly(args: argparse.Namespace) -> int:
    from bench.comparison import resolve_run
    from bench.nightly import run_nightly

    return run_nightly(args.results, args.max_drift, args.no_pixel, [resolve_run(name) for name in args.reference])


REFERENCE_HELP = ("pin this run (folder or run id) as the reference of its model, dataset, categories and "
                  "checkpoints, instead of the newest run of a 'role: reference' profile; repeatable")


def _compare_gate(value: str) -> float | str:
    """``--max-drift`` of compare: points, or ``card`` for the model card's gate of the device."""
    if value == "card":
        return value
    try:
        return float(value)
    except ValueError:
        raise argparse.ArgumentTypeError("expected a number of points or 'card'") from None


def cmd_compare(args: argparse.Namespace) -> int:
    from bench.comparison import (
        compare,
        format_table,
        gate,
        gate_line,
        judge,
        masks_for,
        resolve_gate,
        resolve_run,
    )
    from bench.records import load_run
    from bench.records.reader import read_manifest

    ref, dev = resolve_run(args.ref_run), resolve_run(args.dev_run)
    masks = None if args.no_pixel else masks_for(load_run(ref))
    result = compare(ref, dev, masks)
    limit = None if args.max_drift is None else resolve_gate(
        read_manifest(dev), None if args.max_drift == "card" else args.max_drift)
    result["gate"] = judge(result, limit).to_json() if limit else None
    print(json.dumps(result, indent=2) if args.json else format_table(result))
    if limit is not None and not args.json:
        print(gate_line(result, limit))
    gate(result, limit)
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from bench.listing import listing

    def line(row: dict) -> str:
        family = f"{row['kind']:<9} {row['role']:<10} " if "kind" in row else ""
        return f"{row['name']:<12} {family}{row['description']}"

    return _emit(listing(args.what), args.json, line)


def cmd_doctor(args: argparse.Namespace) -> int:
    from bench.doctor import diagnose

    def line(row: dict) -> str:
        return f"{'ok ' if row['ok'] else 'NO '} {row['check']:<22} {row['reason']}"

    return _emit(diagnose(), args.json, line)


def cmd_inspect(args: argparse.Namespace) -> int:
    if args.what == "model":
        from bench.models.cards import is_model_path, load_model
        from bench.models.inspection import format_model_report, inspect_graph, inspect_model

        if not args.name:
            raise BadInput("inspect model needs a model: a name (bench list models), a card file or an ONNX")
        exported = is_model_path(args.name) and Path(args.name).exists() and not args.name.endswith((".yaml", ".yml"))
        if args.card:
            from bench.models.exported import starting_card

            if not exported:
                raise BadInput(f"--card writes a starting card for an exported model: {args.name} is not an ONNX "
                               "file or folder")
            print(starting_card(Path(args.name)), end="")
            return 0
        model_report = inspect_graph(Path(args.name)) if exported else inspect_model(load_model(args.name))
        print(json.dumps(model_report, indent=2) if args.json else format_model_report(model_report))
        return 0
    from bench.data.datasets import open_dataset
    from bench.data.inspection import format_report, inspect_dataset

    if args.data_root is None:
        raise BadInput("inspect dataset needs --data-root")
    report = inspect_dataset(open_dataset(args.dataset, args.data_root), args.categories)
    print(json.dumps(report, indent=2) if args.json else format_report(report))
    return BadInput.exit_code if report["problems"] else 0  # a CI step that checks a dataset must see them


def cmd_fit(args: argparse.Namespace) -> int:
    from bench.data.datasets import open_dataset
    from bench.fitting import fit_categories, fit_zero_shot
    from bench.models.cards import load_model
    from bench.records import ensure_writable

    card = load_model(args.model)
    if card.exported:
        raise BadInput(f"{args.model} is an exported model: it is fitted already, run it with bench run --model")
    out = args.out or cache_dir() / "checkpoints" / card.name
    ensure_writable(out)
    dataset = open_dataset(args.dataset, args.data_root)
    categories = dataset.select(args.categories)
    if not card.per_category:
        if not args.heldout:
            raise BadInput(f"{card.name} is zero-shot: name unseen evaluation categories with --heldout")
        heldout = dataset.select(args.heldout)
        sources = [c for c in categories if c not in heldout] if args.categories is None else categories
        path, results = fit_zero_shot(card, dataset, sources, heldout, out, args.backbone_weights, seed=args.seed,
                                      steps=args.steps, max_images=args.max_train)
        print(f"checkpoint: {path}")
        for category, auroc in results.items():
            print(f"held-out {category}: image AUROC {100 * auroc:.2f}")
        return 0
    if args.heldout:
        raise BadInput(f"--heldout is for zero-shot models; {card.name} is fitted per category")
    written = fit_categories(card, dataset, categories, out, args.backbone_weights, seed=args.seed,
                             steps=args.steps, max_train=args.max_train)
    for category, path in written.items():
        print(f"{category}: {path}")
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from bench.data.demo import DemoSpec
    from bench.demo import DEMO_MEASUREMENT, closing_lines, run_demo
    from bench.run.measure import Measurement

    started = time.monotonic()
    if args.small:
        spec = DemoSpec(size=128, n_train=6, n_test_good=3, n_test_per_defect=2)
        demo = run_demo(spec, args.out, args.report, Measurement(warmup=2, min_count=5, min_duration_s=0.0),
                        fit_steps=20)
    else:
        demo = run_demo(None, args.out, args.report, DEMO_MEASUREMENT)
    print(f"run record: {demo.run_dir}")
    print(f"report:     {demo.report}")
    print("\n".join(closing_lines(demo, time.monotonic() - started)))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"edge-ad-bench {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="benchmark a model on a device, writing a run record")
    run.add_argument("--device", default="host", help="device profile name (bench list devices)")
    run.add_argument("--model", default="tinyglass", help="a model card name (bench list models), a card file, or an "
                     "exported ONNX file or folder (anomalib exports need no card)")
    run.add_argument("--dataset", default="mvtec", help="dataset reader (bench list datasets)")
    run.add_argument("--data-root", type=Path, help="dataset folder")
    run.add_argument("--categories", type=_categories, help="comma-separated subset of categories")
    run.add_argument("--limit", type=_positive, help="at most N test images per category (both classes kept)")
    run.add_argument("--checkpoint", type=Path, help="checkpoint file or folder (default: where bench fit writes)")
    run.add_argument("--backbone-weights", type=Path, help="backbone weight file (default: the checkpoint's, "
                     "else the torch hub cache)")
    run.add_argument("--skip-bad", action="store_true", help="record a bad image (unreadable, no mask, wrong "
                     "mask size) with its error and go on; strict by default")
    run.add_argument("--note", help="one line recorded with the run and shown with it in the report")
    run.add_argument("--tensor-cache", action="store_true", help="cache preprocessed tensors on disk, keyed by "
                     "the preprocessing recipe and the image bytes")
    run.add_argument("--emulate", action="store_true", help="run the device's numerics (FP16, MCT INT8) on the "
                     "host: accuracy and predicted drift only, marked emulated, never device timing")
    run.add_argument("--mask-convention", choices=MASK_CONVENTIONS,
                     help="how masks become pixel ground truth (default: the model card's; bilinear_cast is the "
                     "official GLASS/TinyGLASS one, nearest_nonzero counts every non-zero pixel)")
    run.add_argument("--calibration", choices=CALIBRATIONS, help=CALIBRATION_HELP)
    run.add_argument("--out", type=Path, default=None, help="results folder (default results/)")
    run.add_argument("--resume", metavar="RUN_ID", help="finish an unfinished run in --out with its recorded "
                     "settings; only --warmup/--min-count/--min-duration may be changed (recorded per attempt), and a "
                     "changed checkpoint, dataset, device profile or artifact is refused")
    run.add_argument("--warmup", type=int, help="untimed warm-up inferences (default 10)")
    run.add_argument("--min-count", type=_positive, help="minimum timed inferences (default 100)")
    run.add_argument("--min-duration", type=float, help="minimum timed seconds (default 5)")
    run.set_defaults(handler=cmd_run)

    report = sub.add_parser("report", help="write the HTML report from run records")
    report.add_argument("results", nargs="*", type=Path, help="run folders or results folders (default results/)")
    report.add_argument("--out", type=Path, default=Path("reports/index.html"),
                        help="the HTML file; CSV and Markdown tables are written beside it")
    report.add_argument("--max-drift", type=float, metavar="POINTS",
                        help="drift gate in image-AUROC points for every device run (default: each model card's "
                        "drift_gate for the device, else 0.2)")
    report.add_argument("--reference", action="append", default=[], metavar="RUN",
                        help=REFERENCE_HELP)
    report.set_defaults(handler=cmd_report)

    nightly = sub.add_parser("nightly", help="every device run of a results folder against its reference "
                             "(exit 3 when a gate is exceeded, else 4 when one is inconclusive; 2 when a device "
                             "run has no reference)")
    nightly.add_argument("results", type=Path, help="folder holding the night's run records (any depth)")
    nightly.add_argument("--max-drift", type=float, metavar="POINTS", help="one gate for every device run "
                         "(default: each model card's drift_gate for the device, else 0.2)")
    nightly.add_argument("--reference", action="append", default=[], metavar="RUN", help=REFERENCE_HELP)
    nightly.add_argument("--no-pixel", action="store_true", help="skip pixel-level drift")
    nightly.set_defaults(handler=cmd_nightly)

    compare = sub.add_parser("compare", help="drift of a device run against its reference (exit 3 gate exceeded, "
                             "4 inconclusive)")
    compare.add_argument("ref_run", help="the reference run (folder or run id in results/)")
    compare.add_argument("dev_run", help="the device run (folder or run id in results/)")
    compare.add_argument("--max-drift", type=_compare_gate, metavar="POINTS|card",
                         help="gate on the mean image-AUROC drift's 95%% interval: exit 3 when it lies wholly outside "
                         "+-POINTS, 4 when it straddles the limit; 'card': the model card's drift_gate for the "
                         "device (default: no gate)")
    compare.add_argument("--no-pixel", action="store_true", help="skip pixel-level drift (no masks re-read)")
    compare.add_argument("--json", action="store_true")
    compare.set_defaults(handler=cmd_compare)

    listing = sub.add_parser("list", help="list devices, models or datasets")
    listing.add_argument("what", choices=["devices", "models", "datasets"])
    listing.add_argument("--json", action="store_true")
    listing.set_defaults(handler=cmd_list)

    inspect = sub.add_parser("inspect", help="inspect a dataset or a model")
    inspect.add_argument("what", choices=["dataset", "model"])
    inspect.add_argument("name", nargs="?", help="the model, for 'inspect model': a card name, a card file, or an "
                         "exported ONNX file or folder")
    inspect.add_argument("--card", action="store_true", help="for an exported model: print a starting model card "
                         "(YAML) to check and edit")
    inspect.add_argument("--dataset", default="mvtec")
    inspect.add_argument("--data-root", type=Path)
    inspect.add_argument("--categories", type=_categories)
    inspect.add_argument("--json", action="store_true")
    inspect.set_defaults(handler=cmd_inspect)

    compile_ = sub.add_parser("compile", help="compile a model for a device into the artifact cache")
    compile_.add_argument("--device", required=True)
    compile_.add_argument("--model", required=True, help="as for bench run")
    compile_.add_argument("--dataset", default="mvtec")
    compile_.add_argument("--data-root", type=Path, help="dataset folder (parity inputs, INT8 calibration images)")
    compile_.add_argument("--categories", type=_categories, help="comma-separated subset of categories")
    compile_.add_argument("--checkpoint", type=Path, help="checkpoint file or folder (default: where bench fit "
                          "writes)")
    compile_.add_argument("--backbone-weights", type=Path, help="backbone weight file")
    compile_.add_argument("--emulate", action="store_true", help="the host-emulation artifact instead")
    compile_.add_argument("--calibration", choices=CALIBRATIONS, help=CALIBRATION_HELP)
    compile_.add_argument("--json", action="store_true")
    compile_.set_defaults(handler=cmd_compile)

    fit = sub.add_parser("fit", help="fit per-category checkpoints on normal training images")
    fit.add_argument("--model", required=True)
    fit.add_argument("--dataset", default="mvtec")
    fit.add_argument("--data-root", type=Path, required=True)
    fit.add_argument("--categories", type=_categories)
    fit.add_argument("--out", type=Path, help="checkpoint folder (default: the cache's checkpoints/MODEL)")
    fit.add_argument("--backbone-weights", type=Path, help="backbone weight file (default: the torch hub cache)")
    fit.add_argument("--seed", type=int, default=0)
    fit.add_argument("--steps", type=_positive, help="optimisation steps (default 300 per category for "
                     "TinyGLASS, 200 for EdgeZSAD)")
    fit.add_argument("--heldout", type=_categories, help="zero-shot models: unseen categories to evaluate on "
                     "(the sources are --categories, or all others)")
    fit.add_argument("--max-train", type=_positive, help="use at most N images per category")
    fit.set_defaults(handler=cmd_fit)

    demo = sub.add_parser("demo", help="generate demo data, fit, run the host and write a report")
    demo.add_argument("--out", type=Path, help="results folder (default results/)")
    demo.add_argument("--report", type=Path, help="report file (default reports/demo/index.html)")
    demo.add_argument("--small", action="store_true", help="a tiny configuration for smoke tests")
    demo.set_defaults(handler=cmd_demo)

    doctor = sub.add_parser("doctor", help="which adapters work here, and why not")
    doctor.add_argument("--json", action="store_true")
    doctor.set_defaults(handler=cmd_doctor)
    return parser


AFTER_INTERRUPT = {  # what survives a Ctrl-C outside a run (a run records it and names its resume command)
    "demo": "; run 'python -m bench demo' again: the data, backbone and checkpoints made so far are kept",
    "fit": "; the checkpoints written before it are complete (each is replaced atomically), the rest are not written",
}


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.handler(args)
    except BenchError as exc:
        close_bars()
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        close_bars()
        print(f"error: interrupted by the user (Ctrl-C){AFTER_INTERRUPT.get(args.command, '')}", file=sys.stderr)
        return Interrupted.exit_code
