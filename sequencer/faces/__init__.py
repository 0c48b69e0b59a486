"""The faces people and hosts use: the command line (``cli/``), the daemon's HTTP API
(``http/``), and the console's progress display and report.

May import every other room of ``sequencer`` and ``drivers``; nothing imports a face.
"""
