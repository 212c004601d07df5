"""Change requests: drafted and submitted by their requester, approved or rejected by others
(separation of duties, in the application and in the database), implemented once approved.

`machine` holds the state machine, `requests` the requester's side and reads, `approvals`
the deciding side (one change, or several at once).
"""
