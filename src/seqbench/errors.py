"""Errors a user can cause. The CLI prints their message as one line and exits 2."""


class SeqbenchError(Exception):
    """Base class: the message is written for the person at the terminal."""


class ConfigError(SeqbenchError):
    """A suite file or a flag holds a value seqbench cannot use."""


class ResultsError(SeqbenchError):
    """A results file or run directory is missing, damaged or not seqbench's."""


class MissingDependency(SeqbenchError):
    """An optional package a command needs (pyarrow, matplotlib, plotext) is not installed."""
