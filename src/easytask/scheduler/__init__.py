"""The scheduler process: engine, agent hub, composition root."""
