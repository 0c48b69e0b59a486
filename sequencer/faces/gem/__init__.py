"""The SECS/GEM equipment interface (SEMI E30 over E37 HSMS-SS) the daemon serves to a
fab's host, on secsgem 0.3 (docs/gem.md).

``face.GemFace`` is a ``DaemonFace`` (sequencer/faces/http/faces.py): ``viaform daemon``
starts it beside the HTTP API on the same engine. ``equipment.GemEquipment`` is the
secsgem handler; ``tables`` holds the GEM ids as data; ``context.GemContext`` is what a
GEM module sees; the GEM300 objects (E87, E40, E94, S7, S10) are extensions installed
from ``extensions.EXTENSIONS``.

May import ``faces.http.contract`` / ``faces.http.faces`` (the line's contract, never the
HTTP app), ``line.config``, ``process``, ``states`` and ``store``; nothing else of
viaform imports it but the daemon's CLI.
"""
