"""The project's end (L1-L10, D1): approvals, legal holds, the states a project passes through,
and the pure decision of what is due when; the disposal run carries it out."""
