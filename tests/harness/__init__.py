"""Test harness shared by every issue: mock engine, dynamic-provider host, loopback fakes."""
