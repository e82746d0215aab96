"""``neco info``: what a `.neco` file holds, from its container alone (no model runs)."""

from __future__ import annotations

import json
from typing import Any

import click

import neco

from .errors import about, display
from .inputs import read_input


_INFO_ORDER = (
    "kind",
    "width",
    "height",
    "pixel_format",
    "profile",
    "model_id",
    "weights_digest",
    "bpp",
    "size_bytes",
    "version",
)


def _jsonable(value: Any) -> Any:
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).hex()
    return str(value)


def _format_value(key: str, value: Any) -> str:
    if key == "declared_frames" and value is None:
        return "not declared (written as a stream)"
    if key == "version" and isinstance(value, (tuple, list)):
        return ".".join(map(str, value))
    if isinstance(value, (tuple, list)):
        return ", ".join(map(str, value)) if value else "none"
    if isinstance(value, float):
        return f"{value:.4f}" if key == "bpp" else f"{value:g}"
    if isinstance(value, int) and not isinstance(value, bool) and key.endswith("bytes"):
        return f"{value:,}"
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    return str(value)


def _format_chunk(chunk: Any) -> str:
    if not isinstance(chunk, dict):
        return str(chunk)
    name = chunk.get("type", chunk.get("name", "?"))
    length = chunk.get("length")
    rest = [
        f"{key}={_format_value(key, value)}"
        for key, value in chunk.items()
        if key not in ("type", "name", "length")
    ]
    text = f"{name!s:<6}" + (f" {length:>10,} bytes" if isinstance(length, int) else "")
    return "  ".join([text, *rest]) if rest else text


def _format_info(source: str, info: dict[str, Any]) -> str:
    keys = [key for key in _INFO_ORDER if key in info]
    keys += [key for key in info if key not in keys and key != "chunks"]
    width = max(len(key) for key in [*keys, "file"]) + 2
    lines = [f"{'file:':<{width}}{source}"]
    lines += [f"{key + ':':<{width}}{_format_value(key, info[key])}" for key in keys]
    chunks = info.get("chunks")
    if chunks:
        lines.append(f"chunks ({len(chunks)}):")
        lines += [f"  {_format_chunk(chunk)}" for chunk in chunks]
    return "\n".join(lines)


@click.command()
@click.argument("path", metavar="FILE", type=click.Path(allow_dash=True))
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def info(path: str, as_json: bool) -> None:
    """Describe the .neco file FILE (no model runs).

    For a video, frames is the count of frames in the file and declared_frames the count its
    header declares (not declared for a stream written from a pipe; null in --json).
    """
    data = read_input(path)
    with about(path, "stdin"):
        details = neco.info(data)
    if as_json:
        click.echo(json.dumps(details, indent=2, default=_jsonable))
    else:
        click.echo(_format_info(display(path, "stdin"), details))
