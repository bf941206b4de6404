"""The storage rules (S1-S7, D2, D5): finding identity numbers and linkage keys in a project's
files, and what the daemon does about a file that breaks a rule."""
