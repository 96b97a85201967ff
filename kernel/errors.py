"""The one error type the CLI turns into a single readable line."""


class PpuError(Exception):
    """A failure the operator can act on; its message is the whole story (no traceback)."""
