"""Facts read from an ONNX file's graph signature, for adapters whose runtime loses them."""

from __future__ import annotations

from pathlib import Path


def output_shapes(onnx_path: Path) -> dict[str, list[int]]:
    """The graph's output shapes at batch 1 (a symbolic dimension counts as 1), in output order."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False).graph
    return {out.name: [d.dim_value if d.HasField("dim_value") else 1 for d in out.type.tensor_type.shape.dim]
            for out in graph.output}
