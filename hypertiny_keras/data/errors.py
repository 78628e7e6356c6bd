"""The one error type every loader raises for bad input."""


class DataError(ValueError):
    """Raised when a dataset directory or file cannot be used.

    The message always names the file (or directory) and the problem, e.g.
    ``"/data/mitdb/100.atr: annotation at sample 650123 is beyond the signal (650000 samples)"``.
    """
