"""EasyTask: a workload scheduler (scheduler, agent daemon, CLI)."""

__version__ = "0.1.0"
