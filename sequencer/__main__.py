"""``python -m sequencer`` is ``viaform``."""

from .cli import main

main()
