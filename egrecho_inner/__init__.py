"""egrecho_inner: the shared Python code of the Whisper fine-tuning recipe."""

__version__ = "0.1.0"
