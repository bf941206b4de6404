"""Projects: identity, end date, zones on disk."""
