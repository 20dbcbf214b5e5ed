"""Protocol-faithful fakes of the servers and CLIs the providers talk to."""
