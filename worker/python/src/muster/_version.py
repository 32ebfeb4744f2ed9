"""_version.py — the SDK version, as reported in Attach.sdk ("muster-python/<version>")."""

__version__ = "0.1.0"
SDK = f"muster-python/{__version__}"
