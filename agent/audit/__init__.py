"""The audit trail: every administrative act and refusal, hash-chained."""
