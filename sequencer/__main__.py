"""``python -m sequencer`` is ``viaform``."""

from sequencer.faces.cli import main

main()
