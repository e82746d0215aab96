"""Adapters to the outside world: `cli` (the ``neco`` command line), `adapters` (Pillow, Y4M
pipes, PyAV files, PIL images), `bench` (the RD bench behind ``neco eval``) and `atomic` (the
one atomic file writer the CLI and the bench share)."""


def register() -> None:
    """Register the `.neco` format with Pillow (`import neco` does this too); safe to repeat."""
    from .adapters.pillow_plugin import register as register_pillow
    register_pillow()
