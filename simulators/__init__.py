"""Bundled instruments: the LX-365 exposure cell, CV-25 cure oven and PE-200 etcher.

They speak their manuals' protocols over real transports (TCP, pty, Modbus)
and share one simulated world and one scaled clock. Nothing here imports
``drivers`` or ``sequencer``: these are the tools.
"""
