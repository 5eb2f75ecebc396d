"""The web dashboard (spec 13), served by the scheduler process."""
