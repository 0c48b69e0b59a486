"""The operator's screen: the daemon's browser pages (docs/screen.md).

Server-rendered HTML (Jinja2 templates, package data under ``templates/``), one
stylesheet and one small script of our own under ``static/`` (no CDN, no build
step), served by ``viaform daemon`` beside the API (``mount_screen``). Live
updates come from the API's ``/events`` stream; the plots are the ``plots`` face's
matplotlib figures as SVG.

A sub-room of ``faces``: it reads the line only through the daemon's contract and
changes it only through ``DaemonCore``'s audited actions (the API's own code
paths), so it never imports the line's engine, the runner or a driver except the
drivers' declared settings tables (the ranges it shows).

``mount.mount_screen(app, core)`` adds it to the daemon's app.
"""
