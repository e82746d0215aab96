"""Registry of models: stable string ids -> decoders and encoders, with checked weight digests.

Shipped models: weights live in codec/weights/ (package data); MANIFEST.json beside them holds
each model's file, its SHA-256, its model family (codec/family.py) and whether it is released.
Models of different families may share one file (video-hp-v0 codes with image-hp-v1's
networks): the manifest names it and its SHA-256 for each. The SHA-256 is checked on load, so a
damaged or swapped file is refused instead of silently producing different probabilities; the
container stores its first DIGEST_BYTES, so a decoder with other weights refuses a file instead
of decoding garbage.

Released models are immutable (docs/FORMAT.md, "Compatibility"): a released id's weights never
change and stay in the package, so every file neco wrote decodes with every later neco; `export`
refuses to overwrite them, and new training ships under a new id.

Third-party models: a package declares an entry point in the group ``neco.models``, named by
the model id, pointing to a factory that takes no arguments and returns one object that both
encodes and decodes (family.FrameEncoder plus FrameDecoder.decode): ``model_id`` (the entry
point's name), ``digest`` (the DIGEST_BYTES the header stores), ``max_rate_fx``,
``rate_fx_from_quality``, ``analyse``, ``code_latents`` and ``decode``. Optional: ``profile``
(default "image"), ``rates`` (text for `neco list`), ``sha256`` (the full digest). A shipped id
always wins over a plugin of the same name.

    [project.entry-points."neco.models"]
    my-model-v1 = "my_package.model:load"

Torch-free at import: `neco info` and `neco list` read the manifest without loading a model.
"""

from functools import lru_cache
import hashlib
from importlib import metadata
import json
import os
from pathlib import Path

from neco.formats.errors import ModelError

from .family import FrameDecoder, FrameEncoder, ModelFamily
from .image_hp import FAMILY as IMAGE_HP
from .video_hp import FAMILY as VIDEO_HP

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
DEFAULT_IMAGE_MODEL = "image-hp-v1"
DEFAULT_VIDEO_MODEL = "video-hp-v0"   # frame sequences (profile video)
DIGEST_BYTES = 4  # truncated digest stored in each file's header
MODELS_GROUP = "neco.models"  # entry point group of third-party models
FAMILIES: dict[str, ModelFamily] = {family.name: family for family in (IMAGE_HP, VIDEO_HP)}
_CODER_METHODS = ("rate_fx_from_quality", "analyse", "code_latents", "decode")


def manifest() -> dict:
    """The shipped models: id -> {"file", "sha256", "family", "released"}."""
    path = WEIGHTS_DIR / "MANIFEST.json"
    return json.loads(path.read_text()) if path.exists() else {}


def plugin_models() -> dict[str, metadata.EntryPoint]:
    """Entry points of the ``neco.models`` group, by model id (shipped ids excluded)."""
    shipped = manifest()
    return {ep.name: ep for ep in metadata.entry_points(group=MODELS_GROUP) if ep.name not in shipped}


def available() -> list[str]:
    """Ids of every installed model: shipped and from plugins."""
    return sorted(set(manifest()) | set(plugin_models()))


def released() -> list[str]:
    """Ids of the shipped models that are released (immutable)."""
    return sorted(model_id for model_id, entry in manifest().items() if entry.get("released"))


def family_of(model_id: str) -> ModelFamily | None:
    """The family of a shipped model (None for a plugin model or an unknown id)."""
    entry = manifest().get(model_id)
    if entry is None:
        return None
    if entry.get("family") not in FAMILIES:
        raise ModelError(f"model {model_id!r} is of family {entry.get('family')!r}, which this neco does not "
                         f"know (known: {', '.join(sorted(FAMILIES))})")
    return FAMILIES[entry["family"]]


def unknown_model(model_id: str) -> ModelError:
    """The one-line error for a model this installation does not have."""
    try:
        version = metadata.version("neco")
    except metadata.PackageNotFoundError:  # a source tree without an install
        version = "this one"
    return ModelError(f"unknown model {model_id!r} (installed: {', '.join(available()) or 'none'}): it needs "
                      f"a neco newer than {version} that ships it, or the package that provides it "
                      f"(entry point group {MODELS_GROUP})")


def weights_path(model_id: str) -> Path:
    """The weights file of a model: the manifest's, else the id's own name (a model being exported)."""
    entry = manifest().get(model_id)
    return WEIGHTS_DIR / (entry["file"] if entry else f"{model_id}.safetensors")


def digest(model_id: str) -> bytes:
    """Full SHA-256 of the model's weights file, as recorded in the manifest (for a plugin
    model: its ``sha256``, else the header digest)."""
    entry = manifest().get(model_id)
    if entry is None:
        if model_id in plugin_models():
            return _plugin_sha256(get_decoder(model_id))
        raise unknown_model(model_id)
    return bytes.fromhex(entry["sha256"])


def describe(model_id: str) -> dict:
    """What `neco list` shows: name, kind (profile), rates, digest and where it comes from."""
    family = family_of(model_id)
    if family is not None:
        config = _safetensors_metadata(weights_path(model_id).read_bytes())["config"]
        return {"name": model_id, "kind": str(family.profile), "rates": family.describe_rates(config),
                "digest": digest(model_id).hex(),
                "source": "shipped, released" if model_id in released() else "shipped, not released"}
    model = get_decoder(model_id)
    dist = plugin_models()[model_id].dist
    return {"name": model_id, "kind": str(getattr(model, "profile", "image")),
            "rates": str(getattr(model, "rates", "quality 0-100")),
            "digest": _plugin_sha256(model).hex(),
            "source": f"{dist.name} {dist.version}" if dist else "plugin"}


def _plugin_sha256(model) -> bytes:
    """A plugin model's full digest: its ``sha256`` (bytes or hex text), else its header digest."""
    value = getattr(model, "sha256", model.digest)
    return bytes.fromhex(value) if isinstance(value, str) else bytes(value)


def load_tensors(model_id: str, verify: bool = True) -> tuple[str, dict]:
    """The config (JSON text) and tensors of a shipped model, read once: the bytes whose SHA-256
    is checked are the bytes that are parsed."""
    expected = digest(model_id) if verify else None  # an unknown id fails here
    path = weights_path(model_id)
    if not path.exists():
        raise ModelError(f"weights file of model {model_id!r} is missing: {path}")
    data = path.read_bytes()
    if verify and hashlib.sha256(data).digest() != expected:
        raise ModelError(f"weights file of model {model_id!r} is damaged (SHA-256 mismatch)")
    from safetensors.torch import load  # torch loads only when a model does
    return _safetensors_metadata(data)["config"], load(data)


def _safetensors_metadata(data: bytes) -> dict:
    """The ``__metadata__`` of a safetensors file: an 8-byte little-endian header length, then
    that many bytes of JSON (the format's specification)."""
    size = int.from_bytes(data[:8], "little")
    return json.loads(data[8:8 + size])["__metadata__"]


def export(model_id: str, family: str, tensors: dict, config: str) -> Path:
    """Write a model's weights (as its family's decoder loads them) and record their digest,
    unreleased. A released model's weights never change: exporting over one is refused."""
    if model_id in released():
        raise ModelError(f"model {model_id!r} is released and its weights never change: export under a new id")
    if family not in FAMILIES:
        raise ModelError(f"unknown model family {family!r} (known: {', '.join(sorted(FAMILIES))})")
    from safetensors.torch import save_file
    WEIGHTS_DIR.mkdir(exist_ok=True)
    path = WEIGHTS_DIR / f"{model_id}.safetensors"   # its own file, never one it shared
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    # One metadata entry: safetensors writes several in a per-process hash order, so the same
    # weights exported twice would get different bytes, hence a different digest.
    save_file(tensors, str(tmp), metadata={"config": config})
    tmp.chmod(0o644)  # save_file creates it owner-only; shipped package data is readable by all
    tmp.replace(path)
    entries = manifest()
    entries[model_id] = {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                         "family": family, "released": False}
    _write_manifest(entries)
    reload()
    return path


def _write_manifest(entries: dict) -> None:
    path = WEIGHTS_DIR / "MANIFEST.json"
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(entries, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)


@lru_cache(maxsize=8)
def get_decoder(model_id: str) -> FrameDecoder:
    """The decoder of a model (loaded once per process): shipped, else a plugin."""
    family = family_of(model_id)
    if family is None:
        if model_id in plugin_models():
            return _load_plugin(model_id)
        raise unknown_model(model_id)
    config, tensors = load_tensors(model_id)
    return family.decoder(model_id, config, tensors, digest(model_id)[:DIGEST_BYTES])


@lru_cache(maxsize=8)
def get_encoder(model_id: str) -> FrameEncoder:
    """The encoder of a model, sharing its decoder's parts (a plugin model is both)."""
    decoder = get_decoder(model_id)
    family = family_of(model_id)
    return decoder if family is None else family.encoder(decoder)


def reload() -> None:
    """Forget the loaded models, so the next use reads the weights and plugins installed now."""
    get_decoder.cache_clear()
    get_encoder.cache_clear()


def _load_plugin(model_id: str):
    """Call a ``neco.models`` entry point's factory and check what it returns."""
    entry = plugin_models()[model_id]
    try:
        model = entry.load()()
    except Exception as exc:  # a broken third-party package: report it, do not crash
        raise ModelError(f"model plugin {model_id!r} ({entry.value}) failed to load: {exc}") from exc
    missing = [name for name in _CODER_METHODS if not callable(getattr(model, name, None))]
    if missing:
        raise ModelError(f"model plugin {model_id!r} lacks {', '.join(missing)}")
    if getattr(model, "model_id", None) != model_id:
        raise ModelError(f"model plugin {model_id!r} calls itself {getattr(model, 'model_id', None)!r}")
    code = getattr(model, "digest", None)
    if not isinstance(code, bytes) or len(code) != DIGEST_BYTES:
        raise ModelError(f"model plugin {model_id!r}: digest must be {DIGEST_BYTES} bytes, got {code!r}")
    return model
