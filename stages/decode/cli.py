"""decode command (being written)."""


def decode() -> None:
    raise NotImplementedError
