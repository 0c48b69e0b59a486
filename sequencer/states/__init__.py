"""The standards' state machines: the E90 substrate (``substrate``), the E40 process
job (``job``), the E87 carrier and load port (``carrier``) and the E94 control job
(``control_job``; the last two are the GEM face's GEM300 objects). The E10 equipment
state is derived from the line's events by the daemon (``sequencer.faces.http.e10``),
since it is a view of them. Imports nothing of viaform.
"""
