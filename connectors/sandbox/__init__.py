"""Sandbox peers: real servers on loopback speaking the real protocols, as strict as the real
services, for the demo and the tests. Production code never imports this package."""
