"""``neco list``: what is installed, by stable string name, with third-party entry points.

- **models** (``neco.models`` entry points, `neco.codec.registry`): what encodes and decodes
  `.neco` files; the header names one by its id.
- **codecs** (``neco.codecs`` entry points, `neco.plugins.bench.codecs`): what ``neco eval``
  compares, built-in and from plugins.

Both tables show name, kind, rates, weights digest and source. A plugin that fails to load is
listed with its error instead of breaking the listing.
"""

from __future__ import annotations

from importlib import metadata
import json

import click

from neco.plugins.bench.codecs import CODECS, plugin_codecs

def _source(entry: metadata.EntryPoint) -> str:
    return f"{entry.dist.name} {entry.dist.version}" if entry.dist else "plugin"


def model_rows() -> list[dict]:
    from neco.codec import registry as models  # torch loads only when listing
    rows = []
    for name in models.available():
        try:
            rows.append(models.describe(name))
        except Exception as exc:  # a broken plugin or weights file: list it with its error
            rows.append({"name": name, "kind": "?", "rates": "", "digest": "", "source": f"error: {exc}"})
    return rows


def codec_rows() -> list[dict]:
    plugins = plugin_codecs()
    rows = []
    for name in [*CODECS, *plugins]:
        source = "built-in" if name in CODECS else _source(plugins[name])
        kind, rates = "codec", ""
        try:
            codec = CODECS[name]() if name in CODECS else plugins[name].load()()
            kind, (lo, hi) = f"{codec.kind} codec", codec.quality_range
            rates = f"{'CRF' if codec.kind == 'video' else 'quality'} {lo:g}-{hi:g}"
            why = codec.unavailable()
            version = codec.version() if why is None else f"unavailable: {why}"
        except Exception as exc:  # a broken plugin: list it with its error
            version = f"error: {exc}"
        rows.append({"name": name, "kind": kind, "rates": rates, "digest": "", "source": f"{source}; {version}"})
    return rows


def _table(rows: list[dict]) -> str:
    columns = ("name", "kind", "rates", "digest", "source")
    widths = {c: max(len(c), *(len(r[c][:16] if c == "digest" else r[c]) for r in rows)) for c in columns}
    lines = ["  ".join(c.upper().ljust(widths[c]) for c in columns).rstrip()]
    for row in rows:
        cells = {**row, "digest": row["digest"][:16] or "-"}
        lines.append("  ".join(cells[c].ljust(widths[c]) for c in columns).rstrip())
    return "\n".join(lines)


@click.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
def listing(as_json: bool) -> None:
    """List installed models and codecs (shipped, built-in and from plugins)."""
    rows = {"models": model_rows(), "codecs": codec_rows()}
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo("models:\n" + _table(rows["models"]))
    click.echo("\ncodecs (neco eval):\n" + _table(rows["codecs"]))
