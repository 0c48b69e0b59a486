"""Drivers for the line's three tools. Synchronous, one lock per instance, typed results.

Nothing here imports ``sequencer`` or ``simulators``.
"""
