"""Registry of shipped models: stable string ids -> weights files with checked digests.

Weights live in codec/weights/<id>.safetensors (package data); MANIFEST.json beside them holds
each file's SHA-256, checked on load so a damaged or swapped file is refused instead of
silently producing different probabilities. The container stores the first bytes of that
digest, so a decoder with other weights refuses a file instead of decoding garbage.
"""

from functools import lru_cache
import hashlib
import json
from pathlib import Path

from safetensors.torch import load_file, save_file
import torch

from neco.formats.errors import ModelError

from .entropy import build_gaussian_tables
from .image_model import ImageModel, ImageModelConfig, frozen_tensors

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
MANIFEST = WEIGHTS_DIR / "MANIFEST.json"
DEFAULT_IMAGE_MODEL = "image-hp-v1"
DIGEST_BYTES = 4  # truncated digest stored in each file's header


def _manifest() -> dict:
    return json.loads(MANIFEST.read_text()) if MANIFEST.exists() else {}


def available() -> list[str]:
    return sorted(_manifest())


def weights_path(model_id: str) -> Path:
    return WEIGHTS_DIR / f"{model_id}.safetensors"


def digest(model_id: str) -> bytes:
    """Full SHA-256 of the model's weights file, as recorded in the manifest."""
    entry = _manifest().get(model_id)
    if entry is None:
        raise ModelError(f"unknown model {model_id!r} (installed: {', '.join(available()) or 'none'})")
    return bytes.fromhex(entry["sha256"])


def load_tensors(model_id: str, verify: bool = True) -> tuple[ImageModelConfig, dict[str, torch.Tensor]]:
    path = weights_path(model_id)
    if verify:
        expected = digest(model_id)
        if not path.exists():
            raise ModelError(f"weights file of model {model_id!r} is missing: {path}")
        if hashlib.sha256(path.read_bytes()).digest() != expected:
            raise ModelError(f"weights file of model {model_id!r} is damaged (SHA-256 mismatch)")
    from safetensors import safe_open
    with safe_open(str(path), "pt") as f:
        meta = f.metadata()
    return ImageModelConfig.from_json(meta["config"]), load_file(str(path))


def export(model_id: str, model: ImageModel) -> Path:
    """Write the frozen (integer probability path) weights and record their digest."""
    tensors = frozen_tensors(model)
    tensors["cdf_tables"] = torch.from_numpy(build_gaussian_tables())
    WEIGHTS_DIR.mkdir(exist_ok=True)
    path = weights_path(model_id)
    tmp = path.with_suffix(".tmp")
    save_file(tensors, str(tmp), metadata={"config": model.cfg.to_json(), "model_id": model_id})
    tmp.replace(path)
    manifest = _manifest()
    manifest[model_id] = {"file": path.name, "sha256": hashlib.sha256(path.read_bytes()).hexdigest()}
    MANIFEST.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    get_model.cache_clear()
    return path


@lru_cache(maxsize=4)
def get_model(model_id: str):
    """The frozen coding model for an id (loaded once per process)."""
    from .image_codec import FrozenImageModel
    cfg, tensors = load_tensors(model_id)
    return FrozenImageModel(model_id, cfg, tensors, digest(model_id)[:DIGEST_BYTES])
