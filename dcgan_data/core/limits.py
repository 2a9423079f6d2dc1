"""Bounds on untrusted input that several stages apply, stated once (imports nothing heavy:
the options classes read them for `--help`)."""

MAX_PIXELS = 50_000_000  # an image header declaring more is refused (decompression bombs)
MAX_FILE_BYTES = 20 * 1024 * 1024  # a local file named by a crawl list or a dataset cell
