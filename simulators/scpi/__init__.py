"""The SCPI core both SCPI tools share: parser, IEEE 488.2 instrument base, line server."""

from .errors import ScpiError
from .instrument import ScpiInstrument
from .server import ScpiServer
from .values import no_args, nr1, nr2, one_arg, parse_bool, parse_id, parse_int, parse_real

__all__ = [
    "ScpiError",
    "ScpiInstrument",
    "ScpiServer",
    "no_args",
    "nr1",
    "nr2",
    "one_arg",
    "parse_bool",
    "parse_id",
    "parse_int",
    "parse_real",
]
