"""Adapters to the outside world: the CLI, the Pillow plugin, pipes and video files, the RD bench."""


def register() -> None:
    """Register the `.neco` format with Pillow (`import neco` does this too); safe to repeat."""
    from .pillow_plugin import register as register_pillow
    register_pillow()
