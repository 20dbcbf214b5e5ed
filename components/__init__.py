"""ComponentResources: one Docker Swarm stack or storage bucket per module."""
