"""The one exception type for problems a user can fix (bad input, corrupt image, full disk)."""


class ImageError(Exception):
    """A user-facing error: its message is one clear line, shown without a traceback."""

    def __init__(self, message: str):
        super().__init__(" ".join(str(message).split()) if "\n" in str(message) else str(message))
