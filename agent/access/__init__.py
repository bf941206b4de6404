"""Members and roles; who may do what; (later) desired ACLs and their enforcement."""
