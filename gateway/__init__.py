"""Relais: interoperability gateway for French medico-social coordinated-services platforms."""

__version__ = "0.1.0"
