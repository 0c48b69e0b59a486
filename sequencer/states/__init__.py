"""The standards' state machines: the E90 substrate (``substrate``) and the E40 process
job (``job``). The E10 equipment state is derived from the line's events by the daemon
(``sequencer.faces.http.e10``), since it is a view of them. Imports nothing of viaform.
"""
