"""Helpers shared by the test suite (one place each): free loopback ports, servers in threads,
the Prometheus text reader, a private Redis server, the fake role services and the fake vLLM."""
