"""What is installed, by stable string name: models and codecs, with third-party entry points.

- **models** (``neco.models`` entry points, `neco.codec.registry`): what encodes and decodes
  `.neco` files; the header names one by its id.
- **codecs** (``neco.codecs`` entry points): what ``neco eval`` compares -- the built-in
  baselines of `eval_codecs` (jpeg, webp, avif, jxl, heic, neco) plus a package's own: an entry
  point named by the codec, pointing to a subclass of `eval_codecs.Codec`. A built-in name
  always wins over a plugin of the same name.

    [project.entry-points."neco.codecs"]
    mycodec = "my_package.bench:MyCodec"

``neco list`` prints both tables (name, kind, rates, weights digest, source). A plugin that
fails to load is listed with its error instead of breaking the listing.
"""

from __future__ import annotations

from importlib import metadata
import json

import click

CODECS_GROUP = "neco.codecs"


def plugin_codecs() -> dict[str, metadata.EntryPoint]:
    """Entry points of the ``neco.codecs`` group, by name (built-in names excluded)."""
    from .eval_codecs import CODECS
    return {ep.name: ep for ep in metadata.entry_points(group=CODECS_GROUP) if ep.name not in CODECS}


def codecs() -> dict[str, type]:
    """Every codec class by name: the built-in baselines, then loaded plugins.

    Raises ValueError naming a plugin whose entry point does not give an `eval_codecs.Codec`.
    """
    from .eval_codecs import CODECS, Codec
    found = dict(CODECS)
    for name, entry in plugin_codecs().items():
        cls = entry.load()
        if not (isinstance(cls, type) and issubclass(cls, Codec)):
            raise ValueError(f"codec plugin {name!r} ({entry.value}) is not a neco eval Codec class")
        found[name] = cls
    return found


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
    from .eval_codecs import CODECS
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
def list_command(as_json: bool) -> None:
    """List installed models and codecs (shipped, built-in and from plugins)."""
    rows = {"models": model_rows(), "codecs": codec_rows()}
    if as_json:
        click.echo(json.dumps(rows, indent=2))
        return
    click.echo("models:\n" + _table(rows["models"]))
    click.echo("\ncodecs (neco eval):\n" + _table(rows["codecs"]))
