"""The customs wing's message catalogue (Simplified Chinese and English): report, signature page, console.

``N_`` marks a message for ``pybabel extract`` where it is defined; it is translated where it is shown.
"""


def N_(msgid: str) -> str:
    """``msgid`` itself (marked for extraction)."""
    return msgid
