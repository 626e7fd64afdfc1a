"""The one exception type that tasks turn into a clean message and a non-zero exit."""


class TrackstackError(Exception):
    """A failure the user can act on; its message says what to do."""
