"""Errors a user can act on: each names the file, key or step at fault."""


def lookup(table: dict, name: str, what: str, error: type[Exception] = ValueError):
    """table[name], or `error` naming the unknown `what` and every known one."""
    try:
        return table[name]
    except KeyError:
        raise error(f"unknown {what} {name!r}; known: {', '.join(table)}") from None


class ThreeDSRError(RuntimeError):
    """Base class; the CLI prints these without a traceback."""


class DataError(ThreeDSRError):
    """Input data (images, poses, archives) is missing, corrupt or inconsistent."""


class ConfigError(ThreeDSRError):
    """params.yaml (or an override file) is invalid."""


class OfflineError(ThreeDSRError):
    """Something must be downloaded but the network is unreachable."""


class ModelUnavailable(ThreeDSRError):
    """A model's weights are neither on disk nor downloadable; the message says where to put them."""


class DiskFullError(ThreeDSRError):
    """A write failed because the disk is full; the message names the file."""
