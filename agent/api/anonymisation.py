"""Anonymisation as the CLI runs it: in the caller's own process, on files the caller may read,
without the daemon (L7). A module of its own so that only ``vokter anonymise`` pays for
importing polars and pyreadstat."""

from agent.anonymise.report import ClassSizes, Report
from agent.anonymise.run import Request, apply_file, check_file
from agent.anonymise.secret import create_date_secret

__all__ = ["ClassSizes", "Report", "Request", "apply_file", "check_file", "create_date_secret"]
