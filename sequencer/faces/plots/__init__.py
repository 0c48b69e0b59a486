"""Plots of what the journal recorded: a wafer's oven profile and OES trace, a lot's Gantt.

``traces`` reads the series from a journal (read-only, :class:`sequencer.store.history.History`)
into plain dataclasses; ``figures`` draws them with matplotlib (Agg, ``Figure`` objects, no
pyplot state), for ``viaform wafer plot`` / ``viaform lot plot`` (PNG) and the operator's
screen (SVG). A face: may import ``store`` (and every room below faces), nothing imports it
but other faces.
"""
