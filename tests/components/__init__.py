"""Tests of components/: each ComponentResource under the mock engine, and their scripts."""
