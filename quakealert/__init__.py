"""quakealert: earthquake alerts and public information for residents, in zh, bo and en."""

__version__ = "0.1.0"
