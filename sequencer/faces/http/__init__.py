"""The tool-PC daemon: an HTTP/JSON API over the line (see docs/daemon.md).

``app.create_app(line, auth, audit)`` builds the FastAPI app against anything that
implements ``contract.LineControl``; ``server`` runs it under uvicorn. Nothing is
imported here, so a module of another face (the screen, GEM) that imports one of
this package's modules does not load the whole app with it.
"""
