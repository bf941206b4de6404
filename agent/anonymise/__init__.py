"""Anonymisation (L6, L7, D3, D4): k-anonymity by optimal generalisation and suppression, and
date shifting, on the enclave's own table formats.

The decisions (hierarchies, the lattice search, date offsets) are pure functions over values;
reading and writing the four formats sits in :mod:`agent.anonymise.tables`, and
:mod:`agent.anonymise.engine` joins the two for the CLI and the project-end lifecycle.
"""
