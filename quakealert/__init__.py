"""quakealert: earthquake alerts and public information for residents, in zh, bo and en."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("quakealert")  # one place: pyproject.toml
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
