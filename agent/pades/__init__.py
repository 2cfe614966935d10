"""PAdES signatures on PDF documents (pyHanko): sign, countersign, attach a signed note, validate.

Foundation: used by the customs wing (the officer signs an inspection report) and by ``evidence-agent``
(the enterprise countersigns it or attaches a dispute note; anyone checks the signatures).
"""
