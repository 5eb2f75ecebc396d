"""easytaskctl: the command line."""
