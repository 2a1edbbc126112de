"""Exported models users bring (card family ``onnx``): an ONNX graph, one for all categories or one each.

The harness defines nothing about such a model, so its card states exactly what is needed to feed and
read the graph: the input recipe (resize/crop, mean/std or ``null`` when the graph normalises itself,
channel order, layout, value range) and which outputs are the image score and the anomaly map (a missing
score is the map's maximum). anomalib 2.x exports are recognised from the graph and need no card
(``bench.models.anomalib_exports``); any other graph gets a starting card from ``bench inspect model PATH
--card`` for the user to check.

Nothing about the pre- and post-processing is taken on trust: before any device work the graph runs on
the first images of each category, and scores outside the card's declared range, a constant map, or a
graph that normalises an input the card has normalised already stop the run with the fix named.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from bench.data.preprocess import IMAGENET_MEAN, IMAGENET_STD
from bench.errors import BadInput
from bench.records.atomic import replace_atomically
from bench.util import file_sha256

DEFAULT_PATTERNS = ("{category}/*.onnx", "{category}.onnx", "*.onnx")
CHANNEL_ORDERS = ("RGB", "BGR")
SCORE_TOLERANCE = 1e-3  # how far a score may stray past its declared range (float rounding in the graph)
NORMALISING_OPS = ("Sub", "Div", "Mul", "Add")
PASS_THROUGH_OPS = ("Cast", "Resize", "Slice", "Transpose", "Identity", "Reshape", "Unsqueeze", "Pad", "Upsample")


@dataclass(frozen=True)
class GraphFacts:
    """What the harness reads off a graph: its one input and its outputs, with static shapes where known."""

    path: Path
    input_name: str
    input_shape: tuple[int | str | None, ...]
    input_type: str
    outputs: dict[str, tuple[int | str | None, ...]]
    output_types: dict[str, str]
    metadata: dict[str, str]

    @property
    def static_input(self) -> bool:
        return all(isinstance(d, int) and d > 0 for d in self.input_shape)


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as exc:
        raise BadInput("reading an exported model needs the onnx package: pip install -e '.[export]'") from exc
    return onnx


def load_graph(path: Path) -> Any:
    onnx = _onnx()
    try:
        return onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # protobuf raises DecodeError and others for a file that is not ONNX
        raise BadInput(f"{path}: not a readable ONNX model ({str(exc).splitlines()[0] if str(exc) else exc})") \
            from exc


def graph_facts(path: Path, model: Any | None = None) -> GraphFacts:
    """The graph's single input and its outputs; several inputs are refused (one image in, as every device)."""
    onnx = _onnx()
    model = model if model is not None else load_graph(path)
    graph = model.graph
    initialised = {init.name for init in graph.initializer}
    inputs = [value for value in graph.input if value.name not in initialised]
    if len(inputs) != 1:
        names = ", ".join(value.name for value in inputs) or "none"
        raise BadInput(f"{path}: the graph has {len(inputs)} inputs ({names}); the harness feeds one image tensor")

    def shape(value: Any) -> tuple[int | str | None, ...]:
        dims = value.type.tensor_type.shape.dim
        return tuple(d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in dims)

    def dtype(value: Any) -> str:
        return onnx.helper.tensor_dtype_to_np_dtype(value.type.tensor_type.elem_type).name

    return GraphFacts(path, inputs[0].name, shape(inputs[0]), dtype(inputs[0]),
                      {o.name: shape(o) for o in graph.output}, {o.name: dtype(o) for o in graph.output},
                      {p.key: p.value for p in model.metadata_props})


def check_card(data: dict[str, Any], where: Path) -> None:
    """An exported-model card's own fields: the outputs mapping, channel order, value and score ranges."""
    outputs = data.get("outputs")
    if not isinstance(outputs, dict) or not (outputs.get("score") or outputs.get("map")):
        raise BadInput(f"{where}: 'outputs' must name the graph's image score ('score') or anomaly map ('map'), "
                       "or both")
    spec = data.get("input") or {}
    if spec.get("channel_order", "RGB") not in CHANNEL_ORDERS:
        raise BadInput(f"{where}: input.channel_order {spec.get('channel_order')!r} (RGB or BGR)")
    for key, section in (("value_range", spec), ("score_range", outputs)):
        value = section.get(key)
        if value is not None and not (isinstance(value, list | tuple) and len(value) == 2 and value[0] < value[1]):
            raise BadInput(f"{where}: {key} must be [low, high], got {value!r}")
    data.setdefault("checkpoints", {"per_category": False, "patterns": list(DEFAULT_PATTERNS)})
    data.setdefault("export", {})
    crop = spec.get("crop", spec.get("resize"))
    if crop is not None:
        data.setdefault("postprocess", {}).setdefault("map_size", crop if isinstance(crop, list) else [crop, crop])


def onnx_files(path: Path) -> list[Path]:
    if path.is_file():
        return [path]
    found = sorted(p for p in path.rglob("*.onnx") if p.is_file())
    if not found:
        raise BadInput(f"--model {path}: no .onnx file in this folder")
    return found


def card_for_export(path: Path) -> Any:
    """The card of an exported model given without one: recognised anomalib exports only, since the
    preprocessing of any other graph cannot be read off it reliably."""
    from bench.models.cards import ModelCard

    files = onnx_files(path)
    first = files[0]
    data = recognise(first)
    if data is None:
        raise BadInput(f"{first}: not a recognised anomalib export, so its preprocessing is unknown; write its card "
                       f"with 'bench inspect model {path} --card > my.yaml', check it, then pass --model my.yaml")
    if not data["input"].get("resize"):
        raise BadInput(f"{first}: an anomalib export with a dynamic height and width and no fixed resize inside; "
                       "export it with input_size=(H, W), or write a card naming the size")
    per_category = path.is_dir() and len({f.parent for f in files}) > 1
    data.update(name=export_name(first), model=str(path.resolve()),
                checkpoints={"per_category": per_category, "patterns": list(DEFAULT_PATTERNS)})
    check_card(data, first)
    return ModelCard(str(data["name"]), str(data["family"]), data, path.resolve())


def export_name(path: Path) -> str:
    """A readable name for an exported graph: its stem, or for anomalib's ``.../<name>/weights/onnx/model.onnx``
    (and ``v0``, ``latest`` version folders) the first folder above that says more."""
    if path.stem != "model":
        return path.stem
    for folder in path.resolve().parents:
        if folder.name and folder.name not in ("onnx", "weights", "latest") and not re.fullmatch(r"v\d+", folder.name):
            return folder.name
    return path.stem


def recognise(path: Path) -> dict[str, Any] | None:
    """anomalib's card for the graph, or None when it is not an anomalib 2.x export."""
    try:
        from bench.models.anomalib_exports import recognise as anomalib_card
    except ImportError:
        return None
    return anomalib_card(path)


def starting_card(path: Path) -> str:
    """A card to edit, as YAML: anomalib's when recognised, else what the graph shows, with the guesses marked."""
    files = onnx_files(path)
    data = recognise(files[0])
    if data is not None:
        data["model"] = str(path.resolve())
        return "# anomalib export recognised; this card is what the harness uses without one.\n" + \
            yaml.safe_dump(data, sort_keys=False)
    facts = graph_facts(files[0])
    size = [d if isinstance(d, int) else None for d in facts.input_shape[-2:]]
    scores = [n for n, s in facts.outputs.items() if _elements(s) == 1]
    maps = [n for n, s in facts.outputs.items() if len(s) >= 3 and _elements(s) not in (None, 1)]
    card = {
        "name": files[0].stem,
        "family": "onnx",
        "description": f"exported model {files[0].name}",
        "model": str(path.resolve()),
        "input": {"resize": size, "crop": size, "mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD),
                  "channel_order": "RGB", "value_range": [0, 1], "layout": "NCHW", "dtype": "float32"},
        "outputs": {"score": scores[0] if len(scores) == 1 else None,
                    "map": maps[0] if len(maps) == 1 else None, "score_range": None},
        "postprocess": {"map_size": size, "map_sigma": 0},
    }
    notes = [
        f"# Starting card for {files[0]} (graph input '{facts.input_name}' {list(facts.input_shape)}).",
        "# CHECK input.mean/std: ImageNet's are a guess; set both to null when the graph normalises its input.",
        f"# outputs: {', '.join(f'{n} {list(s)}' for n, s in facts.outputs.items())}",
    ]
    if len(scores) != 1 or len(maps) != 1:
        notes.append("# CHECK outputs: name the image score and the anomaly map (null score: the map's maximum).")
    return "\n".join(notes) + "\n" + yaml.safe_dump(card, sort_keys=False)


def _elements(shape: tuple[int | str | None, ...]) -> int | None:
    if not all(isinstance(d, int) for d in shape):
        return None
    return int(np.prod(shape)) if shape else 1


def external_files(model: Any, path: Path) -> list[Path]:
    """The external-data files the graph's initializers name (anomalib writes ``model.onnx.data`` beside it)."""
    onnx = _onnx()
    names = {entry.value for init in model.graph.initializer
             if init.data_location == onnx.TensorProto.EXTERNAL for entry in init.external_data
             if entry.key == "location"}
    files = [path.parent / name for name in sorted(names)]
    missing = [f for f in files if not f.is_file()]
    if missing:
        raise BadInput(f"{path}: its weights are in {missing[0].name}, which is not beside it")
    return files


def export_sha256(path: Path, data_files: list[Path]) -> str:
    """The graph's sha256, or with external weights one over the graph's and each weight file's."""
    if not data_files:
        return file_sha256(path)
    digest = hashlib.sha256(file_sha256(path).encode())
    for data in data_files:
        digest.update(f"{data.name}:{file_sha256(data)}".encode())
    return digest.hexdigest()


def pinnable(facts: GraphFacts, input_shape: tuple[int, ...]) -> bool:
    """Whether every dynamic input dimension can be pinned to the recipe's: a dynamic batch (anomalib always
    exports one) and, where the graph resizes its input itself, a dynamic height and width."""
    if len(facts.input_shape) != len(input_shape):
        return False
    return all(not isinstance(d, int) or d == want for d, want in zip(facts.input_shape, input_shape, strict=True))


def prepared_graph(path: Path, facts: GraphFacts, input_shape: tuple[int, ...], root: Path, data_files: list[Path],
                   sha256: str) -> Path:
    """The graph every device is given: the user's file itself when it is self-contained with a static input,
    else a copy in the cache with the weights inside and the dynamic input dimensions pinned to the recipe's
    (devices compile fixed shapes), keyed by ``sha256`` (``export_sha256`` of the file and its ``data_files``).
    The record keeps the user's file and that sha256 as the checkpoint."""
    if not data_files and facts.static_input:
        return path
    onnx = _onnx()
    key = hashlib.sha256(f"{sha256}:{list(input_shape)}".encode()).hexdigest()[:24]
    target = root / key / "model.onnx"
    if target.is_file():
        return target
    full = onnx.load(str(path), load_external_data=True)
    pinned = {}
    for dim, size in zip(full.graph.input[[i.name for i in full.graph.input].index(facts.input_name)]
                         .type.tensor_type.shape.dim, input_shape, strict=True):
        if not dim.HasField("dim_value"):
            pinned[dim.dim_param] = size
            dim.dim_value = size
    for value in full.graph.output:  # the same symbol on an output (the batch) is the same size
        for dim in value.type.tensor_type.shape.dim:
            if dim.dim_param in pinned:
                dim.dim_value = pinned[dim.dim_param]
    target.parent.mkdir(parents=True, exist_ok=True)
    replace_atomically(target, lambda tmp: onnx.save(full, str(tmp)))
    return target


def check_graph(card: Any, facts: GraphFacts, input_shape: tuple[int, ...]) -> tuple[str, ...]:
    """The graph fits the card: an input of the recipe's shape (dynamic dimensions only where they can be pinned
    to it), the named outputs present. Returns the outputs the harness reads."""
    where = facts.path
    if not facts.static_input and not pinnable(facts, input_shape):
        raise BadInput(f"{where}: input '{facts.input_name}' has a dynamic shape {list(facts.input_shape)} that the "
                       f"card's recipe {list(input_shape)} does not fix; export it with a static {list(input_shape)} "
                       "(devices compile fixed shapes) or set input.resize/crop to the size the graph works at")
    if facts.static_input and tuple(facts.input_shape) != tuple(input_shape):
        raise BadInput(f"{where}: input '{facts.input_name}' is {list(facts.input_shape)} but the card's recipe gives "
                       f"{list(input_shape)}; set input.resize/crop/layout to match the graph")
    if facts.input_type != "float32":
        raise BadInput(f"{where}: input '{facts.input_name}' is {facts.input_type}; the harness feeds float32")
    named = [n for n in (card.data["outputs"].get("score"), card.data["outputs"].get("map")) if n]
    for name in named:
        if name not in facts.outputs:
            raise BadInput(f"{where}: the card names output '{name}', which the graph lacks (outputs: "
                           f"{', '.join(facts.outputs)}); fix 'outputs' in the card")
    return tuple(named)


def graph_constants(graph: Any, max_elements: int | None = None) -> dict[str, np.ndarray]:
    """Initializers stored in the file (up to ``max_elements`` values each) and Constant nodes' values, by name:
    what a graph's folded thresholds, sizes and normalisation constants are read from."""
    onnx = _onnx()
    found = {init.name: onnx.numpy_helper.to_array(init) for init in graph.initializer
             if init.data_location != onnx.TensorProto.EXTERNAL
             and (max_elements is None or int(np.prod(init.dims, dtype=np.int64)) <= max_elements)}
    for node in graph.node:
        if node.op_type == "Constant":
            for attr in node.attribute:
                if attr.name == "value":
                    found[node.output[0]] = onnx.numpy_helper.to_array(attr.t)
    return found


def normalises_input(model: Any, facts: GraphFacts) -> bool:
    """Whether the graph subtracts ImageNet's mean or divides by its std (or multiplies by 1/std) within a few
    shape-only steps of its input: a graph with its preprocessing inside."""
    constants = graph_constants(model.graph, max_elements=3)
    consumers: dict[str, list[Any]] = {}
    for node in model.graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    targets = [np.asarray(IMAGENET_MEAN), np.asarray(IMAGENET_STD), 1 / np.asarray(IMAGENET_STD)]
    frontier, seen = [facts.input_name], set()
    for _ in range(6):
        following = []
        for name in frontier:
            for node in consumers.get(name, []):
                if id(node) in seen:
                    continue
                seen.add(id(node))
                if node.op_type in NORMALISING_OPS:
                    for other in node.input:
                        value = constants.get(other)
                        if value is not None and value.size == 3 and any(
                                np.allclose(value.reshape(-1), t, atol=2e-3) for t in targets):
                            return True
                if node.op_type in (*PASS_THROUGH_OPS, *NORMALISING_OPS):
                    following.extend(node.output)
        frontier = following
    return False


def check_outputs(card: Any, path: Path, decoded: list[tuple[float, np.ndarray | None]], normalised: bool) -> None:
    """Pre- and post-processing parity on the first images: caught here, not as a quietly wrong AUROC."""
    recipe = card.recipe
    card_normalises = tuple(recipe.mean) != (0.0, 0.0, 0.0) or tuple(recipe.std) != (1.0, 1.0, 1.0)
    if normalised and card_normalises:
        raise BadInput(f"{path}: the graph normalises its input with ImageNet's mean/std and the card does too; "
                       "set input.mean and input.std to null in the card")
    if not decoded:
        return
    scores = np.array([score for score, _ in decoded], dtype=np.float64)
    if not np.isfinite(scores).all():
        raise BadInput(f"{path}: non-finite scores on the first {len(decoded)} images; check the card's input "
                       "preprocessing (mean/std, value_range, channel_order)")
    declared = card.data["outputs"].get("score_range")
    if declared is not None:
        low, high = float(declared[0]), float(declared[1])
        if scores.min() < low - SCORE_TOLERANCE or scores.max() > high + SCORE_TOLERANCE:
            hint = ("the graph may normalise its input, which the card normalises again" if card_normalises else
                    "the graph may expect a normalised input, which the card does not give")
            raise BadInput(f"{path}: scores {scores.min():.4g}..{scores.max():.4g} on the first {len(decoded)} "
                           f"images fall outside the declared score_range [{low:g}, {high:g}]: {hint} "
                           "(check input.mean/std)")
    maps = [amap for _, amap in decoded if amap is not None]
    if maps and len(maps) == len(decoded) and all(float(np.ptp(m)) == 0.0 for m in maps) and \
            len({float(m.flat[0]) for m in maps}) == 1:
        raise BadInput(f"{path}: the anomaly map is one constant value on the first {len(maps)} images; check the "
                       "card's input preprocessing (mean/std, value_range) and that outputs.map names the map")


def module_path(card: Any) -> Path | None:
    """The card's ``module`` file (relative to the card), or None."""
    spec = card.data.get("module")
    if not spec:
        return None
    path = Path(str(spec)).expanduser()
    return path if path.is_absolute() else Path(card.source).parent / path


def load_module(card: Any) -> Any:
    """The PyTorch module a quantizing toolchain (MCT for the IMX500) starts from: the card's ``module``, a
    ``torch.export`` program file; None when the card has none."""
    path = module_path(card)
    if path is None:
        return None
    if not path.is_file():
        raise BadInput(f"{card.source}: module {path}: no such file (a torch.export program saved with "
                       "torch.export.save)")
    import torch

    try:
        exported = torch.export.load(str(path)).module()
    except Exception as exc:  # torch raises several types for a file that is not an exported program
        raise BadInput(f"{path}: not a torch.export program ({str(exc).splitlines()[0] if str(exc) else exc})") \
            from exc
    # The program's module refuses train()/eval(), which quantizers call: the same graph in a plain GraphModule.
    return torch.fx.GraphModule(exported, exported.graph)
