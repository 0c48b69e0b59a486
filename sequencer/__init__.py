"""The sequencer: recipes, wafer and job state machines, scheduler, journal, daemon, CLI.

It talks to tools only through ``drivers``, and to the simulators only in the
one place that starts them (``sequencer.line.simhost``).
"""
