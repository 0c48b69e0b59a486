"""How a line is assembled: tools.yaml (``config``, ``tools_schema``), the owner-of-the-
line locks, material handling (simulated or by an operator), the drivers and journal put
together into a run (``assemble``) or the daemon's engine (``engine``), and the one place
that starts simulators (``simhost``; ``sim_control`` is the control port's client and
does not load them).

May import ``sequencer.runner``, ``process``, ``states``, ``store``, ``drivers``, and
(``simhost`` only) ``simulators``; never ``sequencer.faces``.
"""
