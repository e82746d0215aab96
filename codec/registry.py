"""Registry of models: stable string ids -> coding models with checked weight digests.

Shipped models: weights live in codec/weights/<id>.safetensors (package data); MANIFEST.json
beside them holds each file's SHA-256, checked on load so a damaged or swapped file is
refused instead of silently producing different probabilities. The container stores the
first bytes of that digest, so a decoder with other weights refuses a file instead of
decoding garbage.

Third-party models: a package declares an entry point in the group ``neco.models``, named by
the model id, pointing to a factory that takes no arguments and returns a coding model --
an object with the interface of `image_codec.FrozenImageModel`: ``model_id`` (the entry
point's name), ``digest`` (the 4 bytes the header stores: the start of the SHA-256 of its
weights), ``max_rate_fx``, ``rate_fx_from_quality``, ``analyse``,
``code_latents(y0, rate_fx, effort, pixels)`` (a model without encoder effort may code every
effort as 0; pixels is None for a rate search's probes, which must code quickly, fitting
nothing) and ``decode``. Optional: ``profile`` (default "image"), ``rates`` (text for `neco list`),
``sha256`` (the full digest). A shipped id always wins over a plugin of the same name.

    [project.entry-points."neco.models"]
    my-model-v1 = "my_package.model:load"
"""

from functools import lru_cache
import hashlib
from importlib import metadata
import json
from pathlib import Path

from safetensors.torch import load, save_file
import torch

from neco.formats.errors import ModelError

from .entropy import build_gaussian_tables
from .image_model import ImageModel, ImageModelConfig, frozen_tensors

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
MANIFEST = WEIGHTS_DIR / "MANIFEST.json"
DEFAULT_IMAGE_MODEL = "image-hp-v1"
DIGEST_BYTES = 4  # truncated digest stored in each file's header
MODELS_GROUP = "neco.models"  # entry point group of third-party models
_CODER_METHODS = ("rate_fx_from_quality", "analyse", "code_latents", "decode")


def _manifest() -> dict:
    return json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}


def plugin_models() -> dict[str, metadata.EntryPoint]:
    """Entry points of the ``neco.models`` group, by model id (shipped ids excluded)."""
    shipped = _manifest()
    return {ep.name: ep for ep in metadata.entry_points(group=MODELS_GROUP) if ep.name not in shipped}


def available() -> list[str]:
    """Ids of every installed model: shipped and from plugins."""
    return sorted(set(_manifest()) | set(plugin_models()))


def weights_path(model_id: str) -> Path:
    return WEIGHTS_DIR / f"{model_id}.safetensors"


def digest(model_id: str) -> bytes:
    """Full SHA-256 of the model's weights file, as recorded in the manifest (for a plugin
    model: its ``sha256``, else the header digest)."""
    entry = _manifest().get(model_id)
    if entry is None:
        if model_id in plugin_models():
            model = get_model(model_id)
            return bytes(getattr(model, "sha256", model.digest))
        raise ModelError(f"unknown model {model_id!r} (installed: {', '.join(available()) or 'none'})")
    return bytes.fromhex(entry["sha256"])


def describe(model_id: str) -> dict:
    """What `neco list` shows: name, kind (profile), rates, digest and where it comes from."""
    if model_id in _manifest():
        path = weights_path(model_id)
        from safetensors import safe_open
        with safe_open(str(path), "pt") as f:
            cfg = ImageModelConfig.from_json(f.metadata()["config"])
        rates = f"quality 0-100 ({cfg.levels} trained levels, lambda {min(cfg.lambdas):g}-{max(cfg.lambdas):g})"
        return {"name": model_id, "kind": "image", "rates": rates, "digest": digest(model_id).hex(),
                "source": "shipped"}
    model = get_model(model_id)
    dist = plugin_models()[model_id].dist
    return {"name": model_id, "kind": str(getattr(model, "profile", "image")),
            "rates": str(getattr(model, "rates", "quality 0-100")),
            "digest": bytes(getattr(model, "sha256", model.digest)).hex(),
            "source": f"{dist.name} {dist.version}" if dist else "plugin"}


def load_tensors(model_id: str, verify: bool = True) -> tuple[ImageModelConfig, dict[str, torch.Tensor]]:
    """The config and tensors of a shipped model, read once: the bytes whose SHA-256 is checked
    are the bytes that are parsed."""
    expected = digest(model_id) if verify else None  # an unknown id fails here
    path = weights_path(model_id)
    if not path.exists():
        raise ModelError(f"weights file of model {model_id!r} is missing: {path}")
    data = path.read_bytes()
    if verify and hashlib.sha256(data).digest() != expected:
        raise ModelError(f"weights file of model {model_id!r} is damaged (SHA-256 mismatch)")
    return ImageModelConfig.from_json(_safetensors_metadata(data)["config"]), load(data)


def _safetensors_metadata(data: bytes) -> dict:
    """The ``__metadata__`` of a safetensors file: an 8-byte little-endian header length, then
    that many bytes of JSON (the format's specification)."""
    size = int.from_bytes(data[:8], "little")
    return json.loads(data[8:8 + size])["__metadata__"]


def export(model_id: str, model: ImageModel) -> Path:
    """Write the frozen (integer probability path) weights and record their digest."""
    tensors = frozen_tensors(model)
    tensors["cdf_tables"] = torch.from_numpy(build_gaussian_tables())
    WEIGHTS_DIR.mkdir(exist_ok=True)
    path = weights_path(model_id)
    tmp = path.with_suffix(".tmp")
    # One metadata entry: safetensors writes several in a per-process hash order, so the same
    # weights exported twice had different bytes, hence a different digest (seen: two files).
    save_file(tensors, str(tmp), metadata={"config": model.cfg.to_json()})
    tmp.chmod(0o644)  # save_file creates it owner-only; shipped package data is readable by all
    tmp.replace(path)
    manifest = _manifest()
    manifest[model_id] = {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    MANIFEST.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    get_model.cache_clear()
    return path


@lru_cache(maxsize=4)
def get_model(model_id: str):
    """The frozen coding model for an id (loaded once per process): shipped, else a plugin."""
    if model_id not in _manifest() and model_id in plugin_models():
        return _load_plugin(model_id)
    from .image_codec import FrozenImageModel
    cfg, tensors = load_tensors(model_id)
    return FrozenImageModel(model_id, cfg, tensors, digest(model_id)[:DIGEST_BYTES])


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
