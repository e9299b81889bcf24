"""The composition root. Importing it registers every context's error codes."""

from ledgerd.main import error_codes as _error_codes  # noqa: F401  (registers on import)
