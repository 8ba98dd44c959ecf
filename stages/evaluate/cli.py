"""evaluate and report commands (being written)."""


def evaluate() -> None:
    raise NotImplementedError


def report() -> None:
    raise NotImplementedError
